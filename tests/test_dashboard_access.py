"""Access by role over real HTTP (the dashboard served on a loopback port): login,
sessions, and what each role gets from pages, crafted callback requests and downloads."""

from __future__ import annotations

import io
import json

import httpx
import pandas as pd
import pytest

from alerts.outbox import Outbox
from alerts.record import Alert
from core import users as auth
from dashboard.app import create_app, serve
from dashboard.login import BACKOFF_FREE_NAME, BACKOFF_MAX_NAME_S, LoginThrottle
from tests import support_dashboard_world as w
from tests import support_web as web
from tests.support_web import Answer, FakeClock, alerts_callback, callback


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from storage import open_store

    d = tmp_path_factory.mktemp("site")
    reg = w.registry()
    store = open_store(f"embedded:{d / 'store'}", tz=reg.timezone)
    w.fill_store(store, reg)
    users = w.write_users(d / "users.yaml")
    w.write_mv_project(d / "mv")
    outbox = Outbox(d)
    outbox.submit([
        Alert.new("quota", "warning", "institution:HB-0001", "kgce_per_m2", "2026", message_zh="一号超标",
                  message_en="HB-0001 over quota", first_seen="2026-03-01T00:00:00+08:00", institution_id="HB-0001"),
        Alert.new("quota", "critical", "institution:HB-0005", "kgce_per_m2", "2026", message_zh="五号超标",
                  message_en="HB-0005 over quota", first_seen="2026-03-01T00:00:00+08:00", institution_id="HB-0005"),
    ])
    quotas = w.write_quotas(d / "quotas.yaml", reg)
    clock = FakeClock()
    app = create_app(reg, store, users, quotas_path=quotas, data_dir=d, secret_key="test-secret", now=lambda: w.NOW,
                     login_throttle=LoginThrottle(clock=clock))
    handle = serve(app, "127.0.0.1", 0)
    yield {"url": handle.url, "reg": reg, "users": users, "dir": d, "outbox": outbox, "quotas": quotas,
           "clock": clock}
    handle.shutdown()
    store.close()


def login(site, name: str) -> httpx.Client:
    c = httpx.Client(base_url=site["url"], timeout=30)
    r = web.login(c, name, w.PASSWORDS[name], next="/")
    assert r.status_code == 302, r.text
    return c


def render(c: httpx.Client, path: str, lang: str = "en") -> Answer:
    return callback(c, [("page", "children")], [{"id": "url", "property": "pathname", "value": path},
                                                 {"id": "lang", "property": "data", "value": lang}])


def ranking(c: httpx.Client, region=None, category=None, search="", page=0) -> list[dict]:
    r = callback(c, [("rank-table", "data"), ("rank-table", "columns"), ("rank-table", "page_count"),
                     ("rank-table", "page_current"), ("rank-count", "children"), ("rank-export", "href")],
                 [{"id": "rank-region", "property": "value", "value": region},
                  {"id": "rank-category", "property": "value", "value": category},
                  {"id": "rank-year", "property": "value", "value": 2025},
                  {"id": "rank-indicator", "property": "value", "value": "kgce_per_m2"},
                  {"id": "rank-search", "property": "value", "value": search},
                  {"id": "rank-table", "property": "page_current", "value": page},
                  {"id": "rank-table", "property": "page_size", "value": 25},
                  {"id": "rank-table", "property": "sort_by", "value": []}],
                 state=[{"id": "lang", "property": "data", "value": "en"}])
    assert r.status_code == 200, r.text
    return r.json()["response"]["rank-table"]["data"]


def _walk(node):
    """Every dict and list inside a Dash JSON response."""
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def name_of(site, inst: str) -> str:
    return site["reg"].institution_by_id[inst].name


