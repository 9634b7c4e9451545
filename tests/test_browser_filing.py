"""Acceptance of the monthly submission workflow (issue 13) in headless Chromium, with the API on the same server.

An institution user enters a month with one out-of-range figure, is stopped until a
reason is given, submits; the region manager sees it in 填报进度 and returns it; the user
corrects it; the manager approves; the audit trail shows the four steps. Another
institution's user can neither see nor submit those figures: page, crafted callback, API.
Screenshots go to test-artifacts/filing-*.png.
"""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from civicwatt.web import create_web_app
from core import users as auth
from core.tokens import create_token, tokens_file
from dashboard.app import serve
from tests import support_filing_world as w
from tests.support_web import callback, login
from tests.test_browser_dashboard import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

pytestmark = pytest.mark.browser
PASSWORDS = {"inst2": "inst2-pass-123", "inst3": "inst3-pass-123", "bd": "bd-pass-123"}
NOW = pd.Timestamp("2026-12-05 10:00", tz=w.TZ)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("filing")
    filing = w.make_filing(d)
    users = d / "users.yaml"
    auth.set_user(users, "inst2", "institution", "HB-0002", PASSWORDS["inst2"])
    auth.set_user(users, "inst3", "institution", "HB-0003", PASSWORDS["inst3"])
    auth.set_user(users, "bd", "region", "bd", PASSWORDS["bd"])
    _, token3 = create_token(tokens_file(users), "inst3")
    auth.set_user(users, "sjz", "region", "sjz", "sjz-pass-123")
    _, token_sjz = create_token(tokens_file(users), "sjz")
    app = create_web_app(filing.registry, filing.store, users, data_dir=d / "store", secret_key="filing-secret",
                         now=lambda: NOW)
    handle = serve(app, "127.0.0.1", 0)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield {"url": handle.url, "browser": browser, "filing": filing, "token3": token3, "token_sjz": token_sjz}
        browser.close()
    handle.shutdown()
    filing.store.close()


def sign_in(site, name: str, path: str) -> Page:
    page = site["browser"].new_context(viewport={"width": 1400, "height": 1100}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(site["url"] + path)
    page.fill("#username", name)
    page.fill("#password", PASSWORDS[name])
    page.click("#login-button")
    page.wait_for_url(lambda u: path in u)
    return page


def field(page: Page, kind: str, energy: str):
    return page.locator(f"[id='{json.dumps({'energy': energy, 'type': kind}, separators=(',', ':'))}']")


def shot(page: Page, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"filing-{name}.png"), full_page=True)


def enter(page: Page, figures: dict[str, tuple[float, float]]) -> None:
    for energy, (q, cost) in figures.items():
        field(page, "fq", energy).fill(f"{q:g}")
        field(page, "fc", energy).fill(f"{cost:g}")


