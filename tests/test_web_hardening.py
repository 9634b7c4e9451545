"""Web hardening of the dashboard over real HTTP on loopback (issue 15): sessions end on
logout, CSRF (Origin + token), Secure cookies, security headers and CSP (also in headless
Chromium), private files, and 4xx instead of 5xx for bad download and callback parameters."""

from __future__ import annotations

import stat

import flask
import httpx
import pytest

from alerts.outbox import Outbox
from alerts.record import Alert
from dashboard.app import create_app, serve
from dashboard.login import SESSIONS_FILE, bearer_request
from tests import support_dashboard_world as w
from tests import support_web as web


def _alert(inst: str) -> Alert:
    return Alert.new("quota", "warning", f"institution:{inst}", "kgce_per_m2", "2026", message_zh=f"{inst} 超标",
                     message_en=f"{inst} over quota", first_seen="2026-03-01T00:00:00+08:00", institution_id=inst)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from storage import open_store

    d = tmp_path_factory.mktemp("hardening")
    reg = w.registry()
    store = open_store(f"embedded:{d / 'store'}", tz=reg.timezone)
    w.fill_store(store, reg)
    users = w.write_users(d / "users.yaml")
    Outbox(d / "data").submit([_alert("HB-0001"), _alert("HB-0002"), _alert("HB-0005")])
    yield {"dir": d, "reg": reg, "store": store, "users": users}
    store.close()


@pytest.fixture(scope="module")
def site(world):
    app = create_app(world["reg"], world["store"], world["users"], data_dir=world["dir"] / "data", now=lambda: w.NOW)
    handle = serve(app, "127.0.0.1", 0)
    yield {**world, "url": handle.url, "app": app, "outbox": Outbox(world["dir"] / "data")}
    handle.shutdown()


def signed_in(site, name: str = "admin") -> httpx.Client:
    c = httpx.Client(base_url=site["url"], timeout=60)
    assert web.login(c, name, w.PASSWORDS[name]).status_code == 302
    return c


def render(c: httpx.Client, path: str = "/", headers: dict | None = None) -> web.Answer:
    return web.callback(c, [("page", "children")], [{"id": "url", "property": "pathname", "value": path},
                                                    {"id": "lang", "property": "data", "value": "en"}],
                        headers=headers)


def acknowledge(c: httpx.Client, key: str, headers: dict | None = None, bulk: bool = False) -> web.Answer:
    """A click on the alert's "acknowledge" cell, or (`bulk`) "acknowledge selected" with its row ticked."""
    if bulk:
        return web.alerts_callback(c, selected=(key,), bulk=True, headers=headers)
    return web.alerts_callback(c, clicked=key, headers=headers)


def acknowledged_by(site, inst: str) -> str | None:
    return next(a for a in site["outbox"].list_alerts() if a["institution_id"] == inst)["acknowledged_by"]


def test_logout_ends_the_session_on_the_server(site):
    """The old session cookie stayed valid for up to 12 h after /logout."""
    c = signed_in(site)
    assert render(c).status_code == 200
    stolen = dict(c.cookies)
    r = c.get("/logout", headers={"Referer": site["url"] + "/"})  # the header's link, from our own page
    assert r.status_code == 302 and r.headers["location"] == "/login"
    replay = httpx.Client(base_url=site["url"], cookies=stolen, timeout=60)
    assert render(replay).status_code == 401
    assert replay.get("/download/ledger?year=2025").status_code == 401


def test_logout_from_another_site_asks_first(site):
    c = signed_in(site)
    r = c.get("/logout")  # no Referer / Sec-Fetch-Site: a link or image on a third site
    assert r.status_code == 200 and 'action="/logout"' in r.text
    assert render(c).status_code == 200  # still signed in
    r = c.post("/logout", data={"csrf_token": web.form_token(r.text)})
    assert r.status_code == 302 and render(c).status_code == 401


