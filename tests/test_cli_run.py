"""Every verb that runs to completion gives the same result with the shared options
before or after the verb (the long-running ones are checked on their parsed arguments in
test_cli.py); and verbs other than import, collect and demo refuse a store that does not
exist, writing nothing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from civicwatt.cli import VERB_SHARED, main
from storage import open_store
from tests import support_ledger_world as world_data

READINGS = """meter_id,time,value
G1-E0,2025-03-02T00:00:00+08:00,900000
G1-E0,2025-03-03T00:00:00+08:00,901000
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """registry, quotas and an embedded store with two years of daily readings, all
    under one directory (opened by relative paths, so copies give identical output)."""
    base = tmp_path_factory.mktemp("world")
    world_data.build(base)
    (base / "r.csv").write_text(READINGS, encoding="utf-8")
    return base


LOCATIONS = {"registry": "civicwatt.yaml", "store": "embedded:store", "users": "users.yaml"}
# (verb command line, files it writes); run in a copy of the world, the shared options added
CASES = {
    "import": (["import", "readings", "r.csv"], []),
    "export": (["export", "consumption", "--freq", "month", "--start", "2024-01-01", "--end", "2024-12-31",
                "--out", "out.csv"], ["out.csv"]),
    "report": (["report", "monthly", "--month", "2024-03", "--out", "out.xlsx", "--quotas", "quotas.yaml"],
               ["out.xlsx"]),
    "ledger": (["ledger", "--year", "2024", "--out", "out.csv", "--quotas", "quotas.yaml"], ["out.csv"]),
    "assess": (["assess", "--year", "2024", "--out", "out.xlsx", "--notice", "notice.html", "--quotas", "quotas.yaml"],
               ["out.xlsx", "notice.html"]),
    "quotas": (["quotas", "check", "--date", "2024-12-31", "--quotas", "quotas.yaml"], []),
    "check-config": (["check-config", "--quotas", "quotas.yaml"], []),
    "users": (["users", "add", "ann", "--role", "region", "--scope", "sjz", "--password", "p" * 12], []),
    "backup": (["backup", "--out", "bk", "--quotas", "quotas.yaml"], ["bk/config/quotas.yaml"]),
}
LONG_RUNNING = {"demo", "collect", "serve", "simulate"}  # test_cli.py checks their parsed arguments
NOT_RUN = {"init": "takes no shared option", "mv": "needs an EMC project (tests/test_mv_acceptance.py)",
           "national": "needs a national dataset and a Dask cluster (tests/test_national.py runs the verb)"}


def test_every_verb_is_run_here_or_said_why_not():
    assert set(CASES) | LONG_RUNNING | set(NOT_RUN) == set(VERB_SHARED)


def _timings(text: str) -> str:
    """Output without what differs from run to run: durations and progress bars."""
    lines = [line for line in text.split("\n") if "\r" not in line]
    return re.sub(r"\b\d+(\.\d+)? ?s\b", "<t>s", "\n".join(lines))


def _result(dirpath: Path, argv: list[str], files: list[str], capsys, monkeypatch) -> dict:
    monkeypatch.chdir(dirpath)
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    result = {"code": code, "out": _timings(out.out), "err": _timings(out.err)}
    for name in files:
        if name.endswith(".xlsx"):
            result[name] = {k: v.to_csv() for k, v in pd.read_excel(dirpath / name, sheet_name=None).items()}
        else:
            result[name] = (dirpath / name).read_bytes()
    store = open_store("embedded:store", create=False)
    result["samples"] = len(store.read_samples())
    store.close()
    result["users"] = (dirpath / "users.yaml").exists()
    return result


