"""A bounded HTTP fuzz of the dashboard's downloads and callbacks and of the HTTP API
(hypothesis, derandomized): a real server on loopback, a real HTTP client, signed-in
users and API tokens; no answer is a 5xx, download parameters out of range are refused
(4xx), never served, and a fuzzed readings body the reference rejects is a 422 that
writes nothing."""

from __future__ import annotations

import random

import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicwatt.web import create_web_app
from core.tokens import create_token, tokens_file
from dashboard.app import serve
from tests import support_dashboard_world as w
from tests import support_fuzz as fz
from tests import support_web as web

FUZZ = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from storage import open_store

    d = tmp_path_factory.mktemp("fuzzweb")
    reg = w.registry()
    store = open_store(f"embedded:{d / 'store'}", tz=reg.timezone)
    w.fill_store(store, reg)
    users = w.write_users(d / "users.yaml")
    app = create_web_app(reg, store, users, data_dir=d / "data", now=lambda: w.NOW)
    handle = serve(app, "127.0.0.1", 0)
    clients = {}
    for name in ("admin", "inst1"):
        clients[name] = httpx.Client(base_url=handle.url, timeout=120)
        assert web.login(clients[name], name, w.PASSWORDS[name]).status_code == 302
    api = {name: httpx.Client(base_url=handle.url, timeout=120, headers={
        "Authorization": f"Bearer {create_token(tokens_file(users), name)[1]}"}) for name in ("admin", "inst1")}
    yield {"app": app, "clients": clients, "api": api, "store": store, "registry": reg}
    handle.shutdown()
    store.close()


@FUZZ
@given(st.randoms(use_true_random=False))
def test_fuzzed_download_parameters_never_5xx(site, rnd: random.Random):
    c = site["clients"][rnd.choice(["admin", "inst1"])]
    path, query, want = fz.download_url(rnd, w.NOW.year, str(w.NOW.tz_localize(None).to_period("M")))
    r = c.get(path, params=query)
    assert r.status_code < 500, (path, query, r.status_code, r.text[:300])
    if want is False:
        assert 400 <= r.status_code < 500, (path, query, r.status_code)


@FUZZ
@given(st.randoms(use_true_random=False))
def test_fuzzed_callback_parameters_never_5xx(site, rnd: random.Random):
    c = site["clients"][rnd.choice(["admin", "inst1"])]
    body = fz.callback_body(rnd, site["app"].callback_map)
    r = c.post("/_dash-update-component", json=body, headers=web.csrf_headers(c))
    assert r.status_code < 500, (body, r.status_code, r.text[:300])
    assert r.text != "bad callback request", f"no input check caught {body}"  # the safety net is not the check


API_GETS = {
    "/api/v1/institutions": [],
    "/api/v1/indicators": ["year", "month", "group"],
    "/api/v1/rankings": ["year", "indicator", "region", "category", "offset", "limit"],
    "/api/v1/consumption": ["meter", "freq", "start", "end"],
    "/api/v1/alerts": ["status"],
}
API_VALUES = ["2025", "2026", "1989", "2101", "-1", "0", "2025-01", "2025-13", "institution", "region", "category",
              "kgce_per_m2", "kgce_per_person", "sjz", "hebei", "school", "HB-0001-E0", "HB-0005-E0", "hour", "day",
              "month", "2025-01-01", "2025-02-30", "2025-01-31T12:00:00+08:00", "open", "all", "1000", "1001",
              "99999999999999999999"]


@FUZZ
@given(st.randoms(use_true_random=False))
def test_fuzzed_api_parameters_never_5xx(site, rnd: random.Random):
    c = site["api"][rnd.choice(["admin", "inst1"])]
    path = rnd.choice(sorted(API_GETS))
    names = [*API_GETS[path], "bogus"]
    query = {k: rnd.choice(API_VALUES) if rnd.random() < 0.6 else fz.junk(rnd) for k in names if rnd.random() < 0.7}
    r = c.get(path, params=query)
    assert r.status_code < 500, (path, query, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    if r.status_code == 422:
        assert all(p["field"] and p["message"] for p in r.json()["problems"])


API_READINGS = ("meter_id,time,value\n"
                "HB-0001-E0,2026-03-10T13:00:00+08:00,{a}\n"
                "HB-0001-W0,2026-03-10T13:00:00+08:00,{b}\n")


@FUZZ
@given(st.randoms(use_true_random=False))
def test_fuzzed_api_readings_bodies_never_5xx_and_refused_whole(site, rnd: random.Random):
    store, reg = site["store"], site["registry"]
    before = store.read_samples(pd.Timestamp("2026-03-10T12:30:00+08:00"), meter_ids=["HB-0001-E0", "HB-0001-W0"])
    last = store.last_samples_before(pd.Timestamp("2026-03-10T12:00:01+08:00"), ["HB-0001-E0", "HB-0001-W0"])
    a, b = (float(v) + 1e6 for v in last.sort_values("meter_id")["value"])
    data = fz.encode(rnd, fz.mutate_text(rnd, API_READINGS.format(a=a, b=b)))
    r = site["api"]["admin"].post("/api/v1/readings", content=data, headers={"Content-Type": "text/csv"})
    assert r.status_code < 500, (data, r.status_code, r.text[:300])
    if fz.expected_readings(data, reg) is False or r.status_code != 200:
        assert r.status_code in (403, 422), (data, r.status_code, r.text[:300])
        after = store.read_samples(pd.Timestamp("2026-03-10T12:30:00+08:00"), meter_ids=["HB-0001-E0", "HB-0001-W0"])
        pd.testing.assert_frame_equal(before, after)
