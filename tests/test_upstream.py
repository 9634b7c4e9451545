"""Upward reporting (纵向直报) between two real `civicwatt serve` processes on loopback.

A city instance approves twelve months of four institutions while the province is down;
its pushes fail and wait in the outbox; the city restarts; the province starts and every
month arrives exactly once (a receipt per month, nothing queued twice after more passes
and a province restart); the province's ledger for the city's institutions equals the
city's own; the province returns a month with a comment and the city sees it returned.
Plus the upstream file's checks (file, line and field) and the endpoint's refusals."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import openpyxl
import pandas as pd
import pytest

from alerts.outbox import Outbox
from civicwatt.cli import main
from civicwatt.context import open_registry_store
from core.registry import load_registry
from core.schemas.upstream import TOKEN_ENV, load_upstream
from core.tokens import create_token, tokens_file
from core.users import set_user
from core.yamlfile import ConfigError
from storage.submissions import SubmissionBook
from storage.upstream import UpstreamBook
from tests.servers import free_port
from tests.support_ledger_world import build
from tests.support_process import CivicwattProcess

CITY = ["G1", "G2", "G3", "S1"]  # H1 has no data
MONTHS = [f"2024-{m:02d}" for m in range(1, 13)]
PROVINCE_REGISTRY = """\
timezone: Asia/Shanghai
regions:
  - {id: hebei, name: 河北省}
institutions:
  - {id: P1, name: 省直某局, region: hebei, category: government, floor_area_m2: 1000, occupants: 50}
