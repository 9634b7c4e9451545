"""The HTTP API over real HTTP (httpx) against the dashboard's served Flask app on a free
loopback port: every endpoint's JSON against what the CLI/ledger compute for the same
data, scope (an institution token gets 403 or nothing of another institution), all-or-
nothing and idempotent imports, the OpenAPI document, tokens, and /healthz."""

from __future__ import annotations

import math

import httpx
import pandas as pd
import pytest
from openapi_spec_validator import validate

from api.endpoints.alerts import AlertRows
from api.endpoints.consumption import ConsumptionRows
from api.endpoints.indicators import IndicatorRows
from api.endpoints.rankings import RankingRows
from civicwatt.cli import main
from civicwatt.web import create_web_app
from core.csvio import consumption_table
from core.health import Heartbeat, health_dir
from core.tokens import create_token, load_tokens, tokens_file, verify_token
from dashboard.app import serve
from quotas.ranking import ranked, user_query
from reports.ledger import build_ledger
from storage.embedded import EmbeddedStore
from tests import support_dashboard_world as w


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("api")
    reg = w.registry()
    store = EmbeddedStore(base / "data", tz=reg.timezone)
    w.fill_store(store, reg)
    users = w.write_users(base / "users.yaml")
    quotas = w.write_quotas(base / "quotas.yaml", reg)
    tokens = {name: create_token(tokens_file(users), name)[1] for name in ("admin", "sjz", "inst1", "inst5")}
    app = create_web_app(reg, store, users, quotas_path=quotas, data_dir=base / "data",
                         now=lambda: w.NOW.tz_convert("UTC"))
    handle = serve(app, "127.0.0.1", 0)
    yield {"reg": reg, "store": store, "users": users, "quotas": quotas, "tokens": tokens, "url": handle.url,
           "app": app, "base": base}
    handle.shutdown()
    store.close()


def client(world, who: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {world['tokens'][who]}"} if who else {}
    return httpx.Client(base_url=world["url"], headers=headers, timeout=60)


def same(a, b) -> bool:
    """JSON value `a` equals pandas value `b` (NaN/NA is null; floats to 1e-12 relative)."""
    if b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA:
        return a is None
    if isinstance(b, float | int) and not isinstance(b, bool):
        return a is not None and math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def test_unauthenticated_and_bad_tokens_get_401(world):
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic YWRtaW46eA=="},
                    {"Authorization": "Bearer " + world["tokens"]["admin"][:-2] + "xx"}):
        r = httpx.get(world["url"] + "/api/v1/institutions", headers=headers)
        assert r.status_code == 401 and r.json()["problems"][0]["field"] == "Authorization"
    # the dashboard's session guard does not redirect the API to the login page
    assert httpx.get(world["url"] + "/api/v1/indicators?year=2025").status_code == 401


def test_institutions_in_scope(world):
    reg = world["reg"]
    with client(world, "admin") as c:
        rows = c.get("/api/v1/institutions").json()["rows"]
    assert [r["id"] for r in rows] == [i.id for i in reg.institutions]
    first = reg.institutions[0]
    assert rows[0] == {"id": first.id, "name": first.name, "region": first.region, "category": first.category,
                       "floor_area_m2": first.floor_area_m2, "heated_area_m2": first.heated_area_m2,
                       "occupants": first.occupants, "source": None}
    with client(world, "inst1") as c:
        assert [r["id"] for r in c.get("/api/v1/institutions").json()["rows"]] == ["HB-0001"]
    with client(world, "sjz") as c:
        got = {r["id"] for r in c.get("/api/v1/institutions").json()["rows"]}
    assert got == {i.id for i in reg.institutions if i.region in reg.region_subtree("sjz")} and len(got) < 8