def test_everything_needs_a_login(site):
    c = httpx.Client(base_url=site["url"], timeout=30)
    r = c.get("/ranking")
    assert r.status_code == 302 and r.headers["location"].startswith("/login")
    assert render(c, "/institution/HB-0001").status_code == 401
    assert c.get("/download/institution/HB-0001/daily.csv").status_code == 401
    assert c.get("/download/ranking.csv").status_code == 401


def test_wrong_passwords_slow_down_but_never_lock_out(site):
    """Five wrong passwords used to refuse the right one for five minutes (a denial of
    service). Now each failure past the third doubles the wait, and the right password
    is accepted as soon as the wait is over."""
    auth.set_user(site["users"], "victim", "institution", "HB-0003", "victim-pass-123")
    c = httpx.Client(base_url=site["url"], timeout=30)
    for n in range(5):
        r = web.login(c, "victim", "wrong-password")
        assert r.status_code == 401 and "login-error" in r.text, n
        site["clock"].advance(LoginThrottle.delay_s(n + 1, BACKOFF_FREE_NAME, BACKOFF_MAX_NAME_S))
    site["clock"].advance(-1)  # one second before the wait after the fifth failure (4 s) ends
    r = web.login(c, "victim", "victim-pass-123")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"  # not looked at yet: no guess counted
    site["clock"].advance(1)
    r = web.login(c, "victim", "victim-pass-123")
    assert r.status_code == 302 and r.headers["location"] == "/"
    assert render(c, "/institution/HB-0003").status_code == 200


def test_open_redirect_is_refused(site):
    c = httpx.Client(base_url=site["url"], timeout=30)
    r = web.login(c, "admin", w.PASSWORDS["admin"], next="//evil.example/")
    assert r.status_code == 302 and r.headers["location"] == "/"


def test_institution_user_sees_only_their_institution_in_pages(site):
    c = login(site, "inst1")
    own = render(c, "/institution/HB-0001")
    assert own.status_code == 200 and name_of(site, "HB-0001") in own.text
    assert "forbidden" not in own.text
    # the 2025 energy per person against the standard of the quota file
    from quotas.config import load_quotas

    per_person = w.kgce_per_person_2025(site["reg"])["HB-0001"]
    lv = next(s for s in load_quotas(site["quotas"], site["reg"]).standards if s.id == "general")
    lv = lv.levels["kgce_per_person"]
    expect = next((k for k in ("guide", "baseline", "constraint") if per_person <= lv[k]), "exceeds")
    row = next(r for r in _walk(own.json()) if isinstance(r, dict) and r.get("props", {}).get("id") ==
               {"type": "ind-row", "id": "kgce_per_person"})
    assert f"level-{expect}" in json.dumps(row) and f"{per_person:,.2f}" in json.dumps(row)
    other = render(c, "/institution/HB-0002")
    assert other.status_code == 200
    assert '"forbidden"' in other.text and name_of(site, "HB-0002") not in other.text
    assert "HB-0002-E0" not in other.text
    rows = ranking(c)
    assert [r["institution_id"] for r in rows] == ["HB-0001"]
    # peers: government offices of its own region (sjz has one; the province has two)
    assert rows[0]["peers"] == 1 and rows[0]["rank"] == 1
    assert ranking(c, search="第") == []  # other institutions' names match, but they are not shown
    assert [r["institution_id"] for r in ranking(c, search="机关")] == ["HB-0001"]


def test_crafted_callbacks_are_refused(site):
    c = login(site, "inst1")
    # the hourly chart with another institution's id in the State
    r = callback(c, [("inst-hourly", "figure")], [{"id": "inst-hour-date", "property": "date", "value": "2026-03-09"}],
                 state=[{"id": "inst-id", "property": "data", "value": "HB-0005"},
                        {"id": "lang", "property": "data", "value": "en"}])
    assert r.status_code == 200
    fig = r.json()["response"]["inst-hourly"]["figure"]
    assert fig.get("data", []) == [] and "access" in json.dumps(fig)
    rows = ranking(c, region="bd")
    assert rows == []
    # overview of a region
    r = callback(c, [("ov-body", "children")], [{"id": "ov-region", "property": "value", "value": "hebei"},
                                                {"id": "ov-year", "property": "value", "value": 2025}],
                 state=[{"id": "lang", "property": "data", "value": "en"}])
    assert '"forbidden"' in r.text and "gauge" not in r.text