def test_submit_return_correct_approve_with_audit_trail(site):
    reg = site["filing"].registry
    area = reg.institution_by_id["HB-0002"].floor_area_m2
    kwh = w.elec_kwh(reg, "HB-0002")
    good = {"electricity": (kwh, 0.6 * kwh), "water": (310, 1240), "heat": (0.05 * area, 2.5 * area)}
    high = {**good, "electricity": (1.6 * kwh, 0.6 * 1.6 * kwh)}  # +60 % on last November: out of range

    user = sign_in(site, "inst2", "/filing")
    expect(user.locator("#filing-status")).to_have_text("未填报")
    expect(field(user, "fq", "electricity")).to_be_visible()
    enter(user, high)
    expect(field(user, "fconv", "heat")).to_contain_text(f"{0.05 * area:,.2f} GJ")
    user.click("#filing-submit")
    expect(user.locator("#filing-problems")).to_contain_text("请为每条提示填写原因")
    expect(user.locator("#filing-warnings")).to_contain_text("YOY_CHANGE")
    expect(user.locator("#filing-status")).to_have_text("未填报")  # stopped: nothing written
    assert site["filing"].book.get("HB-0002", w.MONTH) is None
    shot(user, "1-stopped-until-a-reason")
    for box in user.locator("#filing-warnings textarea").all():
        box.fill("新教学楼 11 月投入使用")
    user.click("#filing-submit")
    expect(user.locator("#filing-ok")).to_be_visible()
    expect(user.locator("#filing-status")).to_have_text("已提交")
    shot(user, "2-submitted")

    manager = sign_in(site, "bd", "/progress")
    row = manager.locator("#progress-row-HB-0002")
    expect(row).to_contain_text("已提交")
    expect(manager.locator("#progress-deadline")).to_contain_text("2026-12-15")
    expect(manager.locator("#progress-deadline")).to_contain_text("10")
    shot(manager, "3-progress")
    row.locator("input").fill("电力比上年高 60%，请核对电费单")
    row.locator("button.return").click()
    expect(row).to_contain_text("已退回")
    expect(row).to_contain_text("请核对电费单")
    shot(manager, "4-returned")

    user.reload()
    expect(user.locator("#filing-status")).to_have_text("已退回")
    expect(user.locator("#filing-comment")).to_contain_text("请核对电费单")
    enter(user, good)
    user.click("#filing-submit")
    expect(user.locator("#filing-ok")).to_be_visible()
    expect(user.locator("#filing-status")).to_have_text("已提交")

    manager.reload()
    row = manager.locator("#progress-row-HB-0002")
    expect(row).to_contain_text("已提交")
    row.locator("button.approve").click()
    expect(manager.locator("#progress-row-HB-0002")).to_have_count(0)  # approved: nothing to follow up
    expect(manager.locator("#progress-summary")).to_contain_text("保定市")
    shot(manager, "5-approved")

    user.reload()
    expect(user.locator("#filing-status")).to_have_text("已审核")
    audit = user.locator("#filing-audit-table")
    expect(audit).to_contain_text("approve")
    steps = [r for r in user.locator("#filing-audit-table tr.audit-row").all_inner_texts() if "status" in r]
    assert [s.split("\t")[3] for s in reversed(steps)] == ["submit", "return", "submit", "approve"]
    assert "电力比上年高 60%" in steps[-2] and "新教学楼" in steps[-1]
    shot(user, "6-audit-trail")
    trail = site["filing"].book.audit(["HB-0002"], w.MONTH)
    elec = trail[(trail["energy"] == "electricity") & (trail["field"] == "quantity")]
    assert elec[["action", "old", "new"]].values.tolist() == [
        ["submit", None, f"{1.6 * kwh:g} kWh"], ["replace", f"{1.6 * kwh:g} kWh", f"{kwh:g} kWh"]]
    bills = site["filing"].store.read_bills(["HB-0002"])
    nov = bills[pd.to_datetime(bills["period_start"]) == "2026-11-01"].set_index("energy")
    assert nov.loc["electricity", "quantity"] == pytest.approx(kwh)

    with httpx.Client(base_url=site["url"]) as c:
        login(c, "inst2", PASSWORDS["inst2"])
        csv = c.get("/download/audit/HB-0002.csv")
        assert csv.status_code == 200 and "操作人" in csv.content.decode("utf-8-sig")
        assert csv.content.decode("utf-8-sig").count(",status,") == 4