def test_indicators_equal_the_ledger(world):
    from quotas.config import load_quotas

    reg, store = world["reg"], world["store"]
    tables = build_ledger(store, reg, 2025, quotas=load_quotas(world["quotas"], reg))
    with client(world, "admin") as c:
        doc = c.get("/api/v1/indicators", params={"year": 2025}).json()
        IndicatorRows.model_validate(doc)
        by_region = c.get("/api/v1/indicators", params={"year": 2025, "group": "region"}).json()["rows"]
    summary = tables.summary.set_index("institution_id")
    assert [r["institution_id"] for r in doc["rows"]] == list(summary.index)
    for row in doc["rows"]:
        for col in ("kgce", "tce", "t_co2", "kgce_per_m2", "kgce_per_person", "water_m3_per_person", "kgco2_per_m2",
                    "estimated_share", "rank_in_category", "category_peers", "level_kgce_per_person"):
            assert same(row[col], summary.loc[row["institution_id"], col]), (row["institution_id"], col)
    assert {r["level_kgce_per_person"] for r in doc["rows"]} >= {"guide", "constraint"}  # the levels spread
    totals = tables.totals[tables.totals["group"] == "region"].set_index("key")
    assert {r["key"] for r in by_region} == set(totals.index)
    for row in by_region:
        assert same(row["tce"], totals.loc[row["key"], "tce"])


def test_indicators_of_a_month_are_that_month(world):
    reg, store = world["reg"], world["store"]
    jan = build_ledger(store, reg, 2025, month=1).summary.set_index("institution_id")
    with client(world, "inst1") as c:
        rows = c.get("/api/v1/indicators", params={"year": 2025, "month": "2025-01"}).json()["rows"]
        assert c.get("/api/v1/indicators", params={"year": 2025, "month": "2024-01"}).status_code == 422
    assert [r["institution_id"] for r in rows] == ["HB-0001"]
    assert same(rows[0]["kgce"], jan.loc["HB-0001", "kgce"])
    # 31 days of a constant rate: a twelfth-ish of the year, exactly 31/365 of it
    year = build_ledger(store, reg, 2025).summary.set_index("institution_id")
    assert rows[0]["kgce"] == pytest.approx(year.loc["HB-0001", "kgce"] * 31 / 365, rel=1e-6)


def test_rankings_equal_the_dashboard_query_and_the_ledger(world):
    reg, app = world["reg"], world["app"]
    users = app.users.users()
    with client(world, "admin") as c:
        doc = c.get("/api/v1/rankings", params={"year": 2025, "indicator": "kgce_per_person", "limit": 3,
                                                "offset": 2}).json()
        everything = c.get("/api/v1/rankings", params={"year": 2025, "indicator": "kgce_per_person"}).json()
    RankingRows.model_validate(doc)
    q, year = user_query(users["admin"], reg, 2025, None, None, "kgce_per_person", "", None, 0, 100, 2026)
    expected = ranked(app.service.ranking_table(year), q)
    assert doc["total"] == len(expected) == 8
    assert [r["institution_id"] for r in doc["rows"]] == expected["institution_id"].iloc[2:5].tolist()
    assert [r["rank_in_category"] for r in everything["rows"]] == expected["rank"].tolist()
    # the ledger's rank in category (whole portfolio) is the same
    from quotas.config import load_quotas
    from reports.ledger import RANK_INDICATOR

    if RANK_INDICATOR == "kgce_per_person":
        summary = build_ledger(world["store"], reg, 2025, quotas=load_quotas(world["quotas"], reg)).summary
        led = summary.set_index("institution_id")["rank_in_category"]
        assert {r["institution_id"]: r["rank_in_category"] for r in everything["rows"]} == led.astype(int).to_dict()
    # 2025 has no year before it in the store: no year-on-year change
    assert all(r["yoy_pct"] is None for r in everything["rows"])
    with client(world, "inst1") as c:
        own = c.get("/api/v1/rankings", params={"year": 2025, "indicator": "kgce_per_person"}).json()
        assert [r["institution_id"] for r in own["rows"]] == ["HB-0001"]
        assert own["rows"][0]["rank_in_category"] == expected.set_index("institution_id").loc["HB-0001", "rank"]
        assert c.get("/api/v1/rankings", params={"year": 2025, "indicator": "kgce_per_person",
                                                 "region": "sjz"}).status_code == 403
        assert c.get("/api/v1/rankings", params={"year": 2025, "indicator": "nope"}).status_code == 422