def _overview(c: httpx.Client, region, year=2026) -> dict:
    r = callback(c, [("ov-body", "children")], [{"id": "ov-region", "property": "value", "value": region},
                                                {"id": "ov-year", "property": "value", "value": year}],
                 state=[{"id": "lang", "property": "data", "value": "en"}])
    assert r.status_code == 200
    return r.json()


def _gauge(resp: dict, key: str) -> dict:
    """The gauge's figures, as its element carries them (`data-value`, `data-target`)."""
    node = next(n for n in _walk(resp) if isinstance(n, dict) and n.get("props", {}).get("id") == f"gauge-{key}")
    return node["props"]


def test_overview_gauges_use_the_scope_targets(site):
    kw_all = {i.id: w.ELEC_KW_PER_M2 * i.floor_area_m2 for i in site["reg"].institutions}
    # institution user: their own institution against its own target (HB-0001-2026: 350 tce)
    c = login(site, "inst1")
    g = _gauge(_overview(c, None), "energy_tce")
    assert g["data-target"] == w.TARGET_HB0001_TCE
    from models.api import load_factors

    f = load_factors()
    inst = site["reg"].institution_by_id["HB-0001"]
    per_day = (24 * kw_all["HB-0001"] * f.coal_kgce_per_unit("electricity")
               + w.GAS_M3_PER_M2_DAY * inst.floor_area_m2 * f.coal_kgce_per_unit("natural_gas"))
    assert g["data-value"] == pytest.approx(68.5 * per_day / 1000, rel=1e-3)  # to 10 Mar 12:00
    # administrator on the province: the Hebei 2026 target
    admin = login(site, "admin")
    g = _gauge(_overview(admin, "hebei"), "energy_tce")
    assert g["data-target"] == w.TARGET_HEBEI_TCE
    # a region manager on their region, which has no target of its own: no threshold
    mgr = login(site, "sjz")
    g = _gauge(_overview(mgr, "sjz"), "energy_tce")
    assert g["data-target"] is None and "gauge-target" not in json.dumps(g)


def test_hourly_values_are_right_for_own_institution(site):
    c = login(site, "inst1")
    r = callback(c, [("inst-hourly", "figure")], [{"id": "inst-hour-date", "property": "date", "value": "2026-03-09"}],
                 state=[{"id": "inst-id", "property": "data", "value": "HB-0001"},
                        {"id": "lang", "property": "data", "value": "en"}])
    traces = r.json()["response"]["inst-hourly"]["figure"]["data"]
    main = next(tr for tr in traces if "HB-0001-E0" in tr["name"])
    ys = main["y"] if isinstance(main["y"], list) else _decode(main["y"])
    kw = w.ELEC_KW_PER_M2 * site["reg"].institution_by_id["HB-0001"].floor_area_m2
    assert len(ys) == 24 and all(abs(y - kw) < 1e-6 * kw for y in ys)


def _decode(typed: dict) -> list[float]:
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(typed["bdata"]), dtype=typed["dtype"]).tolist()


