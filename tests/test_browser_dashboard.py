"""The dashboard in headless Chromium (Debian's, driven by Playwright; no browser is
downloaded). Screenshots of each main page go to test-artifacts/."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from alerts.outbox import Outbox
from alerts.record import Alert
from dashboard.app import create_app, serve
from tests import support_dashboard_world as w

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 20_000
expect.set_options(timeout=TIMEOUT_MS)  # assertions wait as long as actions: a loaded 2-core machine is slow

pytestmark = pytest.mark.browser
expect.set_options(timeout=TIMEOUT_MS)  # assertions wait as long as actions: a cold page on a busy machine


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from storage import open_store

    d = tmp_path_factory.mktemp("browser")
    reg = w.registry()
    store = open_store(f"embedded:{d / 'store'}", tz=reg.timezone)
    w.fill_store(store, reg)
    users = w.write_users(d / "users.yaml")
    w.write_mv_project(d / "mv")
    Outbox(d).submit([
        Alert.new("quota", "warning", "institution:HB-0001", "kgce_per_m2", "2026", message_zh="一号机构能耗超定额",
                  message_en="HB-0001 above its quota", first_seen="2026-03-01T00:00:00+08:00",
                  institution_id="HB-0001"),
        Alert.new("quota", "critical", "institution:HB-0005", "kgce_per_m2", "2026", message_zh="五号机构能耗超定额",
                  message_en="HB-0005 above its quota", first_seen="2026-03-01T00:00:00+08:00",
                  institution_id="HB-0005"),
    ])
    app = create_app(reg, store, users, quotas_path=w.write_quotas(d / "quotas.yaml", reg), data_dir=d, secret_key="browser-secret", now=lambda: w.NOW)
    handle = serve(app, "127.0.0.1", 0)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield {"url": handle.url, "browser": browser, "reg": reg, "dir": d}
        browser.close()
    handle.shutdown()
    store.close()


def _login(site, name: str) -> Page:
    ctx = site["browser"].new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(site["url"] + "/ranking")
    assert "/login" in page.url
    page.fill("#username", name)
    page.fill("#password", w.PASSWORDS[name])
    page.click("#login-button")
    page.wait_for_url(lambda u: "/ranking" in u)
    return page


def _shot(page: Page, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_admin_walks_through_the_dashboard(site):
    page = _login(site, "admin")
    # ranking: all 8, in Chinese by default
    table = page.locator("#rank-table")
    expect(page.locator("#rank-count")).to_contain_text("8")
    expect(page.locator("#nav-ranking")).to_have_text("排名")
    _shot(page, "ranking-zh")
    # switch language at any time: the page re-renders in English, filters work
    page.click("#lang-en")
    expect(page.locator("#nav-ranking")).to_have_text("Rankings")
    expect(page.locator("#rank-count")).to_contain_text("8 institutions")
    # filter: category school -> 2 institutions
    page.click("#rank-category")
    page.get_by_role("option", name="School").click()
    expect(page.locator("#rank-count")).to_contain_text("2 institutions")
    # switching language keeps the filter
    page.click("#lang-zh")
    expect(page.locator("#rank-count")).to_contain_text("2 条记录")
    page.click("#lang-en")
    expect(page.locator("#rank-count")).to_contain_text("2 institutions")
    # switch the indicator (the column follows), then back to energy per person; sort by value descending
    page.click("#rank-indicator")
    page.get_by_role("option", name="Water per person (m³/person)").click()
    expect(table.locator("th", has_text="Water per person")).to_be_visible()
    page.click("#rank-indicator")
    page.get_by_role("option", name="Energy per person (kgce/person)").click()
    header = table.locator("th", has_text="Energy per person")
    expect(header).to_be_visible()
    header.locator(".column-header--sort").click()  # asc
    header.locator(".column-header--sort").click()  # desc
    page.wait_for_timeout(500)
    values = [float(x) for x in table.locator("td[data-dash-column='value']").all_inner_texts()]
    assert len(values) == 2 and values[0] >= values[1]
    schools = sorted((i for i in site["reg"].institutions if i.category == "school"),
                     key=lambda i: -_kgce(site, i.id) / i.occupants)
    expect(table.locator("td[data-dash-column='institution_id']").first).to_have_text(schools[0].id)
    _shot(page, "ranking-en")
    # export the filtered ranking as CSV and read it back
    with page.expect_download() as dl:
        page.click("#rank-export")
    csv = pd.read_csv(dl.value.path(), encoding="utf-8-sig")
    assert sorted(csv["institution_id"]) == sorted(i.id for i in schools)
    # open an institution from the table
    table.locator("td[data-dash-column='name'] a").first.click()
    page.wait_for_url(lambda u: f"/institution/{schools[0].id}" in u)
    expect(page.locator("#inst-title")).to_contain_text(schools[0].id)
    expect(page.locator("#meter-tree")).to_contain_text(f"{schools[0].id}-E1")
    expect(page.locator("#inst-daily .main-svg").first).to_be_visible()
    _shot(page, "institution")
    # the institution picker: choose by name
    page.click("#nav-institution")
    page.click("#inst-picker")
    other = site["reg"].institution_by_id["HB-0003"]
    page.get_by_role("option", name=f"{other.name} (HB-0003)").click()
    page.wait_for_url(lambda u: "/institution/HB-0003" in u)
    expect(page.locator("#inst-title")).to_contain_text("HB-0003")
    # overview
    page.click("#nav-overview")
    expect(page.locator("#gauge-energy_tce")).to_be_visible()
    _shot(page, "overview")
    page.click("#nav-reports")
    expect(page.locator("#ledger-xlsx")).to_be_visible()
    _shot(page, "reports")
    # download the 2025 carbon ledger and read it back
    page.click("#ledger-year")
    page.get_by_role("option", name="2025").click()
    with page.expect_download() as dl:  # built behind a spinner, then handed to the browser
        page.click("#ledger-xlsx")
    assert dl.value.suggested_filename == "carbon-ledger-2025.xlsx"
    raw = pd.read_excel(dl.value.path(), sheet_name="ledger", header=None)
    head = next(n for n in range(len(raw)) if "institution_id" in raw.iloc[n].astype(str).tolist())
    ledger = pd.read_excel(dl.value.path(), sheet_name="ledger", header=head)
    ledger = ledger[pd.to_numeric(ledger["quantity"], errors="coerce").notna()]  # drop the Chinese label row
    assert set(ledger["institution_id"]) == {i.id for i in site["reg"].institutions}
    elec = ledger[(ledger["institution_id"] == "HB-0001") & (ledger["energy"] == "electricity")]
    floor = site["reg"].institution_by_id["HB-0001"].floor_area_m2
    assert float(elec["quantity"].iloc[0]) == pytest.approx(w.ELEC_KW_PER_M2 * floor * 8760, rel=1e-6)
    # savings verification: the project's summary and chart
    page.click("#nav-mv")
    expect(page.locator("#mv-summary")).to_contain_text("Reporting-period actual")
    expect(page.locator("#mv-chart .main-svg").first).to_be_visible()
    _shot(page, "savings-verification")
    page.context.close()


def _kgce(site, inst_id: str) -> float:
    inst = site["reg"].institution_by_id[inst_id]
    meters = [m for m in site["reg"].meters if m.institution == inst_id]
    from models.api import load_factors

    f = load_factors()
    kgce = w.ELEC_KW_PER_M2 * inst.floor_area_m2 * 8760 * f.coal_kgce_per_unit("electricity")
    if any(m.energy == "natural_gas" for m in meters):
        kgce += w.GAS_M3_PER_M2_DAY * inst.floor_area_m2 * 365 * f.coal_kgce_per_unit("natural_gas")
    return kgce


def test_institution_user_acknowledges_an_alert(site):
    page = _login(site, "inst1")
    expect(page.locator("#rank-count")).to_contain_text("1")
    page.click("#nav-alerts")
    expect(page.locator("#alerts-open")).to_contain_text("一号机构能耗超定额")
    assert "五号机构" not in page.content()
    _shot(page, "alerts")
    page.locator("#alerts-open td[data-dash-column='action']").first.click()
    expect(page.locator("#alerts-open")).to_contain_text("inst1")
    open_alerts = Outbox(site["dir"]).list_alerts()
    assert next(a for a in open_alerts if a["institution_id"] == "HB-0001")["acknowledged_by"] == "inst1"
    assert next(a for a in open_alerts if a["institution_id"] == "HB-0005")["acknowledged_by"] is None
    # the page of another institution says "no access" and shows none of its numbers
    page.goto(site["url"] + "/institution/HB-0005")
    expect(page.locator("#forbidden")).to_be_visible()
    assert site["reg"].institution_by_id["HB-0005"].name not in page.content()
    # a download URL of another institution
    resp = page.request.get(site["url"] + "/download/institution/HB-0005/daily.csv")
    assert resp.status == 403
    own = page.request.get(site["url"] + "/download/institution/HB-0001/daily.csv")
    assert own.status == 200
    df = pd.read_csv(io.BytesIO(own.body()), encoding="utf-8-sig")
    assert set(df["meter_id"].str[:7]) == {"HB-0001"}
    page.context.close()