def test_consumption_equals_the_export(world, tmp_path):
    reg, store = world["reg"], world["store"]
    with client(world, "inst1") as c:
        doc = c.get("/api/v1/consumption", params={"meter": "HB-0001-E0", "freq": "day", "start": "2025-02-01",
                                                   "end": "2025-02-28"}).json()
        ConsumptionRows.model_validate(doc)
        assert c.get("/api/v1/consumption", params={"meter": "HB-0002-E0", "freq": "day", "start": "2025-02-01",
                                                    "end": "2025-02-28"}).status_code == 403
        assert c.get("/api/v1/consumption", params={"meter": "NO-SUCH", "freq": "day", "start": "2025-02-01",
                                                    "end": "2025-02-28"}).status_code == 403
        assert c.get("/api/v1/consumption", params={"meter": "HB-0001-E0", "freq": "week", "start": "2025-02-01",
                                                    "end": "2025-02-28"}).status_code == 422
        bad = c.get("/api/v1/consumption", params={"meter": "HB-0001-E0", "start": "2025-02-28", "end": "2025-02-01"})
        assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "end"
    lo, hi = pd.Timestamp("2025-02-01", tz=reg.timezone), pd.Timestamp("2025-03-01", tz=reg.timezone)
    table = consumption_table(store.consumption("day", lo, hi, ["HB-0001-E0"]), reg)
    assert len(doc["rows"]) == len(table) == 28
    assert [r["period_start"] for r in doc["rows"]] == table["period_start"].tolist()
    assert [r["quantity"] for r in doc["rows"]] == table["quantity"].tolist()
    floor = reg.institution_by_id["HB-0001"].floor_area_m2
    assert doc["rows"][0]["quantity"] == pytest.approx(24 * w.ELEC_KW_PER_M2 * floor, rel=1e-6)


def test_alerts_in_scope_and_acknowledge(world):
    import json

    from alerts.outbox import Outbox

    box = Outbox(world["base"] / "data")
    con = box._connect()
    with con:
        for key, inst in (("k-hb1", "HB-0001"), ("k-hb5", "HB-0005")):
            payload = {"rule": "quota_breach", "severity": "critical", "institution_id": inst, "scope": None,
                       "indicator": "energy_tce", "period": "2026", "actual": 1.0, "limit": 0.5, "projected": None,
                       "message_zh": "超限", "message_en": "over", "first_seen": "2026-03-01T00:00:00+00:00",
                       "key": key}
            con.execute("INSERT INTO alert (key, rule, severity, scope, institution_id, grp, payload, status, episode,"
                        " first_seen, last_seen, last_notified) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', 1, ?, ?, 0)",
                        (key, payload["rule"], payload["severity"], f"institution:{inst}", inst, key,
                         json.dumps(payload), payload["first_seen"], payload["first_seen"]))
    con.close()
    with client(world, "inst1") as c:
        doc = c.get("/api/v1/alerts").json()
        AlertRows.model_validate(doc)
        assert [a["key"] for a in doc["rows"]] == ["k-hb1"]
        assert c.post("/api/v1/alerts/k-hb5/ack").status_code == 403
        assert c.post("/api/v1/alerts/nope/ack").status_code == 403
        done = c.post("/api/v1/alerts/k-hb1/ack")
        assert done.status_code == 200 and done.json()["acknowledged_by"] == "inst1"
        assert c.get("/api/v1/alerts", params={"status": "bogus"}).status_code == 422
    with client(world, "admin") as c:
        rows = {a["key"]: a for a in c.get("/api/v1/alerts", params={"status": "all"}).json()["rows"]}
    assert rows["k-hb1"]["acknowledged_by"] == "inst1" and rows["k-hb5"]["acknowledged_by"] is None


READINGS = ("meter_id,time,value\n"
            "HB-0001-E0,2026-03-10T13:00:00+08:00,{a}\n"
            "HB-0001-E0,2026-03-10T14:00:00+08:00,{b}\n")