def test_downloads_are_scoped(site):
    c = login(site, "inst1")
    assert c.get("/download/institution/HB-0002/daily.csv").status_code == 403
    assert c.get("/download/institution/NOPE/daily.csv").status_code == 403
    own = c.get("/download/institution/HB-0001/daily.csv?days=10")
    assert own.status_code == 200
    df = pd.read_csv(io.BytesIO(own.content), encoding="utf-8-sig")
    assert set(df["meter_id"].str[:7]) == {"HB-0001"}
    day = df[(df["meter_id"] == "HB-0001-E0") & df["period_start"].str.startswith("2026-03-05")]
    kw = w.ELEC_KW_PER_M2 * site["reg"].institution_by_id["HB-0001"].floor_area_m2
    assert day["quantity"].iloc[0] == pytest.approx(24 * kw, rel=1e-6)
    rank = pd.read_csv(io.BytesIO(c.get("/download/ranking.csv?year=2025").content), encoding="utf-8-sig")
    assert list(rank["institution_id"]) == ["HB-0001"]
    assert c.get("/download/ranking.csv?year=2025&region=hebei").status_code == 403


def test_ledger_download_is_scoped(site):
    c = login(site, "inst1")
    r = c.get("/download/ledger?year=2025&format=csv")
    assert r.status_code == 200
    led = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig")
    assert set(led["institution_id"]) == {"HB-0001"}
    kwh = led.loc[led["energy"] == "electricity", "quantity"].iloc[0]
    assert kwh == pytest.approx(w.ELEC_KW_PER_M2 * site["reg"].institution_by_id["HB-0001"].floor_area_m2 * 8760,
                                rel=1e-6)
    admin = login(site, "admin")
    full = pd.read_csv(io.BytesIO(admin.get("/download/ledger?year=2025&format=csv").content), encoding="utf-8-sig")
    assert set(full["institution_id"]) == {i.id for i in site["reg"].institutions}
    assert c.get("/download/ledger?year=2025&format=pdf").status_code == 400
    xlsx = c.get("/download/ledger?year=2025")
    summary = pd.read_excel(io.BytesIO(xlsx.content), sheet_name="summary", header=None)
    assert "HB-0001" in summary.to_string() and "HB-0002" not in summary.to_string()


def _sheet(content: bytes, name: str) -> pd.DataFrame:
    raw = pd.read_excel(io.BytesIO(content), sheet_name=name, header=None)
    head = next(n for n in range(len(raw)) if "institution_id" in raw.iloc[n].astype(str).tolist()
                or "region" in raw.iloc[n].astype(str).tolist())
    df = pd.read_excel(io.BytesIO(content), sheet_name=name, header=head)
    return df.iloc[1:] if df.iloc[0].astype(str).str.contains("[\u4e00-\u9fff]").any() else df


def test_monthly_report_download_is_scoped(site):
    c = login(site, "inst1")
    r = c.get("/download/report?month=2026-02")
    assert r.status_code == 200
    inst = _sheet(r.content, "institutions")
    assert list(inst["institution_id"]) == ["HB-0001"]
    kw = w.ELEC_KW_PER_M2 * site["reg"].institution_by_id["HB-0001"].floor_area_m2
    assert float(inst["electricity_kwh"].iloc[0]) == pytest.approx(28 * 24 * kw, rel=1e-6)
    # the region sheet sums only what the user may see: sjz holds HB-0001 alone here
    regions = _sheet(r.content, "regions").set_index("region")
    assert float(regions.loc["sjz", "electricity_kwh"]) == pytest.approx(28 * 24 * kw, rel=1e-6)
    assert c.get("/download/report?month=nonsense").status_code == 400
    admin = login(site, "admin")
    full = _sheet(admin.get("/download/report?month=2026-02").content, "institutions")
    assert len(full) == 8


def test_region_manager_sees_their_subtree(site):
    c = login(site, "sjz")
    rows = ranking(c)
    ids = {r["institution_id"] for r in rows}
    expected = {i.id for i in site["reg"].institutions if i.region == "sjz"}
    assert ids == expected and len(ids) == 4
    assert '"forbidden"' in render(c, "/institution/HB-0005").text
    assert name_of(site, "HB-0003") in render(c, "/institution/HB-0003").text
    assert c.get("/download/institution/HB-0005/daily.csv").status_code == 403
    assert ranking(c, region="bd") == []