@pytest.mark.parametrize("verb", sorted(CASES))
def test_shared_options_before_or_after_the_verb_give_the_same_result(verb, world, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CIVICWATT_STORE", raising=False)
    argv, files = CASES[verb]
    opts = [x for name in VERB_SHARED[verb] for x in (f"--{name}", LOCATIONS[name])]
    results = []
    for n, placed in enumerate(([*opts, *argv], [*argv, *opts])):
        copy = shutil.copytree(world, tmp_path / f"run{n}")
        results.append(_result(copy, placed, files, capsys, monkeypatch))
    before, after = results
    assert before["code"] == 0, before
    assert before == after
    if verb == "import":
        store = open_store(f"embedded:{world / 'store'}", create=False)
        assert before["samples"] == len(store.read_samples()) + 2  # the two new readings
        store.close()
    if verb == "users":
        assert before["users"]


# -- a store that does not exist ---------------------------------------------------
REFUSING = {
    "report": ["report", "monthly", "--month", "2024-03", "--out", "out.xlsx"],
    "ledger": ["ledger", "--year", "2024", "--out", "out.csv"],
    "assess": ["assess", "--year", "2024", "--out", "out.xlsx"],
    "export": ["export", "readings", "--start", "2024-01-01", "--end", "2024-01-31", "--out", "out.csv"],
    "quotas": ["quotas", "check", "--notify", "--outbox", "outbox"],
    "serve": ["serve", "--port", "0"],
    "backup": ["backup", "--out", "bk"],
}


def _refuses(argv: list[str], store: str, capsys) -> str:
    code = main([*argv, "--registry", "civicwatt.yaml", "--store", store])
    err = capsys.readouterr().err
    assert code == 1, err
    return err


def test_report_monthly_against_a_missing_store_exits_non_zero_and_writes_nothing(world, tmp_path, capsys,
                                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(world / "civicwatt.yaml", tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    err = _refuses(REFUSING["report"], "embedded:nowhere", capsys)
    assert "no store at embedded:nowhere" in err and "Only `civicwatt import`, `collect` and `demo`" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out.xlsx, no nowhere/


@pytest.mark.parametrize("verb", sorted(REFUSING))
def test_verbs_that_read_a_store_refuse_a_missing_one(verb, world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(world / "civicwatt.yaml", tmp_path)
    (tmp_path / "empty").mkdir()  # a directory without a store in it is not a store either
    for store in ("embedded:nowhere", "embedded:empty"):
        err = _refuses(REFUSING[verb], store, capsys)
        assert f"no store at {store}" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["civicwatt.yaml", "empty"]  # nothing written


def test_the_default_store_is_refused_saying_it_is_the_default(world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CIVICWATT_STORE", raising=False)
    shutil.copy(world / "civicwatt.yaml", tmp_path)
    assert main(REFUSING["ledger"]) == 1
    err = capsys.readouterr().err
    assert "no store at embedded:./civicwatt-data" in err or "no store at embedded:civicwatt-data" in err
    assert "(the default: no --store, CIVICWATT_STORE or ./civicwatt.toml names one)" in err
    assert not (tmp_path / "civicwatt-data").exists() and not (tmp_path / "out.csv").exists()


def test_import_creates_the_store(world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("civicwatt.yaml", "r.csv"):
        shutil.copy(world / name, tmp_path)
    assert main(["import", "readings", "r.csv", "--registry", "civicwatt.yaml", "--store", "embedded:new"]) == 0
    store = open_store("embedded:new", create=False)
    assert len(store.read_samples()) == 2
    store.close()


@pytest.mark.influx
def test_a_missing_influxdb_database_is_refused_and_not_created(influxd, world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(world / "civicwatt.yaml", tmp_path)
    url = influxd.url("never_created")
    err = _refuses(REFUSING["report"], url, capsys)
    assert "no database 'never_created'" in err
    assert not (tmp_path / "out.xlsx").exists()
    probe = open_store(influxd.url("probe"))  # creates "probe" only
    names = {row[0] for s in probe.query("SHOW DATABASES") for row in s["values"]}
    probe.close()
    assert "probe" in names and "never_created" not in names
    # once a verb that creates stores has made it, the others open it
    (tmp_path / "r.csv").write_text(READINGS, encoding="utf-8")
    assert main(["import", "readings", "r.csv", "--registry", "civicwatt.yaml", "--store", url]) == 0
    assert main([*REFUSING["ledger"], "--registry", "civicwatt.yaml", "--store", url]) == 0