"""


def wait_for(predicate, timeout_s: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def serve(base: Path, registry: Path, store: str, port: int, env: dict, upstream: Path | None = None):
    argv = ["serve", "--registry", str(registry), "--store", store, "--users", str(base / "users.yaml"),
            "--port", str(port), "--quotas", str(base / "none.yaml")]
    if upstream is not None:
        argv += ["--upstream", str(upstream)]
    proc = CivicwattProcess(argv, "dashboard on", cwd=base, env=env)
    proc.wait_ready()
    return proc


def ledger(base: Path, registry: Path, store: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = base / "ledger.xlsx"
    assert main(["ledger", "--year", "2024", "--out", str(out), "--registry", str(registry), "--store", store]) == 0
    wb = openpyxl.load_workbook(out, read_only=True)
    frames = []
    for name in ("ledger", "summary"):
        rows = list(wb[name].iter_rows(values_only=True))
        frames.append(pd.DataFrame(rows[3:], columns=rows[1]))
    return frames[0], frames[1]


@pytest.fixture(scope="module")
def two_levels(tmp_path_factory):
    city, prov = tmp_path_factory.mktemp("city"), tmp_path_factory.mktemp("province")
    city_reg, _quotas, city_store = build(city)
    city_data = Path(city_store.removeprefix("embedded:"))
    book = SubmissionBook(city_data)
    for iid in CITY:
        for month in MONTHS:
            book.set_status(iid, month, "approved", "reviewer")
    book.set_status("G1", "2025-01", "submitted", "g1-user")  # not approved: never pushed
    book.close()
    prov_reg = prov / "civicwatt.yaml"
    prov_reg.write_text(PROVINCE_REGISTRY, encoding="utf-8")
    prov_store = f"embedded:{prov / 'data'}"
    open_registry_store(load_registry(prov_reg), prov_store).close()
    set_user(prov / "users.yaml", "admin", "admin", None, "a" * 16)
    set_user(prov / "users.yaml", "hb", "region", "hebei", "b" * 16)
    set_user(prov / "users.yaml", "elsewhere", "region", "other", "c" * 16)
    _, token = create_token(tokens_file(prov / "users.yaml"), "hb")
    port = free_port()
    upstream = city / "upstream.yaml"
    upstream.write_text(f"upstream:\n  url: http://127.0.0.1:{port}\n  instance: sjz-city\n  interval_s: 0.5\n"
                        "  retry_base_s: 0.5\n  retry_max_s: 1\n  timeout_s: 5\n", encoding="utf-8")
    env = {**os.environ, TOKEN_ENV: token}
    env.pop("CIVICWATT_STORE", None)
    return dict(city=city, city_reg=city_reg, city_store=city_store, city_data=city_data, prov=prov,
                prov_reg=prov_reg, prov_store=prov_store, port=port, upstream=upstream, env=env, token=token)


def test_pushed_while_down_arrive_exactly_once_and_ledgers_agree(two_levels):
    w = two_levels
    outbox_dir = w["city_data"] / "upstream"
    city = serve(w["city"], w["city_reg"], w["city_store"], free_port(), w["env"], w["upstream"])
    try:
        def failed_all():
            rows = Outbox(outbox_dir).list_deliveries() if (outbox_dir / "outbox.sqlite3").exists() else []
            # a failing channel is tried once a pass: the others wait behind it
            return (len(rows) == len(CITY) * len(MONTHS) and all(r["status"] == "pending" for r in rows)
                    and any(r["attempts"] >= 2 and "ConnectError" in (r["last_error"] or "") for r in rows))
        wait_for(failed_all, what="every approved month queued and tried while the province is down")
        assert "Traceback" not in city.output, city.output
    finally:
        assert city.stop() in (0, 130)
    city = serve(w["city"], w["city_reg"], w["city_store"], free_port(), w["env"], w["upstream"])  # restart
    province = serve(w["prov"], w["prov_reg"], w["prov_store"], w["port"], w["env"])
    try:
        def all_sent():
            rows = Outbox(outbox_dir).list_deliveries()
            return all(r["status"] == "sent" for r in rows) and len(rows) == len(CITY) * len(MONTHS)
        wait_for(all_sent, what="every month delivered after the province started")
        # the running province (started before anything arrived) ranks and lists them at once, marked
        headers = {"Authorization": f"Bearer {w['token']}"}
        base = f"http://127.0.0.1:{w['port']}/api/v1"
        live_ind = {r["institution_id"]: r for r in httpx.get(
            f"{base}/indicators", params={"year": 2024}, headers=headers, timeout=60).json()["rows"]}
        live_rank = {r["institution_id"]: r for r in httpx.get(
            f"{base}/rankings", params={"year": 2024, "indicator": "kgce_per_m2"}, headers=headers,
            timeout=60).json()["rows"]}
        assert set(CITY) <= set(live_ind) and set(CITY) <= set(live_rank), (live_ind.keys(), live_rank.keys())
        assert {live_ind[i]["source"] for i in CITY} == {live_rank[i]["source"] for i in CITY} == {"sjz-city"}
        assert live_ind["P1"]["source"] is None
        province.stop()
        province = serve(w["prov"], w["prov_reg"], w["prov_store"], w["port"], w["env"])  # the province restarts
        time.sleep(3)  # several more passes of the city's job
        rows = Outbox(outbox_dir).list_deliveries()
        assert len(rows) == len(CITY) * len(MONTHS) and all(r["status"] == "sent" for r in rows)
        receipts = UpstreamBook(w["prov"] / "data").receipts()
        assert len(receipts) == len(CITY) * len(MONTHS)  # exactly once
        assert set(zip(receipts["institution_id"], receipts["month"], strict=True)) == {
            (i, m) for i in CITY for m in MONTHS}
        assert (receipts["instance"] == "sjz-city").all() and receipts["idempotency_key"].notna().all()

        # the province shows them, marked with their source instance, through its API
        got = {r["id"]: r for r in httpx.get(f"{base}/institutions", headers=headers, timeout=30).json()["rows"]}
        assert set(CITY) <= set(got) and "P1" in got
        assert got["G1"]["source"] == "sjz-city" and got["P1"]["source"] is None and got["G1"]["region"] == "sjz"

        # a month returned with a comment reaches the city
        r = httpx.post(f"{base}/upstream/G1/2024-03/return", json={"comment": "电量偏高，请核实"}, headers=headers,
                       timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["comment"] == "电量偏高，请核实"

        def returned():
            b = SubmissionBook(w["city_data"])
            try:
                row = b.get("G1", "2024-03")
            finally:
                b.close()
            return row if row and row["status"] == "returned" else None
        row = wait_for(returned, what="the returned month at the city")
        assert row["comment"] == "电量偏高，请核实"
    finally:
        city.stop()
        province.stop()

    # the province's ledger of the city's institutions equals the city's own
    city_led, city_sum = ledger(w["city"], w["city_reg"], w["city_store"])
    prov_led, prov_sum = ledger(w["prov"], w["prov_reg"], w["prov_store"])
    key = ["institution_id", "energy"]
    a = city_led[city_led["institution_id"].isin(CITY)].set_index(key).sort_index()
    b = prov_led[prov_led["institution_id"].isin(CITY)].set_index(key).sort_index()
    assert list(a.index) == list(b.index) and list(a.columns) == list(b.columns)
    sa = city_sum.set_index("institution_id").loc[CITY]
    sb = prov_sum.set_index("institution_id").loc[CITY]
    assert list(sa.columns) == list(sb.columns)
    assert (sa["heating_kgce"] > 0).sum() >= 2  # G1's purchased heat and G2's heating gas meter
    # every column of both sheets: the heating split too (G2's gas arrives with its heating part)
    differ = []
    for x, y in ((a, b), (sa, sb)):
        for col in x.columns:
            if x[col].dtype.kind in "fiu" or y[col].dtype.kind in "fiu":
                same = y[col].to_numpy(float) == pytest.approx(x[col].to_numpy(float), rel=1e-9, nan_ok=True)
            else:
                same = list(y[col]) == list(x[col])
            differ += [] if same else [(col, list(x[col]), list(y[col]))]
    assert differ == []
    # what the running province answered before its restart is the city's own figures
    for col in ("kgce", "tce", "t_co2", "kgce_per_m2", "kgce_per_person", "water_m3_per_person"):
        assert [live_ind[i][col] for i in CITY] == pytest.approx(sa[col].to_numpy(float), rel=1e-9), col
    assert [live_rank[i]["value"] for i in CITY] == pytest.approx(sa["kgce_per_m2"].to_numpy(float), rel=1e-9)
    # and the province's statistics tables mark them with their source
    out = w["prov"] / "stat.xlsx"
    assert main(["report", "statistics", "--period", "2024", "--out", str(out), "--registry", str(w["prov_reg"]),
                 "--store", w["prov_store"]]) == 0
    rows = list(openpyxl.load_workbook(out, read_only=True)["基本信息"].iter_rows(values_only=True))
    key_row = next(i for i, r in enumerate(rows) if r[0] == "institution_id")
    basic = pd.DataFrame(rows[key_row + 2:], columns=rows[key_row]).set_index("institution_id")
    assert basic.at["G1", "source_instance"] == "sjz-city" and basic.at["P1", "source_instance"] == "本级"
    assert basic.at["G1", "region_name"] == "石家庄市"


def test_upstream_file_is_checked_with_lines(tmp_path):
    path = tmp_path / "upstream.yaml"
    path.write_text("upstream:\n  url: ftp://x\n  instance: a b\n  token: secret\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_upstream(path, environ={})
    got = [str(p) for p in exc.value.problems]
    f = str(path)
    assert any(g.startswith(f"{f}:2: upstream.url:") for g in got), got
    assert any(g.startswith(f"{f}:3: upstream.instance:") for g in got), got
    assert any(g.startswith(f"{f}:4: upstream.token:") for g in got), got  # the token never goes in the file
    assert any(TOKEN_ENV in g for g in got), got
    path.write_text("upstream:\n  url: http://127.0.0.1:9\n  instance: sjz\n", encoding="utf-8")
    cfg = load_upstream(path, environ={TOKEN_ENV: "t"})
    assert (cfg.url, cfg.instance, cfg.token, cfg.interval_s) == ("http://127.0.0.1:9", "sjz", "t", 60.0)


def push_body(iid: str = "X1", month: str = "2024-05", quantity: float = 1200.0) -> dict:
    institution = {"id": iid, "name": "某县局", "region": "xian", "category": "government", "floor_area_m2": 900.0,
                   "heated_area_m2": 0.0, "occupants": 30, "department": None,
                   "regions": [{"id": "xian", "name": "某县", "parent": "hebei"},
                               {"id": "hebei", "name": "河北省", "parent": None}]}
    from civicwatt.upstream import digest

    content = {"instance": "county", "institution": institution, "month": month,
               "items": [{"energy": "electricity", "quantity": quantity, "unit": "kWh", "cost_cny": None}]}
    return {**content, "digest": digest(content)}


def test_the_endpoint_refuses_and_deduplicates(tmp_path):
    from civicwatt.web import create_web_app
    from dashboard.app import serve as serve_app

    reg_path = tmp_path / "civicwatt.yaml"
    reg_path.write_text(PROVINCE_REGISTRY, encoding="utf-8")
    registry = load_registry(reg_path)
    store = open_registry_store(registry, f"embedded:{tmp_path / 'data'}")
    users = tmp_path / "users.yaml"
    set_user(users, "hb", "region", "hebei", "b" * 16)
    set_user(users, "far", "region", "other", "c" * 16)
    set_user(users, "p1", "institution", "P1", "d" * 16)
    tokens = {u: create_token(tokens_file(users), u)[1] for u in ("hb", "far", "p1")}
    app = create_web_app(registry, store, users, data_dir=tmp_path / "data")
    handle = serve_app(app, "127.0.0.1", 0)
    url = f"{handle.url}/api/v1/upstream"
    try:
        def post(body, user="hb"):
            headers = {"Authorization": f"Bearer {tokens[user]}"} if user else {}
            return httpx.post(url, json=body, headers=headers, timeout=30)
        assert post(push_body(), user=None).status_code == 401
        assert post(push_body(), user="p1").status_code == 403  # institution users do not report upward
        assert post(push_body(), user="far").status_code == 403  # hebei is not in the far region's scope
        bad = push_body(month="2024-13")
        r = post(bad)
        assert r.status_code == 422 and any(p["field"] == "month" for p in r.json()["problems"])
        wrong_unit = push_body()
        wrong_unit["items"][0]["unit"] = "MWh"
        r = post(wrong_unit)
        assert r.status_code == 422 and r.json()["problems"][0] == {"index": 0, "field": "unit",
                                                                   "message": "electricity is reported in kWh"}
        too_hot = push_body()
        too_hot["items"][0]["heating_quantity"] = 1300.0
        r = post(too_hot)
        assert r.status_code == 422 and r.json()["problems"][0] == {
            "index": 0, "field": "heating_quantity", "message": "1300 is more than the quantity 1200"}
        r = post(push_body(iid="P1"))
        assert r.status_code == 422 and "own institutions" in r.json()["problems"][0]["message"]
        assert store.read_bills().empty  # nothing written by a refused push
        assert post(push_body()).json() == {"status": "stored", "bills": 1}
        assert post(push_body()).json() == {"status": "duplicate", "bills": 0}
        assert post(push_body(quantity=1300.0)).json() == {"status": "stored", "bills": 1}  # a corrected month
        bills = store.read_bills(["X1"])
        assert len(bills) == 1 and bills["quantity"].iloc[0] == 1300.0  # replaced, not added
        assert len(UpstreamBook(tmp_path / "data").receipts()) == 2
        audit = SubmissionBook(tmp_path / "data").audit(["X1"])
        assert list(audit["source"].unique()) == ["api"] and set(audit["who"]) == {"upstream:county"}
        # returns: listed for the lower level, in scope only
        r = httpx.post(f"{url}/X1/2024-05/return", json={"comment": "请补充"},
                       headers={"Authorization": f"Bearer {tokens['hb']}"}, timeout=30)
        assert r.status_code == 200 and r.json()["institution_id"] == "X1"
        got = httpx.get(f"{url}/returns", params={"instance": "county"},
                        headers={"Authorization": f"Bearer {tokens['hb']}"}, timeout=30).json()["rows"]
        assert [(g["institution_id"], g["month"], g["comment"]) for g in got] == [("X1", "2024-05", "请补充")]
        assert httpx.get(f"{url}/returns", params={"instance": "county", "after": got[0]["id"]},
                         headers={"Authorization": f"Bearer {tokens['hb']}"}, timeout=30).json()["rows"] == []
        from openapi_spec_validator import validate

        doc = httpx.get(f"{handle.url}/api/v1/openapi.json", timeout=30).json()
        validate(doc)
        paths = [p for p in doc["paths"] if "upstream" in p]
        assert len(paths) == 3, paths
    finally:
        handle.shutdown()
        store.close()


def test_the_runtime_runs_the_push_job(tmp_path, monkeypatch):
    from civicwatt.runtime import Runtime

    registry = load_registry(_write(tmp_path / "civicwatt.yaml", PROVINCE_REGISTRY))
    store = open_registry_store(registry, f"embedded:{tmp_path / 'data'}")
    up = _write(tmp_path / "upstream.yaml", "upstream:\n  url: http://127.0.0.1:9\n  instance: sjz\n  interval_s: 5\n")
    rt = Runtime(registry, store, tmp_path / "queue", tmp_path / "data", alerts=False,
                 upstream=load_upstream(up, environ={TOKEN_ENV: "t"}))
    try:
        rt.start()
        assert rt.scheduler.get_job("upstream-push") is not None
        assert rt.upstream.config.instance == "sjz"
    finally:
        rt.close()
        store.close()
    follower = Runtime(registry, open_registry_store(registry, f"embedded:{tmp_path / 'data'}"), tmp_path / "q2",
                       tmp_path / "data", alerts=False, shard=(2, 2), upstream=load_upstream(up, environ={TOKEN_ENV: "t"}))
    assert follower.upstream is None  # only the leader pushes
    follower.close()
    follower.store.close()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_reported_institutions_join_replace_and_never_shadow_our_own(tmp_path):
    from core.registry import with_reported

    registry = load_registry(_write(tmp_path / "civicwatt.yaml", PROVINCE_REGISTRY))
    entry = push_body()["institution"]
    once = with_reported(registry, [("county", entry)])
    assert once.institution_by_id["X1"].source == "county" and once.source_by_id["P1"] is None
    assert once.region_by_id["xian"].parent == "hebei"
    assert with_reported(once, [("county", entry)]) is once  # nothing new: the same registry (no cache dropped)
    corrected = with_reported(once, [("county", {**entry, "floor_area_m2": 1200.0})])
    assert corrected.institution_by_id["X1"].floor_area_m2 == 1200.0
    assert [i.id for i in corrected.institutions] == ["P1", "X1"]  # replaced, not added
    ours = with_reported(once, [("county", {**entry, "id": "P1", "floor_area_m2": 5.0})])
    assert ours is once and ours.institution_by_id["P1"].floor_area_m2 == 1000


def test_a_push_swaps_the_served_registry_or_drops_the_cached_tables(tmp_path):
    from core.registry import with_reported
    from dashboard.data import DataService

    registry = load_registry(_write(tmp_path / "civicwatt.yaml", PROVINCE_REGISTRY))
    store = open_registry_store(registry, f"embedded:{tmp_path / 'data'}")
    try:
        tables = DataService(registry, store)
        before = tables.indicators(2024)
        assert list(before["institution_id"]) == ["P1"] and tables.indicators(2024) is before  # cached
        entry = push_body()["institution"]
        tables.update_registry(lambda reg: with_reported(reg, [("county", entry)]))
        assert tables.registry.source_by_id == {"P1": None, "X1": "county"}
        assert list(tables.institutions["id"]) == ["P1", "X1"]  # what the dashboard derives follows
        assert list(tables.indicators(2024)["institution_id"]) == ["P1", "X1"]
        generation, same = tables.generation, tables.registry
        tables.update_registry(lambda reg: with_reported(reg, [("county", entry)]))  # new figures only
        assert tables.registry is same and tables.generation == generation + 1
    finally:
        store.close()
