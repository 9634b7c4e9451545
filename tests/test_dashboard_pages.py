"""The pages on the demo-like world (the 30 sample institutions of `civicwatt init`
with the simulator's load model): the first screen is the user's own scope and its
targets mean something at every level, charts follow the language and mark the
running period, costs, the period view, alerts (names, groups, filters, bulk
acknowledge through access), savings verification in words, comparison, the wall."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alerts.outbox import Outbox
from alerts.record import Alert
from core import access
from core.users import User
from dashboard import period
from dashboard.pages import alerts as alerts_page
from dashboard.pages import compare, mv, overview, wall
from models import api as models_api
from tests import support_dashboard_world as w

ADMIN = User("admin", "admin", None)
SJZ = User("sjz", "region", "sjz")
BD = User("bd", "region", "bd")
INST5 = User("inst5", "institution", "HB-0005")  # a 保定 institution
TZ = w.TZ


@pytest.fixture(scope="module")
def demo():
    return w.shared_demo_world()


def ctx(demo, user, data_dir=None):
    reg, store, quotas, mv_dir = demo
    return w.context(reg, store, quotas, data_dir, [mv_dir], user=user)


# -- item 1: the first screen ------------------------------------------------------------
def test_the_first_screen_is_the_users_own_scope(demo):
    reg = demo[0]
    assert access.default_region(ADMIN, reg) == "hebei"  # the top region
    assert access.default_region(SJZ, reg) == "sjz"
    c = ctx(demo, INST5)
    own = overview.scope_of(c, INST5, access.default_region(INST5, reg), "zh")
    assert own.insts == {"HB-0005"} and own.target_scope == "institution:HB-0005"
    assert own.name == reg.institution_by_id["HB-0005"].name
    top = overview.scope_of(ctx(demo, ADMIN), ADMIN, "hebei", "zh")
    assert len(top.insts) == 30 and top.target_scope == "region:hebei" and top.name == "河北省"
    with pytest.raises(access.Forbidden):
        overview.scope_of(ctx(demo, SJZ), SJZ, "bd", "zh")  # another city


@pytest.mark.parametrize("region", ["hebei", "sjz", "bd", "ts"])
def test_the_demo_targets_are_sized_to_the_portfolio_at_every_level(demo, region):
    """The province and each city: the year-end projection lands between 60 % and
    120 % of the sample target (it read 1 % against the real provincial caps), for
    energy, water and CO2; 2025, a complete year, likewise."""
    c = ctx(demo, ADMIN)
    scope = overview.scope_of(c, ADMIN, region, "zh")
    n = overview.numbers(c, scope, 2026)
    for key, *_rest in overview.GAUGES:
        share = n.projected[key] / overview.limit(n, key)
        assert 0.6 < share < 1.2, (region, key, share)
    last = overview.numbers(c, scope, 2025)
    for key, col, *_rest in overview.GAUGES:
        assert 0.6 < float(last.agg[col]) / overview.limit(last, key) < 1.2, (region, key)


def test_a_target_that_does_not_apply_to_the_scope_is_not_drawn(demo):
    c = ctx(demo, ADMIN)
    sjz = overview.numbers(c, overview.scope_of(c, ADMIN, "sjz", "zh"), 2026)
    assert set(sjz.targets) == {"energy_tce", "water_m3", "co2_t", "kgce_per_m2"}  # sjz-2026 only
    assert all(r["scope"] == "region:sjz" for r in sjz.targets.values())  # not the schools', not the province's
    c2 = ctx(demo, INST5)
    own = overview.numbers(c2, overview.scope_of(c2, INST5, None, "zh"), 2026)
    assert own.targets == {}  # HB-0005 has no target of its own
    g = overview.gauge("g", "综合能耗", float(own.agg["tce"]), overview.limit(own, "energy_tce"),
                       own.projected["energy_tce"], "tce", "zh")
    marks = [m.className for m in g.children[2].children]
    assert getattr(g, "data-target") is None and "gauge-target" not in marks and "未设目标" in g.children[4].children
    with_target = overview.gauge("g", "x", 10.0, 20.0, 25.0, "tce", "zh")
    assert getattr(with_target, "data-target") == 20.0
    bar, band, mark = (next(m for m in with_target.children[2].children if m.className.startswith(k))
                       for k in ("gauge-bar", "gauge-projected", "gauge-target"))
    top = 25.0 * 1.15  # the scale reaches 15 % past the largest figure (the projection)
    assert bar.style["width"] == f"{100 * 10 / top:.2f}%" and mark.style["left"] == f"{100 * 20 / top:.2f}%"
    assert band.style["width"] == f"{100 * 25 / top:.2f}%" and "over" in band.className  # projected past the target
    assert "125%" in with_target.children[4].children


# -- item 5: charts --------------------------------------------------------------------------
def test_charts_follow_the_language_and_mark_the_running_month(demo):
    c = ctx(demo, ADMIN)
    n = overview.numbers(c, overview.scope_of(c, ADMIN, "hebei", "zh"), 2026)
    for lang, tick, hover, big in (("zh", "%-m月\n%Y年", "%Y年%-m月", "万"), ("en", "%b\n%Y", "%b %Y", "k")):
        ytd = overview.ytd_figure(c, n, 2026, lang)
        assert (ytd.layout.xaxis.tickformat, ytd.layout.xaxis.hoverformat) == (tick, hover)
        assert any(big in text for text in ytd.layout.yaxis.ticktext)  # 1.5万 / 15k, not 15k in Chinese
        assert not any("万" in text for text in ytd.layout.yaxis.ticktext) or lang == "zh"
        trend = overview.trend_figure(n, lang)
        assert trend.layout.title.text.endswith("（tce）" if lang == "zh" else "(tce)")
        bars = [tr for tr in trend.data if tr.type == "bar" and tr.x is not None and tr.x[0] is not None]
        for tr in bars:
            shapes = list(tr.marker.pattern.shape)
            months = pd.DatetimeIndex(tr.x)
            assert shapes[-1] == "/" if months[-1] == pd.Timestamp("2026-11-01") else True
            assert all(s == "" for s, m in zip(shapes, months, strict=True) if m < pd.Timestamp("2026-11-01"))
        assert any(tr.name == ("未完整期间（截至当前）" if lang == "zh" else "Partial period (to now)")
                   for tr in trend.data)
        assert "kgce" not in trend.layout.title.text  # one unit per chart: tce


# -- item 8: cost, period, comparison, wall --------------------------------------------------------
def test_cost_is_the_bill_where_billed_else_use_at_the_tariff(demo):
    c = ctx(demo, ADMIN)
    start, end = pd.Timestamp("2026-10-01", tz=TZ), pd.Timestamp("2026-11-01", tz=TZ)
    sums, costs = c.service.range_sums(start, end)
    month = models_api.cost_by_period(costs, "all", TZ, by=("institution_id", "energy")).set_index(
        ["institution_id", "energy"])["cost_cny"]
    assert month[("HB-0002", "electricity")] == pytest.approx(w.DEMO_BILL["cost_cny"])
    kwh = sums[(sums["institution_id"] == "HB-0003") & (sums["energy"] == "electricity")]["quantity"].sum()
    assert month[("HB-0003", "electricity")] == pytest.approx(kwh * 0.65)
    m3 = sums[(sums["institution_id"] == "HB-0003") & (sums["energy"] == "water")]["quantity"].sum()
    assert month[("HB-0003", "water")] == pytest.approx(m3 * 4.2)


def test_the_period_view_sets_a_range_beside_the_same_dates_last_year(demo):
    c = ctx(demo, ADMIN)
    per = period.parse(c, "2026-11-01", "2026-11-10")
    assert (per.start, per.end) == (pd.Timestamp("2026-11-01", tz=TZ), pd.Timestamp("2026-11-11", tz=TZ))
    table, chart = period.frames(c, {"HB-0001"}, per, own=True)
    row = table.set_index("indicator")
    assert row.at["energy_tce", "this_period"] == pytest.approx(chart["tce"].sum())
    assert row.at["energy_tce", "last_year"] == pytest.approx(chart["tce_last_year"].sum())
    assert list(chart["period_start"]) == list(pd.date_range("2026-11-01", "2026-11-10"))  # last year on this year's dates
    direct = c.service.indicators_of(c.service.range_sums(pd.Timestamp("2025-11-01", tz=TZ),
                                                          pd.Timestamp("2025-11-11", tz=TZ), {"HB-0001"})[0])
    assert row.at["energy_tce", "last_year"] == pytest.approx(
        float(direct.set_index("institution_id").at["HB-0001", "tce"]))
    assert row.at["energy_tce", "change"] == pytest.approx(
        row.at["energy_tce", "this_period"] / row.at["energy_tce", "last_year"] - 1)
    # a reversed range is swapped, a bad one falls back to the last 30 days
    assert period.parse(c, "2026-11-10", "2026-11-01") == per
    assert period.parse(c, "not a date", None).days == period.DEFAULT_DAYS
    # dates before EARLIEST (no data is older) or after today are moved to them (a year 9999 overflowed)
    today = c.service.today()
    assert period.parse(c, "9999-12-31", "9999-12-31") == period.Period(today, today + pd.Timedelta(days=1))
    early = period.parse(c, "1800-01-01", "1800-03-01")
    assert (early.start, early.days) == (pd.Timestamp("1990-01-01", tz=TZ), 1)


def test_comparison_side_by_side_of_up_to_five(demo):
    c = ctx(demo, ADMIN)
    ids = [f"HB-{k:04d}" for k in range(1, 8)]
    chosen = compare.chosen(c, ADMIN, ids)
    assert chosen == ids[:compare.MAX_COMPARED]
    table = compare.comparison(c, chosen, 2025)
    ranking = c.service.ranking_table(2025).set_index("institution_id")
    assert table.loc[chosen, "kgce_per_m2"].tolist() == pytest.approx(ranking.loc[chosen, "kgce_per_m2"].tolist())
    assert (table["cost_cny"] > 0).all()
    with pytest.raises(access.Forbidden):
        compare.chosen(ctx(demo, SJZ), SJZ, ["HB-0001", "HB-0005"])  # HB-0005 is in 保定, not 石家庄


def test_the_wall_screen_rotates_through_the_users_scopes(demo):
    reg = demo[0]
    assert wall.scopes(ctx(demo, ADMIN), ADMIN) == ["hebei", "bd", "sjz", "ts"]  # top down, as the pickers
    assert wall.scopes(ctx(demo, SJZ), SJZ) == ["sjz"]
    assert wall.scopes(ctx(demo, INST5), INST5) == [None]  # the institution itself
    assert reg.institution_by_id["HB-0005"].region == "bd"


def test_year_on_year_needs_a_covered_previous_year(demo):
    """The history starts on 1 January 2025: 2024 holds at most its last hours, which
    are no base for a change (it read +9,000 %)."""
    c = ctx(demo, ADMIN)
    table = c.service.ranking_table(2025)
    assert table["yoy_kgce"].isna().all()
    running = c.service.ranking_table(2026)  # the same dates of 2025 are fully covered
    assert running["yoy_kgce"].notna().all() and running["yoy_kgce"].abs().max() < 50


# -- item 4: alerts ---------------------------------------------------------------------------------
def _alerts() -> list[Alert]:
    seen = "2026-11-20T02:00:00+00:00"
    out = [Alert.new("quota_constraint_exceeded", "warning", "region:bd/category:hospital", "kgce_per_m2", "2026",
                     message_zh="保定医院超定额 12.5 kgce/m2", message_en="bd hospitals above 12.5 kgce/m2",
                     first_seen=seen, actual=12.5, limit=10.0, unit="kgce/m2"),
           Alert.new("quota_constraint_exceeded", "warning", "institution:HB-0005", "water_m3_per_person", "2026",
                     message_zh="人均用水量 17.5 m3/person", message_en="water 17.5 m3/person", first_seen=seen,
                     institution_id="HB-0005", actual=17.5, limit=17.0, unit="m3/person")]
    for meter, inst in (("HB-0001-E0", "HB-0001"), ("HB-0001-E1", "HB-0001"), ("HB-0005-W0", "HB-0005")):
        out.append(Alert.new("meter_offline", "critical", f"meter:{meter}", "last_sample_age_h", "2026-11-20",
                             key_period="live", institution_id=inst, message_zh=f"计量表 {meter} 离线",
                             message_en=f"Meter {meter} is offline", first_seen="2026-11-19T02:00:00+00:00"))
    return out


def test_alerts_by_name_grouped_filtered_and_acknowledged_through_access(demo, tmp_path):
    Outbox(tmp_path).submit(_alerts())
    c = ctx(demo, ADMIN, data_dir=tmp_path)
    box = c.outbox()
    every = alerts_page.filtered(c, ADMIN, box, alerts_page.Filters())
    by_scope = {a["scope"]: a for a in every}
    assert alerts_page.scope_label(c, by_scope["region:bd/category:hospital"], "zh") == "保定市·医院"
    assert alerts_page.scope_label(c, by_scope["region:bd/category:hospital"], "en") == "保定市·Hospital"
    assert alerts_page.scope_label(c, by_scope["institution:HB-0005"], "zh") == demo[0].institution_by_id[
        "HB-0005"].name
    rows = alerts_page.grouped(every)
    groups = [members for key, members in rows if key.startswith(alerts_page.GROUP_PREFIX)]
    assert [sorted(m["scope"] for m in g) for g in groups] == [["meter:HB-0001-E0", "meter:HB-0001-E1"]]
    assert len(rows) == 4  # HB-0005's lone offline meter keeps its own row
    shown = {r["id"]: r for r in alerts_page.table_rows(c, every, True, "zh")}
    group_row = next(r for k, r in shown.items() if k.startswith(alerts_page.GROUP_PREFIX))
    assert "2 块计量表离线" in group_row["message"] and "HB-0001-E1" in group_row["message"]
    assert group_row["scope"] == f"[{demo[0].institution_by_id['HB-0001'].name}](/institution/HB-0001)"
    # filters: severity, rule, scope (a region's subtree), status, period
    f = alerts_page.Filters
    assert {a["rule"] for a in alerts_page.filtered(c, ADMIN, box, f(severity=["critical"]))} == {"meter_offline"}
    in_bd = alerts_page.filtered(c, ADMIN, box, f(scope="region:bd"))
    assert {a["scope"] for a in in_bd} == {"region:bd/category:hospital", "institution:HB-0005", "meter:HB-0005-W0"}
    assert len(alerts_page.filtered(c, ADMIN, box, f(rule=["meter_offline"], scope="institution:HB-0001"))) == 2
    c.service.now = lambda: pd.Timestamp("2026-11-20 12:00", tz=TZ)
    assert alerts_page.filtered(c, ADMIN, box, f(period="7d")) == every
    c.service.now = lambda: pd.Timestamp("2026-12-20 12:00", tz=TZ)
    assert alerts_page.filtered(c, ADMIN, box, f(period="7d")) == []
    # bulk acknowledge as the 保定 manager: their alerts are taken, 石家庄's refused, one by one
    keys = [key for key, _members in rows]
    result = alerts_page.acknowledge(c, BD, box, keys, "en")
    assert "3 alert(s) acknowledged" in result.children and "2 alert(s) refused" in result.children
    state = {a["scope"]: a["acknowledged_by"] for a in box.list_alerts()}
    assert state["meter:HB-0001-E0"] is None and state["meter:HB-0001-E1"] is None
    assert state["institution:HB-0005"] == "bd" and state["region:bd/category:hospital"] == "bd"
    assert alerts_page.filtered(c, ADMIN, box, f(status=["open"])) == [
        a for a in alerts_page.filtered(c, ADMIN, box, f()) if a["scope"].startswith("meter:HB-0001")]
    # a group row acknowledges every member
    group = next(key for key, _m in rows if key.startswith(alerts_page.GROUP_PREFIX))
    alerts_page.acknowledge(c, SJZ, box, [group], "zh")
    assert {a["acknowledged_by"] for a in box.list_alerts() if a["institution_id"] == "HB-0001"} == {"sjz"}


def test_alert_rows_typeset_units_and_show_local_times(demo, tmp_path):
    Outbox(tmp_path).submit(_alerts())
    c = ctx(demo, ADMIN, data_dir=tmp_path)
    rows = alerts_page.filtered(c, ADMIN, c.outbox(), alerts_page.Filters(rule=["quota_constraint_exceeded"]))
    html_text = str(alerts_page.table_rows(c, rows, True, "zh"))
    assert "m³/人" in html_text and "kgce/m²" in html_text and "m3/person" not in html_text
    assert "2026-11-20 10:00" in html_text  # 02:00 UTC in Asia/Shanghai
    assert "+00:00" not in html_text and "T02:00" not in html_text


# -- item 6: savings verification --------------------------------------------------------------
def test_savings_verification_in_words(demo):
    c = ctx(demo, ADMIN)
    projects = {p["id"]: p for p in c.mv.visible(ADMIN)}
    assert sorted(projects) == ["cws-001", "emc-001"]  # the demo's EMC and water-saving contracts
    result = c.mv.result(projects["emc-001"]["file"])
    s = result.summary
    zh = str(mv.verdict(result, s["unit"], "zh"))
    en = str(mv.verdict(result, s["unit"], "en"))
    assert s["savings_significant"] and s["meets_ashrae14"]
    assert "节能量核定通过" in zh and "Savings verified" in en
    assert f"{s['avoided_fraction'] * 100:.1f}%" in zh and f"{s['avoided_fraction'] * 100:.1f} %" in en
    assert "kWh" in zh
    name_zh, name_en = mv.model_name(result, "zh"), mv.model_name(result, "en")
    assert "度日模型" in name_zh and "degree-day model" in name_en and "HDD" not in name_zh
    assert mv.summary_value(0.1096, "pct", "kWh", "zh") == "10.96%"
    assert mv.summary_value(True, "flag", "kWh", "zh") == "是"
    assert mv.summary_value(1449.7, "energy", "kWh", "en") == "1,450 kWh"
    periods = str(mv.periods_table(result, "zh"))
    p = result.project
    assert f"{p.baseline_start} ~ {p.baseline_end}" in periods and "天" in periods
    partial = mv.partial_months(result)
    assert pd.Timestamp(p.reporting_end).to_period("M").to_timestamp() in partial or \
        pd.Timestamp(p.reporting_end).is_month_end
    failed = type("R", (), {"summary": {**s, "savings_significant": False, "meets_ashrae14": False,
                                        "avoided_low90": -5.0, "avoided_high90": 10.0},
                            "findings": [], "project": p})()
    text = str(mv.verdict(failed, "kWh", "zh"))
    assert "节能量未能核定" in text and "包含零" in text and "ASHRAE 14" in text
    assert "节能量" in str(mv.summary_table(result, mv.SAVINGS_ROWS, "kWh", "zh", "t"))
    # 合同节水管理: the same page in water's words and m3
    water = c.mv.result(projects["cws-001"]["file"])
    assert water.summary["unit"] == "m3" and water.summary["savings_verified"]
    zh, en = str(mv.verdict(water, "m3", "zh")), str(mv.verdict(water, "m3", "en"))
    assert "节水量核定通过" in zh and "节水 " in zh and "m³" in zh and "节能" not in zh
    assert "Water savings verified" in en and "of water saved" in en
    table = str(mv.summary_table(water, mv.SAVINGS_ROWS, "m3", "zh", "t"))
    assert "节水量" in table and "报告期实际用水量" in table and "应付节水效益" in table and "节能" not in table


def test_every_number_of_the_overview_comes_from_the_aggregate(demo):
    """The intensities the overview shows are models.api.aggregate's ratios of sums."""
    c = ctx(demo, ADMIN)
    scope = overview.scope_of(c, ADMIN, "bd", "zh")
    n = overview.numbers(c, scope, 2025)
    table = c.service.indicators(2025)
    mine = table[table["institution_id"].isin(scope.insts)]
    assert float(n.agg["kgce_per_m2"]) == pytest.approx(mine["kgce"].sum() / mine["floor_area_m2"].sum())
    assert int(n.agg["institutions_with_data"]) == len(scope.insts) == 10
    assert np.isclose(n.categories["tce"].sum(), mine["kgce"].sum() / 1000)