def test_readings_post_all_or_nothing_and_idempotent(world):
    store = world["store"]
    last = float(store.last_samples_before(pd.Timestamp("2026-03-10 12:00:01", tz="Asia/Shanghai"),
                                           ["HB-0001-E0"])["value"].iloc[0])
    good = READINGS.format(a=last + 1, b=last + 2)
    bad = good + "HB-0001-E0,not-a-time,5\nNOPE,2026-03-10T15:00:00+08:00,-1\n"
    headers = {"Content-Type": "text/csv"}
    before = store.read_samples(meter_ids=["HB-0001-E0"])
    with client(world, "inst1") as c:
        r = c.post("/api/v1/readings", content=bad.encode(), headers=headers)
        assert r.status_code == 422
        problems = r.json()["problems"]
        assert {(p["line"], p["field"]) for p in problems} == {(4, "time"), (5, "meter_id"), (5, "value")}
        pd.testing.assert_frame_equal(store.read_samples(meter_ids=["HB-0001-E0"]), before)  # nothing written
        first = c.post("/api/v1/readings", content=good.encode(), headers=headers)
        assert first.status_code == 200 and first.json() == {"new": 2, "identical": 0}
        again = c.post("/api/v1/readings", content=good.encode(), headers=headers)
        assert again.json() == {"new": 0, "identical": 2}
        assert len(store.read_samples(meter_ids=["HB-0001-E0"])) == len(before) + 2  # stored once
        changed = c.post("/api/v1/readings", content=READINGS.format(a=last + 1, b=last + 9).encode(),
                         headers=headers)
        assert changed.status_code == 422 and changed.json()["problems"][0]["line"] == 3
        other = c.post("/api/v1/readings", content=b"meter_id,time,value\nHB-0005-E0,2026-03-10T13:00:00+08:00,1\n",
                       headers=headers)
        assert other.status_code == 403
        assert c.post("/api/v1/readings", content=b"\xff\xfe\x00", headers=headers).status_code == 422


def test_bills_post(world):
    body = (b"institution_id,energy,period_start,period_end,quantity,unit,cost_cny\n"
            b"HB-0001,heat,2025-01-01,2025-01-31,120,GJ,4800\n")
    with client(world, "inst1") as c:
        assert c.post("/api/v1/bills", content=body).json() == {"new": 1, "identical": 0, "replaced": 0}
        assert c.post("/api/v1/bills", content=body).json() == {"new": 0, "identical": 1, "replaced": 0}
        fixed = body.replace(b",120,", b",125,")
        refused = c.post("/api/v1/bills", content=fixed)  # append-only (issue 15): a correction says so
        assert refused.status_code == 422 and refused.json()["problems"][0]["line"] == 2
        assert "differs from the stored bill" in refused.json()["problems"][0]["message"]
        assert c.post("/api/v1/bills", params={"replace": "true", "reason": "账单更正"}, content=fixed).json() == {
            "new": 0, "identical": 0, "replaced": 1}
        assert c.post("/api/v1/bills", content=fixed.replace(b"HB-0001", b"HB-0005")).status_code == 403
        r = c.post("/api/v1/bills", content=fixed.replace(b"GJ", b"kWh"))
        assert r.status_code == 422 and r.json()["problems"][0] == {
            "line": 2, "field": "unit", "message": r.json()["problems"][0]["message"]}
    bills = world["store"].read_bills(["HB-0001"])
    assert bills["quantity"].tolist() == [125.0]


def test_institution_token_never_sees_another_institution(world):
    """Every GET endpoint, asked by HB-0001's token about HB-0005: 403 or rows of HB-0001 only."""
    with client(world, "inst1") as c:
        for path, params in (("/institutions", {}), ("/indicators", {"year": 2025}),
                             ("/indicators", {"year": 2025, "group": "region"}),
                             ("/rankings", {"year": 2025, "indicator": "kgce_per_m2"}), ("/alerts", {"status": "all"})):
            r = c.get("/api/v1" + path, params=params)
            assert r.status_code == 200
            text = r.text
            assert "HB-0005" not in text and "HB-0002" not in text, path
        assert c.get("/api/v1/consumption", params={"meter": "HB-0005-E0", "start": "2025-01-01",
                                                    "end": "2025-01-31"}).status_code == 403
        # region totals of an institution token sum only its own institution
        rows = c.get("/api/v1/indicators", params={"year": 2025, "group": "region"}).json()["rows"]
        assert all(r["institutions"] == 1 for r in rows)