def test_another_institution_cannot_see_or_submit(site):
    page = sign_in(site, "inst3", "/filing")
    expect(page.locator("#filing-status")).to_be_visible()
    options = page.locator("#filing-inst").inner_text()
    assert "HB-0003" in options and "HB-0002" not in options
    shot(page, "7-other-institution")
    payload = {"institution_id": "HB-0002", "month": w.MONTH,
               "items": [{"energy": "water", "quantity": 1.0, "unit": "m3", "cost_cny": 4.0}]}
    before = site["filing"].book.audit(["HB-0002"])
    with httpx.Client(base_url=site["url"]) as c:
        login(c, "inst3", PASSWORDS["inst3"])
        outputs = [("filing-form", "children"), ("filing-audit", "children"), ("filing-template", "href"),
                   ("filing-audit-csv", "href"), ("filing-audit-xlsx", "href"), ("filing-warnings", "children"),
                   ("filing-result", "children")]

        def craft(trigger: str, n: int | None) -> object:
            return callback(c, outputs, [
                {"id": "filing-inst", "property": "value", "value": "HB-0002"},
                {"id": "filing-month", "property": "value", "value": w.MONTH},
                {"id": "filing-submit", "property": "n_clicks", "value": n},
                {"id": "filing-upload", "property": "contents", "value": None}], state=[
                [{"id": {"type": "fq", "energy": "water"}, "property": "value", "value": 1.0}],
                [{"id": {"type": "fu", "energy": "water"}, "property": "value", "value": "m3"}],
                [{"id": {"type": "fc", "energy": "water"}, "property": "value", "value": 4.0}],
                [{"id": {"type": "fq", "energy": "water"}, "property": "id", "value": {"type": "fq", "energy": "water"}}],
                [], [],
                {"id": "filing-area", "property": "value", "value": None},
                {"id": "filing-occupants", "property": "value", "value": None},
                {"id": "lang", "property": "data", "value": "zh"}], changed=[trigger])

        shown = craft("filing-inst.value", None)
        assert shown.status_code == 200 and "无权访问" in shown.text and "测试单位2" not in shown.text
        sent = craft("filing-submit.n_clicks", 1)
        assert sent.status_code == 200 and "无权访问" in sent.text
        assert c.get(f"/download/submission/HB-0002/{w.MONTH}.xlsx").status_code == 403
        assert c.get("/download/audit/HB-0002.csv").status_code == 403
        reviewed = callback(c, [("progress-body", "children")],
                            [{"id": "progress-month", "property": "value", "value": w.MONTH},
                             [{"id": {"type": "papprove", "iid": "HB-0002"}, "property": "n_clicks", "value": 1}], []],
                            state=[[], [], {"id": "lang", "property": "data", "value": "zh"}],
                            changed=['{"iid":"HB-0002","type":"papprove"}.n_clicks'])
        assert reviewed.status_code == 200 and "无权访问" in reviewed.text
    api = httpx.Client(base_url=site["url"], headers={"Authorization": f"Bearer {site['token3']}"})
    with api:
        assert api.post("/api/v1/submissions", json=payload).status_code == 403
        mine = api.get("/api/v1/submissions", params={"month": w.MONTH}).json()
        assert [r["institution_id"] for r in mine["submissions"]] == ["HB-0003"]
        assert api.post(f"/api/v1/submissions/HB-0002/{w.MONTH}/approve", json={}).status_code == 403
        assert api.post(f"/api/v1/submissions/HB-0003/{w.MONTH}/approve", json={}).status_code == 403  # not a reviewer
    pd.testing.assert_frame_equal(site["filing"].book.audit(["HB-0002"]), before)  # nothing written for HB-0002


def test_api_submit_and_review(site):
    reg = site["filing"].registry
    area = reg.institution_by_id["HB-0003"].floor_area_m2
    kwh = w.elec_kwh(reg, "HB-0003")
    body = {"institution_id": "HB-0003", "month": w.MONTH,
            "items": [{"energy": "electricity", "quantity": kwh / 1000, "unit": "MWh", "cost_cny": 0.6 * kwh},
                      {"energy": "water", "quantity": 300, "unit": "m3", "cost_cny": 1200},
                      {"energy": "heat", "quantity": 0.05 * area, "unit": "GJ", "cost_cny": 2.5 * area}]}
    with httpx.Client(base_url=site["url"], headers={"Authorization": f"Bearer {site['token3']}"}) as api:
        bad = api.post("/api/v1/submissions", json={**body, "items": [{**body["items"][0], "quantity": -1}]})
        assert bad.status_code == 422 and [p["code"] for p in bad.json()["problems"]] == ["NEGATIVE"]
        ok = api.post("/api/v1/submissions", json=body)
        assert ok.status_code == 201 and ok.json() == {"status": "submitted", "warnings": []}
        assert api.post("/api/v1/submissions", json={**body, "extra": 1}).status_code == 422
    with httpx.Client(base_url=site["url"], headers={"Authorization": f"Bearer {site['token_sjz']}"}) as api:
        assert api.post(f"/api/v1/submissions/HB-0002/{w.MONTH}/return", json={"comment": "x"}).status_code == 403
        assert api.post(f"/api/v1/submissions/HB-0003/{w.MONTH}/return", json={}).status_code == 422  # no comment
        got = api.post(f"/api/v1/submissions/HB-0003/{w.MONTH}/approve", json={})
        assert got.status_code == 200 and got.json()["status"] == "approved"
        rows = {r["institution_id"]: r["status"] for r in api.get("/api/v1/submissions",
                                                                  params={"month": w.MONTH}).json()["submissions"]}
        assert rows["HB-0003"] == "approved" and rows["HB-0005"] == "missing"
        assert "HB-0002" not in rows  # bd, outside sjz
        doc = api.get("/api/v1/openapi.json").json()
        assert "/api/v1/submissions/{institution_id}/{month}/approve" in doc["paths"]