def test_the_warm_up_fills_what_the_first_pages_read(demo):
    from dashboard.warmup import WarmUp

    c = ctx(demo, ADMIN)
    year = c.service.current_year()
    w = WarmUp(c).start()
    assert w.wait(120) and w.seconds is not None
    basis = c.service.basis
    for key in (("targets", year), ("indicators", year, None), ("monthly", year), ("ranking", year - 1),
                ("ranking", year)):
        assert (*key, basis) in c.service._cache, key
    # the overview of the default scope is then read from memory, the same object each time
    scope = overview.scope_of(c, ADMIN, "hebei", "zh")
    assert overview.numbers(c, scope, year) is overview.numbers(c, scope, year)


def test_the_chart_template_is_plotly_white_cut_to_the_charts_drawn():
    import plotly.io as pio

    from dashboard import widgets

    full, cut = pio.templates["plotly_white"], widgets.TEMPLATE
    for prop in ("plot_bgcolor", "paper_bgcolor", "colorway", "font", "xaxis", "yaxis", "hoverlabel"):
        assert cut.layout[prop] == full.layout[prop], prop
    assert cut.data.bar == full.data.bar and cut.data.scatter == full.data.scatter
    kept = cut.to_plotly_json()
    assert set(kept["data"]) == {"bar", "scatter", "pie"} and not {"scene", "colorscale", "geo"} & set(kept["layout"])
    assert widgets.DARK_TEMPLATE.layout.paper_bgcolor == pio.templates["plotly_dark"].layout.paper_bgcolor


def test_the_partial_plotly_bundle_holds_every_trace_type_drawn_and_is_served_for_the_full_one(tmp_path):
    import re as _re

    import flask
    from plotly.offline import get_plotlyjs_version

    from dashboard import app as dashboard_app
    from dashboard import widgets

    text = dashboard_app.PLOTLY_BUNDLE.read_text(encoding="utf-8")
    registered = set(_re.findall(r'moduleType:"trace",name:"(\w+)"', text))
    assert set(widgets.TRACES_DRAWN) <= registered and "scattergl" not in registered
    version = _re.search(r"plotly\.js \(basic - minified\) v(\d+\.\d+)\.\d+", text)
    assert version and get_plotlyjs_version().startswith(version.group(1) + ".")  # the plotly.js `plotly` expects
    server = flask.Flask(__name__)
    dashboard_app.partial_plotly(server)
    with server.test_client() as client:
        got = client.get(dashboard_app.PLOTLY_URL)
        assert got.status_code == 200 and got.mimetype == "application/javascript"
        assert got.data == dashboard_app.PLOTLY_BUNDLE.read_bytes()
        assert client.get("/_dash-component-suites/plotly/other.js").status_code == 404  # nothing else taken