def test_openapi_document_validates_and_covers_every_route(world):
    doc = httpx.get(world["url"] + "/api/v1/openapi.json").json()
    validate(doc)
    rules = {r.rule for r in world["app"].server.url_map.iter_rules() if r.rule.startswith("/api/v1")}
    described = {p.replace("{", "<").replace("}", ">") for p in doc["paths"]}
    assert rules - {"/api/v1/openapi.json"} <= described
    assert "/healthz" in doc["paths"]
    assert doc["paths"]["/api/v1/readings"]["post"]["requestBody"]["content"].keys() == {"text/csv"}


def test_bad_parameters_are_422_with_the_field(world):
    with client(world, "admin") as c:
        for params, field in (({}, "year"), ({"year": "x"}, "year"), ({"year": 1800}, "year"),
                              ({"year": 2025, "group": "city"}, "group"), ({"year": 2025, "bogus": 1}, "bogus")):
            r = c.get("/api/v1/indicators", params=params)
            assert r.status_code == 422 and r.json()["problems"][0]["field"] == field, (params, r.text)


def test_tokens_cli_create_list_revoke(world, tmp_path, capsys):
    users = tmp_path / "users.yaml"
    w.write_users(users)
    assert main(["users", "token", "inst5", "--users", str(users)]) == 0
    text = capsys.readouterr().out.strip()
    stored = load_tokens(tokens_file(users))
    assert len(stored) == 1 and text not in tokens_file(users).read_text()  # only the hash is kept
    (tid,) = stored
    assert verify_token(stored, text).user == "inst5"
    assert main(["users", "tokens", "--users", str(users)]) == 0
    assert tid in capsys.readouterr().out
    assert main(["users", "token", "inst5", "--revoke", tid, "--users", str(users)]) == 0
    assert load_tokens(tokens_file(users)) == {}
    assert main(["users", "token", "nobody", "--users", str(users)]) == 1


def test_revoked_token_and_removed_user_are_refused(world):
    users = world["users"]
    record, text = create_token(tokens_file(users), "inst5")
    url = world["url"] + "/api/v1/institutions"
    assert httpx.get(url, headers={"Authorization": f"Bearer {text}"}).status_code == 200
    from core.tokens import revoke_token

    assert revoke_token(tokens_file(users), record.id)
    assert httpx.get(url, headers={"Authorization": f"Bearer {text}"}).status_code == 401


def test_healthz_reads_heartbeats(world, tmp_path):
    url = world["url"] + "/healthz"
    hdir = health_dir(world["base"] / "data")
    r = httpx.get(url)
    assert r.status_code == 200 and r.json()["store"]["reachable"] is True
    hb = Heartbeat(hdir, "collect-test", role="collect")
    hb.set("collect", {"meters": 3, "poll_interval_s": 60, "last_poll_ok_at": "2020-01-01T00:00:00+00:00",
                       "queue_backlog": 7})
    hb.beat()
    try:
        doc = httpx.get(url)
        assert doc.status_code == 503
        proc = next(p for p in doc.json()["processes"] if p["name"] == "collect-test")
        assert proc["stalled"] and proc["queue_backlog"] == 7
    finally:
        (hdir / "collect-test.json").unlink()
    assert httpx.get(url).status_code == 200


@pytest.mark.influx
def test_healthz_follows_a_real_influxd(tmp_path):
    """/healthz turns 503 when influxd stops and 200 again when it is back."""
    from storage import open_store
    from tests.servers import Influxd

    (tmp_path / "influx").mkdir()
    influxd = Influxd(tmp_path / "influx")
    influxd.start()
    try:
        reg = w.registry()
        store = open_store(influxd.url("healthz"), tz=reg.timezone)
        store.set_meters(reg.meters_frame())
        users = w.write_users(tmp_path / "users.yaml")
        app = create_web_app(reg, store, users, data_dir=tmp_path / "data")
        handle = serve(app, "127.0.0.1", 0)
        try:
            assert httpx.get(handle.url + "/healthz").status_code == 200
            influxd.stop()
            down = httpx.get(handle.url + "/healthz", timeout=60)
            assert down.status_code == 503 and down.json()["store"]["reachable"] is False
            influxd.start()
            assert httpx.get(handle.url + "/healthz", timeout=60).status_code == 200
        finally:
            handle.shutdown()
            store.close()
    finally:
        influxd.stop()
        influxd.cleanup()
