"""The runtime's parts: registered jobs, logging set-up,
secrets from the environment or a file, and `civicwatt backup` while another process
writes to the store."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from civicwatt import runtime
from civicwatt.cli import main
from civicwatt.context import load_file_secrets, open_registry_store, redact_url, with_influx_token
from civicwatt.runtime import (
    Runtime,
    configure_logging,
    register_jobs,
    reset_logging,
    unregister_jobs,
)
from core.health import read_heartbeats
from core.yamlfile import ConfigError
from storage import open_store
from tests.servers import Influxd
from tests.support_collect import registry_doc, write_registry

REPO = Path(__file__).resolve().parent.parent


# -- registered jobs -------------------------------------------------------------------
@pytest.fixture
def quiet_site(tmp_path):
    """A registry whose meters nobody serves, polled hourly (no poll happens in a test)."""
    registry, _, _ = write_registry(tmp_path, registry_doc(n_institutions=1, interval_s=3600))
    store = open_store(f"embedded:{tmp_path / 'data'}", tz=registry.timezone)
    store.set_meters(registry.meters_frame())
    yield registry, store
    store.close()


def test_registered_jobs_run_where_they_ask_and_their_errors_are_recorded(quiet_site, tmp_path):
    registry, store = quiet_site
    runs: list[str] = []

    def boom() -> None:
        runs.append("boom")
        raise RuntimeError("no report data")

    @register_jobs
    def reminders(rt: Runtime) -> None:
        rt.add_job(lambda: runs.append(rt.name), "interval", id="reminder", seconds=3600,
                   next_run_time=pd.Timestamp.now(tz="UTC").to_pydatetime())
        rt.add_job(boom, "date", id="boom", only="leader")

    try:
        assert register_jobs(reminders) is reminders and runtime._FACTORIES.count(reminders) == 1
        rt = Runtime(registry, store, tmp_path / "q", tmp_path / "data", check_interval_s=3600).start()
        try:
            deadline = time.monotonic() + 20
            while len(runs) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sorted(runs) == ["boom", "collect"]
            time.sleep(0.2)
            assert rt.jobs["boom"]["ok"] is False and rt.jobs["boom"]["error"] == "RuntimeError: no report data"
            assert rt.jobs["reminder"]["ok"] is True and rt.jobs["reminder"]["runs"] == 1
            assert {"alerts-check", "alerts-deliver", "alerts-daily", "reminder"} <= {
                j.id for j in rt.scheduler.get_jobs()}  # "boom", a date job, is gone once run
        finally:
            rt.stop(flush_timeout_s=2)
            rt.close()
        beat = read_heartbeats(tmp_path / "data" / "health")[0]
        assert beat["state"] == "stopped" and beat["jobs"]["boom"]["ok"] is False

        # a pure collector (no checks) gets neither the checks nor a job that goes with them
        pure = Runtime(registry, store, tmp_path / "q2", tmp_path / "d2", alerts=False)
        try:
            pure.start()
            ids = {j.id for j in pure.scheduler.get_jobs()}
            assert "alerts-check" not in ids and "reminder" not in ids
            assert set(pure.jobs) == {"boom"}  # no "reminder": it goes with the checks
        finally:
            pure.stop(flush_timeout_s=2)
            pure.close()
        # shard 2 of 2 polls only
        shard = Runtime(registry, store, tmp_path / "q3", tmp_path / "d3", shard=(2, 2))
        assert shard.checks_off == "run by shard 1/2" and shard.add_job(print, id="x", only="leader") is None
        shard.close()
    finally:
        unregister_jobs(reminders)


# -- logging ---------------------------------------------------------------------------
def test_json_logging_is_one_object_per_line_with_extra_fields():
    out = io.StringIO()
    configure_logging("text", stream=io.StringIO())
    configure_logging("json", stream=out)  # replaces the first: no line twice
    try:
        logging.getLogger("civicwatt.collect").info("polled %d meters", 3, extra={"meter_id": "HB-0001-E0"})
        logging.getLogger("some.library").info("chatter")  # other libraries: warnings only
        logging.getLogger("some.library").warning("careful — 小心")
        try:
            raise ValueError("bad")
        except ValueError:
            logging.getLogger("civicwatt.alerts").exception("check failed")
        lines = out.getvalue().splitlines()
        records = [json.loads(x) for x in lines]
        assert [r["message"] for r in records] == ["polled 3 meters", "careful — 小心", "check failed"]
        assert records[0]["level"] == "INFO" and records[0]["logger"] == "civicwatt.collect"
        assert records[0]["meter_id"] == "HB-0001-E0"
        assert pd.Timestamp(records[0]["time"]).tzinfo is not None
        assert "ValueError: bad" in records[2]["exc_info"]
        text = io.StringIO()
        configure_logging("text", stream=text)
        logging.getLogger("civicwatt.runtime").info("hello")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO civicwatt.runtime: hello\n", text.getvalue())
    finally:
        reset_logging()
    assert not [h for h in logging.getLogger().handlers if getattr(h, "_civicwatt", False)]


# -- secrets ---------------------------------------------------------------------------
def test_secrets_come_from_the_environment_or_a_file(tmp_path):
    key = tmp_path / "session-key"
    key.write_text("  s3cr3t\n", encoding="utf-8")
    env = {"CIVICWATT_SECRET_KEY_FILE": str(key), "CIVICWATT_INFLUX_TOKEN": "from-env",
           "CIVICWATT_INFLUX_TOKEN_FILE": str(tmp_path / "unused")}
    assert load_file_secrets(env) == ["CIVICWATT_SECRET_KEY"]  # the variable itself wins over its _FILE
    assert env["CIVICWATT_SECRET_KEY"] == "s3cr3t" and env["CIVICWATT_INFLUX_TOKEN"] == "from-env"
    with pytest.raises(ConfigError) as exc:
        load_file_secrets({"CIVICWATT_INFLUX_TOKEN_FILE": str(tmp_path / "missing")})
    assert "CIVICWATT_INFLUX_TOKEN_FILE" in str(exc.value.problems[0]) and "missing" in str(exc.value.problems[0])
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="empty"):
        load_file_secrets({"CIVICWATT_SECRET_KEY_FILE": str(tmp_path / "empty")})


def test_the_influx_token_is_added_only_to_a_url_without_credentials():
    env = {"CIVICWATT_INFLUX_TOKEN": "user:p&ss"}
    assert with_influx_token("influxdb://h:8086/db?retention=rp", env) == \
        "influxdb://h:8086/db?retention=rp&token=user%3Ap%26ss"
    for url in ("influxdb://u:p@h:8086/db", "influxdb://h:8086/db?token=given", "embedded:./data"):
        assert with_influx_token(url, env) == url
    assert with_influx_token("influxdb://h:8086/db", {}) == "influxdb://h:8086/db"
    assert redact_url("influxdbs://u:secret@h:8086/db?token=abc&retention=rp") == \
        "influxdbs://u:***@h:8086/db?token=***&retention=rp"
    assert redact_url("embedded:/var/lib/civicwatt/data") == "embedded:/var/lib/civicwatt/data"


@pytest.mark.influx
def test_the_store_is_opened_with_the_token_of_the_environment(tmp_path, monkeypatch):
    server = Influxd()
    server.start()
    try:
        registry, _, _ = write_registry(tmp_path, registry_doc(n_institutions=1))
        (tmp_path / "token").write_text("t0ken\n", encoding="utf-8")
        monkeypatch.delenv("CIVICWATT_INFLUX_TOKEN", raising=False)
        monkeypatch.setenv("CIVICWATT_INFLUX_TOKEN_FILE", str(tmp_path / "token"))
        load_file_secrets()
        store = open_registry_store(registry, server.url("tok"))
        try:
            assert store._http.headers["Authorization"] == "Token t0ken"
            assert "t0ken" not in redact_url(store.url)
        finally:
            store.close()
    finally:
        server.cleanup()


# -- backup ----------------------------------------------------------------------------
BATCH = 200  # samples per store write: one transaction each

WRITER = f"""
import sys, numpy as np, pandas as pd
from storage import open_store
store = open_store(sys.argv[1])
k = 0
print("ready", flush=True)
while True:
    t = pd.date_range("2020-01-01", periods={BATCH}, freq="min", tz="UTC") + pd.Timedelta(minutes=k * {BATCH})
    store.write_samples(pd.DataFrame({{"meter_id": "M", "time": t,
                                       "value": np.arange(k * {BATCH}, (k + 1) * {BATCH}, dtype=float), "quality": 0}}))
    k += 1