def test_state_changing_callbacks_need_origin_and_token(site):
    """`Origin: evil` on the acknowledge callback was accepted before."""
    key = _alert("HB-0001").key
    c = signed_in(site, "inst1")
    r = acknowledge(c, key, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and acknowledged_by(site, "HB-0001") is None
    r = acknowledge(c, key, headers={"Referer": "http://evil.example/page"})
    assert r.status_code == 403 and acknowledged_by(site, "HB-0001") is None
    r = acknowledge(c, key, headers={"X-CSRFToken": "forged"})
    assert r.status_code == 400 and acknowledged_by(site, "HB-0001") is None
    other = signed_in(site, "inst1")  # another session's token is no good either
    r = acknowledge(c, key, headers=web.csrf_headers(other))
    assert r.status_code == 400 and acknowledged_by(site, "HB-0001") is None
    r = acknowledge(c, key, headers={"Origin": "http://evil.example"}, bulk=True)
    assert r.status_code == 403 and acknowledged_by(site, "HB-0001") is None
    r = acknowledge(c, key, headers={"X-CSRFToken": "forged"}, bulk=True)
    assert r.status_code == 400 and acknowledged_by(site, "HB-0001") is None
    r = acknowledge(c, key, headers={"Origin": site["url"]})  # what the browser sends
    assert r.status_code == 200 and acknowledged_by(site, "HB-0001") == "inst1"


def test_login_form_needs_origin_and_token(site):
    c = httpx.Client(base_url=site["url"], timeout=60)
    form = {"username": "admin", "password": w.PASSWORDS["admin"]}
    assert c.post("/login", data=form).status_code == 400  # no token
    token = web.form_token(c.get("/login").text)
    assert c.post("/login", data={**form, "csrf_token": token}, headers={"Origin": "http://evil.example"}).status_code == 403
    r = c.post("/login", data={**form, "csrf_token": token}, headers={"Origin": site["url"]})
    assert r.status_code == 302


def test_bearer_requests_skip_csrf_and_still_need_authentication(site):
    """The hook for the HTTP API: a bearer-token request carries no cookie, so no CSRF
    token is asked for; without a valid session (the API authenticates tokens) it is 401."""
    c = httpx.Client(base_url=site["url"], timeout=60)
    r = render(c, headers={"Authorization": "Bearer some-api-token", "Origin": "http://elsewhere.example"})
    assert r.status_code == 401
    app = flask.Flask("probe")
    with app.test_request_context("/x", method="POST", headers={"Authorization": "Bearer t"}):
        assert bearer_request()
    with app.test_request_context("/x", method="POST", headers={"Authorization": "Bearer t",
                                                               "Cookie": "session=abc"}):
        assert not bearer_request()  # a browser with our cookie: CSRF applies


def test_security_headers_everywhere(site):
    c = signed_in(site)
    answers = [c.get("/login"), c.get("/"), render(c).raw, c.get("/download/ledger?year=2025&format=csv"),
               c.get("/_dash-layout")]
    csp = answers[0].headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "'unsafe-eval'" not in csp
    for h in site["app"].csp_hashes():
        assert h in csp  # Dash's inline renderer script, by hash
    for r in answers:
        assert r.status_code == 200, r.url
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Security-Policy"] == csp
        assert "Strict-Transport-Security" not in r.headers  # plain HTTP


@pytest.mark.parametrize(("behind_proxy", "secure_cookies", "forwarded_https", "secure"), [
    (False, False, False, False),
    (False, False, True, False),   # X-Forwarded-Proto is not trusted without behind_proxy
    (True, False, False, False),
    (True, False, True, True),     # TLS ended at the proxy, which says so
    (False, True, False, True),    # always Secure
])
def test_secure_cookies(world, behind_proxy, secure_cookies, forwarded_https, secure):
    app = create_app(world["reg"], world["store"], world["users"], data_dir=world["dir"] / "data",
                     now=lambda: w.NOW, behind_proxy=behind_proxy, secure_cookies=secure_cookies)
    handle = serve(app, "127.0.0.1", 0)
    try:
        c = httpx.Client(base_url=handle.url, timeout=60)
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.1.2.3"} if forwarded_https else {}
        page = c.get("/login", headers=headers)
        token = web.form_token(page.text)
        session = page.headers["set-cookie"].split(";")[0]  # a client over plain HTTP keeps no Secure cookie
        r = c.post("/login", data={"username": "admin", "password": w.PASSWORDS["admin"], "csrf_token": token},
                   headers={**headers, "Cookie": session})
        assert r.status_code == 302
        cookies = r.headers.get_list("set-cookie")
        assert {c.split("=")[0] for c in cookies} == {"session", "_csrf_token"}
        for cookie in cookies:
            assert ("; Secure" in cookie) == secure, cookie
        assert ("Strict-Transport-Security" in r.headers) == (behind_proxy and forwarded_https)
    finally:
        handle.shutdown()


def test_data_files_are_private(tmp_path, world):
    data = tmp_path / "new-data"
    users = tmp_path / "private-users" / "users.yaml"
    w.write_users(users)
    app = create_app(world["reg"], world["store"], users, data_dir=data, now=lambda: w.NOW)
    Outbox(data).submit([_alert("HB-0001")])
    assert app is not None
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE(users.parent.stat().st_mode) == 0o700
    for path in [users, data / "dashboard-secret.key", data / SESSIONS_FILE, data / "outbox.sqlite3"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.parametrize("url", [
    "/download/report?month=9999-12", "/download/report?month=1600-01", "/download/report?month=2026-13",
    "/download/report?month=", "/download/report?month=2026-3", "/download/report?month=%00",
    "/download/ledger?year=-1", "/download/ledger?year=9999", "/download/ledger?year=0", "/download/ledger?year=1e3",
    "/download/ledger?year=" + "9" * 5000, "/download/ledger?year=2025&format=pdf",
    "/download/institution/HB-0001/daily.csv?days=-5x", "/download/ranking.csv?year=abc",
    "/download/ranking.csv?year=-1&search=9999",  # found by the fuzz campaign: HTTP 500
])
def test_bad_download_parameters_are_4xx(site, url):
    """`month=9999-12` and `year=-1` answered HTTP 500."""
    r = signed_in(site).get(url)
    assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:200])


