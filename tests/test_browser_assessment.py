"""The assessment page, the printable notice and the overview's plan panel in headless Chromium, for an
administrator and a region manager (who sees only their scope). Screenshots go to test-artifacts/.

The portfolio is the dashboard world (tests/support_dashboard_world.py, eight institutions in
石家庄 and 保定, constant rates since 2025-01-01), its 3-hourly history marked as backfilled (so
2025 is complete at the resolution it carries), with a 2025 target HB-0001 misses, HB-0007 as
the only key energy user and open data-quality alerts for HB-0006.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from alerts.outbox import Outbox
from alerts.record import Alert
from dashboard.app import create_app, serve
from storage import quality
from tests import support_dashboard_world as w
from tests.test_browser_dashboard import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _shot
from tests.test_browser_dashboard import _login as login

pytestmark = pytest.mark.browser
YEAR = 2025
SJZ = {"HB-0001", "HB-0002", "HB-0003", "HB-0004"}
FIRST_MS = 90_000  # the first assessment of a year is computed on demand (a few seconds; the machine is shared)


def _kgce_2025(reg, inst_id: str) -> float:
    return w.kgce_per_person_2025(reg)[inst_id] * reg.institution_by_id[inst_id].occupants


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from storage import open_store

    d = tmp_path_factory.mktemp("browser-assess")
    reg = w.registry()
    store = open_store(f"embedded:{d / 'store'}", tz=reg.timezone)
    store.set_meters(reg.meters_frame())
    samples = w.samples(reg)
    coarse = samples["time"] <= (w.NOW - pd.Timedelta(days=8)).tz_convert("UTC")
    samples.loc[coarse, "quality"] = quality.BACKFILL  # history read back at 3-hour resolution
    store.write_samples(samples)
    users = w.write_users(d / "users.yaml")
    q = w.write_quotas(d / "quotas.yaml", reg)
    tce_1 = _kgce_2025(reg, "HB-0001") / 1000
    totals = {i.id: _kgce_2025(reg, i.id) / 1000 for i in reg.institutions}
    assert max(totals, key=totals.get) == "HB-0007"  # the largest of the eight: the key energy user
    key_tce = totals["HB-0007"]
    q.write_text(q.read_text(encoding="utf-8").replace(
        "targets:\n", f"targets:\n  - {{id: hb0001-{YEAR}, year: {YEAR}, institution: HB-0001, "
                      f"energy_tce: {tce_1 * 0.9:.3f}}}\n")
        + f"key_users:\n  threshold_tce: {key_tce - 1:.3f}\n", encoding="utf-8")
    Outbox(d).submit([Alert.new("data_completeness", "warning", f"meter:HB-0006-E{n}", "samples", "2025-06-01",
                                message_zh="数据不完整", message_en="incomplete", first_seen="2025-06-01T00:00:00+08:00",
                                institution_id="HB-0006") for n in range(3)])
    app = create_app(reg, store, users, quotas_path=q, data_dir=d, secret_key="browser-secret", now=lambda: w.NOW)
    handle = serve(app, "127.0.0.1", 0)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield {"url": handle.url, "browser": browser, "reg": reg, "dir": d}
        browser.close()
    handle.shutdown()
    store.close()


def _login(site, name: str) -> Page:
    page = login(site, name)  # signs in on the ranking
    page.set_viewport_size({"width": 1500, "height": 1000})
    page.click("#nav-assessment")
    page.wait_for_url(lambda u: "/assessment" in u)
    return page


def _ids(page: Page) -> list[str]:
    hrefs = page.locator("#assess-table td[data-dash-column='name'] a").evaluate_all(
        "els => els.map(e => e.getAttribute('href'))")
    return [h.rsplit("/", 1)[-1] for h in hrefs]


def _xlsx(content: bytes, name: str) -> pd.DataFrame:
    raw = pd.read_excel(io.BytesIO(content), sheet_name=name, header=None)
    head = next(n for n in range(len(raw)) if raw.iloc[n, 0] in ("rank", "region", "institution_id", "scope"))
    return pd.read_excel(io.BytesIO(content), sheet_name=name, header=head).iloc[1:]


def test_admin_sees_every_score_and_its_breakdown(site):
    page = _login(site, "admin")
    expect(page.locator("#nav-assessment")).to_have_text("考核")
    expect(page.locator("#assess-count")).to_contain_text("8 ·", timeout=FIRST_MS)
    ids = _ids(page)
    assert sorted(ids) == sorted(i.id for i in site["reg"].institutions)
    # HB-0001 missed its total target: vetoed to 不合格
    row = page.locator("#assess-table tr", has=page.locator("a[href='/institution/HB-0001']"))
    expect(row.locator("td[data-dash-column='grade']")).to_have_text("不合格")
    expect(row.locator("td[data-dash-column='veto']")).to_have_text("未完成总量目标")
    expect(row.locator("td[data-dash-column='pts_targets']")).to_have_text("0.0 / 30")
    # the key energy user is marked and listed, and reviewed monthly
    key = page.locator("#assess-table tr", has=page.locator("a[href='/institution/HB-0007']"))
    expect(key.locator("td[data-dash-column='key_user']")).to_have_text("是")
    expect(page.locator("#assess-key-users")).to_contain_text(site["reg"].institution_by_id["HB-0007"].name)
    _shot(page, "assessment-admin")
    # a row's breakdown: HB-0006's open data-quality alerts (3 > 2) halve its data-quality points
    page.locator("#assess-table tr", has=page.locator("a[href='/institution/HB-0006']")).locator(
        "td[data-dash-column='score']").click()
    detail = page.locator("#assess-breakdown")
    expect(detail).to_contain_text("未处理数据质量告警 3 条（上限 2）")
    expect(detail).to_contain_text("7.5 / 15")
    expect(detail).to_contain_text("人均综合能耗 (kgce/人): 引导值以内")
    expect(detail).to_contain_text("上年数据不完整")  # no 2024: no year-on-year comparison
    page.click("#assess-breakdown h3")  # keep the page still for the screenshot
    _shot(page, "assessment-breakdown")
    # in English, then the regions below the province
    page.click("#lang-en")
    expect(page.locator("#nav-assessment")).to_have_text("Assessment")
    page.click("#assess-view")
    page.get_by_role("option", name="Regions below").click()
    expect(page.locator("#assess-count")).to_contain_text("3 ·")  # hebei, sjz, bd (ts has no institution)
    expect(page.locator("#assess-table")).to_contain_text("石家庄市")
    _shot(page, "assessment-regions-en")
    # the notice: the printable page and the workbook
    notice = page.request.get(site["url"] + f"/assessment/notice?year={YEAR}")
    assert notice.status == 200 and "@media print" in notice.text()
    assert "HB-0001" in notice.text() and "HB-0006" in notice.text()
    xlsx = page.request.get(site["url"] + f"/download/notice?year={YEAR}")
    entries = _xlsx(xlsx.body(), "通报")
    assert ("HB-0001", "energy_tce") in set(zip(entries["institution_id"], entries["indicator"], strict=True))
    assert page.request.get(site["url"] + f"/download/notice?year={w.NOW.year}").status == 400  # not over yet
    printable = page.context.new_page()
    printable.goto(site["url"] + f"/assessment/notice?year={YEAR}")
    expect(printable.locator("#notice-title")).to_contain_text(f"{YEAR} 年度公共机构节能考核通报")
    _shot(printable, "notice-print")
    printable.emulate_media(media="print")  # the print style: no button, one region per page
    expect(printable.locator(".actions")).to_be_hidden()
    _shot(printable, "notice-print-media")
    printable.pdf(path=str(ARTIFACTS / "notice-print.pdf"), format="A4", landscape=True)
    # the overview's plan panel (the running year shows the last complete one)
    page.click("#nav-overview")
    expect(page.locator("#ov-plan-table")).to_contain_text("Renewable share of electricity", timeout=FIRST_MS)
    expect(page.locator("#ov-plan")).to_contain_text(f"({YEAR})")
    page.locator("#ov-plan").scroll_into_view_if_needed()
    _shot(page, "overview-plan")
    page.context.close()


def test_region_manager_sees_only_their_scope(site):
    page = _login(site, "sjz")
    expect(page.locator("#assess-count")).to_contain_text("4 ·", timeout=FIRST_MS)
    assert set(_ids(page)) == SJZ
    content = page.content()
    outside = [i for i in site["reg"].institutions if i.id not in SJZ]
    assert not any(i.name in content for i in outside)
    _shot(page, "assessment-region-manager")
    # no region lies below 石家庄: the regions view is empty
    page.click("#assess-view")
    page.get_by_role("option", name="下级地区").click()
    expect(page.locator("#assessment")).to_contain_text("暂无数据")
    # the downloads and the printable notice hold their institutions only; ranks are among all eight
    book = page.request.get(site["url"] + f"/download/assessment?year={YEAR}").body()
    res = _xlsx(book, "考核结果")
    assert set(res["institution_id"]) == SJZ and _xlsx(book, "地区考核").empty
    assert res["rank"].astype(int).max() > len(SJZ)  # ranks among all eight
    notice = page.request.get(site["url"] + f"/assessment/notice?year={YEAR}").text()
    assert "HB-0001" in notice and "HB-0006" not in notice
    plan = _xlsx(book, "规划指标")
    assert set(plan["scope"]) == {"sjz"}
    # the overview's plan panel of their region
    page.click("#nav-overview")
    expect(page.locator("#ov-plan-table")).to_contain_text("可再生能源电力占比", timeout=FIRST_MS)
    page.context.close()