def test_admin_ranks_everyone_in_peer_groups(site):
    c = login(site, "admin")
    rows = ranking(c)
    assert len(rows) == 8
    table = pd.DataFrame(rows)
    # within each category, rank 1 has the lowest value
    for _cat, g in table.groupby("category_name"):
        assert g.sort_values("value")["rank"].iloc[0] == 1
        assert (g["peers"] == len(g)).all()


def test_alerts_are_scoped_and_ack_checks_access(site):
    c = login(site, "inst1")
    assert render(c, "/alerts").status_code == 200
    listed = alerts_callback(c)
    assert "HB-0001 over quota" in listed.text and "HB-0005 over quota" not in listed.text
    key5 = next(a["key"] for a in site["outbox"].list_alerts() if a["institution_id"] == "HB-0005")
    key1 = next(a["key"] for a in site["outbox"].list_alerts() if a["institution_id"] == "HB-0001")
    ack = alerts_callback(c, clicked=key5)
    assert ack.status_code == 200 and "HB-0005 over quota" not in ack.text and "1 alert(s) refused" in ack.text
    assert next(a for a in site["outbox"].list_alerts() if a["key"] == key5)["acknowledged_by"] is None
    # bulk: a crafted selection with another institution's alert acknowledges only the user's own
    ack = alerts_callback(c, selected=(key5, key1), bulk=True)
    assert ack.status_code == 200 and "1 alert(s) acknowledged" in ack.text and "1 alert(s) refused" in ack.text
    assert next(a for a in site["outbox"].list_alerts() if a["key"] == key1)["acknowledged_by"] == "inst1"
    assert next(a for a in site["outbox"].list_alerts() if a["key"] == key5)["acknowledged_by"] is None


def mv_callback(c: httpx.Client, project: str) -> httpx.Response:
    return callback(c, [("mv-body", "children"), ("mv-download", "href")],
                    [{"id": "mv-project", "property": "value", "value": project}],
                    state=[{"id": "lang", "property": "data", "value": "en"}])


def test_savings_verification_page_and_download(site):
    c = login(site, "inst1")
    assert "emc-001" in render(c, "/mv").text
    r = mv_callback(c, "emc-001")
    assert r.status_code == 200
    body = r.json()["response"]
    assert body["mv-download"]["href"] == "/download/mv/emc-001.xlsx"
    # constant use in both periods: nothing avoided; the reporting actual is 68 days of the main meter
    kw = w.ELEC_KW_PER_M2 * site["reg"].institution_by_id["HB-0001"].floor_area_m2
    text = json.dumps(body["mv-body"])
    assert f"{68 * 24 * kw:,.0f} kWh" in text
    xlsx = c.get("/download/mv/emc-001.xlsx")
    summary = pd.read_excel(io.BytesIO(xlsx.content), sheet_name="summary")
    kv = dict(zip(summary.iloc[:, 0], summary.iloc[:, 1], strict=False))
    assert float(kv["reporting_actual"]) == pytest.approx(68 * 24 * kw, rel=1e-6)
    assert abs(float(kv["avoided"])) < 1e-6 * 68 * 24 * kw
    # another institution's user: not listed, crafted callback and download refused
    other = login(site, "inst5")
    assert "emc-001" not in render(other, "/mv").text
    r = mv_callback(other, "emc-001")
    assert '"forbidden"' in r.text and f"{68 * 24 * kw:,.0f}" not in r.text
    assert other.get("/download/mv/emc-001.xlsx").status_code == 403


def test_password_change_ends_sessions(site):
    c = login(site, "inst5")
    assert render(c, "/institution/HB-0005").status_code == 200
    auth.set_user(site["users"], "inst5", "institution", "HB-0005", "a-new-password-1")
    assert render(c, "/institution/HB-0005").status_code == 401
    auth.set_user(site["users"], "inst5", "institution", "HB-0005", w.PASSWORDS["inst5"])