@pytest.mark.parametrize(("region", "year"), [
    (["hebei"], 2026), ({"id": "hebei"}, 2026), ("hebei", [2026]), ("hebei", "two thousand"), ("hebei", True),
    ("hebei", 10**30), ("x" * 100_000, 2026),
])
def test_overview_callback_with_wrong_types_is_a_clean_empty_answer(site, region, year):
    """A list where the region string is expected answered HTTP 500."""
    c = signed_in(site)
    r = web.callback(c, [("ov-body", "children")], [{"id": "ov-region", "property": "value", "value": region},
                                                    {"id": "ov-year", "property": "value", "value": year}],
                     state=[{"id": "lang", "property": "data", "value": ["en"]}])
    assert r.status_code == 204, r.text[:300]


def test_malformed_callback_requests_are_400(site):
    c = signed_in(site)
    for body in [{}, {"output": "page.children"}, {"output": "nope.children", "outputs": {"id": "nope"}, "inputs": []},
                 {"output": "page.children", "outputs": {"id": "page", "property": "children"}, "inputs": "x"}]:
        r = c.post("/_dash-update-component", json=body, headers=web.csrf_headers(c))
        assert 400 <= r.status_code < 500, (body, r.status_code)
    r = c.post("/_dash-update-component", content=b"not json", headers={**web.csrf_headers(c),
                                                                         "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500


@pytest.mark.browser
def test_dash_app_works_under_the_csp_in_chromium(site):
    """Pages render, figures draw, callbacks run (language switch, acknowledge), and the
    browser reports no CSP violation."""
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser_dashboard import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(30_000)
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation',"
                             " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
        page.goto(site["url"] + "/login")
        page.fill("#username", "inst5")
        page.fill("#password", w.PASSWORDS["inst5"])
        page.click("#login-button")
        page.wait_for_url(lambda u: u.rstrip("/") == site["url"])
        for path, selector in [("/institution/HB-0005", "#inst-daily .main-svg"), ("/", "#gauge-energy_tce .gauge-bar"),
                               ("/ranking", "#rank-table td")]:
            page.goto(site["url"] + path)
            expect(page.locator(selector).first).to_be_visible(timeout=30_000)
            assert page.evaluate("window.__csp") == [], path
        page.click("#lang-en")
        expect(page.locator("#nav-ranking")).to_have_text("Rankings", timeout=30_000)
        page.goto(site["url"] + "/alerts")
        page.locator("#alerts-open td[data-dash-column='action']").first.click()
        expect(page.locator("#alerts-open")).to_contain_text("inst5", timeout=30_000)
        assert page.evaluate("window.__csp") == []
        browser.close()
    assert not [m for m in console if "Content Security Policy" in m or "Refused to" in m], console
    assert acknowledged_by(site, "HB-0002") is None  # inst5 sees HB-0005 only: nothing else was touched
