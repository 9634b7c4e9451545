"""A bounded HTTP fuzz of the dashboard's downloads and callbacks (hypothesis,
derandomized): a real server on loopback, a real HTTP client, signed-in users; no answer
is a 5xx, and download parameters out of range are refused (4xx), never served."""

from __future__ import annotations

import random

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.app import create_app, serve
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
    app = create_app(reg, store, users, data_dir=d / "data", now=lambda: w.NOW)
    handle = serve(app, "127.0.0.1", 0)
    clients = {}
    for name in ("admin", "inst1"):
        clients[name] = httpx.Client(base_url=handle.url, timeout=120)
        assert web.login(clients[name], name, w.PASSWORDS[name]).status_code == 302
    yield {"app": app, "clients": clients}
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