"""


@pytest.mark.slow
def test_backup_is_consistent_while_another_process_writes(tmp_path, monkeypatch, capsys):
    _, _, reg_path = write_registry(tmp_path, registry_doc(n_institutions=1))
    url = f"embedded:{tmp_path / 'data'}"
    store = open_store(url)
    store.close()
    from alerts.outbox import Outbox

    Outbox(tmp_path / "data")  # the outbox beside the store is backed up too
    (tmp_path / "data" / "health").mkdir()
    (tmp_path / "data" / "health" / "collect.json").write_text("{}", encoding="utf-8")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url], env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, text=True)
    monkeypatch.chdir(tmp_path)
    try:
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        counts = []
        for n in range(3):
            out = tmp_path / f"bk{n}"
            assert main(["backup", "--out", str(out), "--registry", str(reg_path), "--store", url]) == 0
            copy = open_store(f"embedded:{out / 'data'}", create=False)
            samples = copy.read_samples()
            copy.close()
            values = samples["value"].to_numpy()
            assert len(values) % BATCH == 0  # whole transactions only
            assert (values == np.arange(len(values))).all()  # and every one before the last: a snapshot
            counts.append(len(values))
            manifest = json.loads((out / "MANIFEST.json").read_text(encoding="utf-8"))
            assert {f["path"]: f.get("integrity") for f in manifest["files"] if "integrity" in f} == {
                "data/civicwatt.sqlite3": "ok", "data/outbox.sqlite3": "ok"}
            assert not (out / "data" / "health").exists() and (out / "config" / "civicwatt.yaml").is_file()
            assert not list(out.glob("data/*-wal"))  # a self-contained copy
            time.sleep(0.3)
    finally:
        writer.kill()
        writer.wait()
    assert counts[0] > 0 and counts[0] < counts[-1]  # taken while the writer went on
    assert "SQLite database(s) copied online" in capsys.readouterr().out
    # an existing backup is never overwritten, and a refused backup leaves nothing behind
    assert main(["backup", "--out", str(tmp_path / "bk0"), "--registry", str(reg_path), "--store", url]) == 1
    assert sorted(p.name for p in tmp_path.glob("bk*")) == ["bk0", "bk1", "bk2"]
