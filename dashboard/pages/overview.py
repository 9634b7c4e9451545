"""Overview page `/`: totals, targets and trends of the user's scope.

Overview `/`: the totals of the user's own scope (an institution user: their
institution; a region manager: their region; the administrator: the top region) or a
chosen region for a year, on gauges against the dual-control targets of exactly that
scope with the year-end projection; intensities; the year-to-date curve; the monthly
trend by energy and the cost in 元; the splits by energy and category; a free date
range next to the same dates last year; and the xlsx export of all of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dash
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from core.access import Forbidden, default_region, overview_scope, region_ids
from core.users import User
from dashboard import inputs, integrations, period
from dashboard.context import Context, Page
from dashboard.data import KG_PER_T
from dashboard.i18n import compact, month_label, norm_lang, num, pct, quantity, t, unit
from dashboard.plan_panel import plan_panel
from dashboard.widgets import (
    ENERGY_COLOURS,
    KEEP,
    chart_title,
    date_axis,
    export_button,
    fig_layout,
    forbidden,
    graph,
    hover_values,
    no_data,
    on_dark,
    partial_legend,
    partial_style,
    scrolling,
    value_axis,
    year_picker,
)
from models import api as models_api

# gauge -> (total in the aggregate frame, target indicator, label, unit)
GAUGES = (("energy_tce", "tce", "ind_tce", "tce"), ("water_m3", "water_m3", "ind_water_m3", "m3"),
          ("co2_t", "t_co2", "ind_t_co2", "tCO2"))
INTENSITIES = (("kgce_per_m2", "ind_kgce_per_m2", "kgce/m2"), ("kgce_per_person", "ind_kgce_per_person", "kgce/person"),
               ("water_m3_per_person", "ind_water_m3_per_person", "m3/person"))


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    regions = c.regions_by_depth(region_ids(user, c.registry))
    return html.Div(id="overview", children=[
        html.Div(className="controls", children=[
            html.Label([t("region", lang), dcc.Dropdown(
                id="ov-region", **KEEP, options=[{"label": c.region_name[r], "value": r} for r in regions],
                value=default_region(user, c.registry), clearable=False, disabled=not regions)]),
            year_picker("ov-year", c.years(), c.service.current_year(), lang),
            export_button("ov-export", lang),
        ]),
        dcc.Loading(html.Div(id="ov-body")),
        html.H2(t("period_analysis", lang)),
        period.controls("ov", lang, period.default_dates(c)),
        dcc.Loading(html.Div(id="ov-period")),
    ])


@dataclass
class Scope:
    """What one overview shows: the institutions summed and whose targets apply."""

    insts: set[str]
    target_scope: str | None
    name: str


def scope_of(c: Context, user: User | None, region: str | None, lang: str) -> Scope:
    """The overview's scope for `region` (None: the user's own); raises Forbidden."""
    insts, scope = overview_scope(user, c.registry, region)
    if region:
        name = c.region_name.get(region, region)
    elif user is not None and user.scope in c.registry.institution_by_id:
        name = c.registry.institution_by_id[user.scope].name
    else:
        name = t("all", lang)
    return Scope(insts, scope, name)


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output("ov-body", "children"), Input("ov-region", "value"), Input("ov-year", "value"),
                  State("lang", "data"))
    def overview_body(region: str | None, year: int | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        region, year = inputs.text(region), inputs.integer(year, lo=1, hi=9999)
        try:
            scope = scope_of(c, c.current_user(), region, lang)
        except Forbidden:
            return forbidden(lang)
        return content(c, scope, year or c.service.current_year(), lang)

    @app.callback(Output("ov-period", "children"), Input("ov-region", "value"), Input("ov-range", "start_date"),
                  Input("ov-range", "end_date"), Input("ov-yoy", "value"), State("lang", "data"))
    def overview_period(region: str | None, start: str | None, end: str | None, yoy: list | None,
                        lang: str | None) -> Any:
        lang = norm_lang(lang)
        region, start, end, yoy = inputs.text(region), inputs.text(start), inputs.text(end), inputs.texts(yoy)
        try:
            scope = scope_of(c, c.current_user(), region, lang)
        except Forbidden:
            return forbidden(lang)
        return period.view(c, scope.insts, period.parse(c, start, end), "yoy" in yoy, lang, "ov")

    @app.callback(Output("ov-export-file", "data"), Input("ov-export-button", "n_clicks"),
                  State("ov-region", "value"), State("ov-year", "value"), State("ov-range", "start_date"),
                  State("ov-range", "end_date"), State("lang", "data"), prevent_initial_call=True)
    def overview_export(clicks: int | None, region: str | None, year: int | None, start: str | None,
                        end: str | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        clicks, region, start, end = inputs.integer(clicks, lo=0), inputs.text(region), inputs.text(start), \
            inputs.text(end)
        year = inputs.integer(year, lo=1, hi=9999) or c.service.current_year()
        if not clicks:
            raise PreventUpdate
        try:
            scope = scope_of(c, c.current_user(), region, lang)
        except Forbidden:
            raise PreventUpdate from None
        data = integrations.frames_xlsx(export_sheets(c, scope, year, period.parse(c, start, end), lang))
        return dcc.send_bytes(data, f"overview-{region or 'own'}-{year}.xlsx")


# -- the numbers (all from the data service) -------------------------------------------------
@dataclass
class Numbers:
    """One overview's figures: totals and intensities (`models.api.aggregate`), the
    targets of exactly this scope, the year-end projections (`quotas.evaluate`), months
    by energy (tce) and cost (元), and the split by category."""

    agg: pd.Series
    targets: dict[str, dict]
    projected: dict[str, float | None]
    months: pd.DataFrame  # month (naive local), energy, tce
    costs: pd.DataFrame  # month, energy, cost_cny, priced_share
    categories: pd.DataFrame  # category, tce
    running_month: pd.Timestamp | None  # the month not over yet (naive local), None for a past year


def numbers(c: Context, scope: Scope, year: int) -> Numbers | None:
    """The figures of `scope` for `year`, computed once per scope and year and kept as
    long as the year tables they come from (every user of that scope, the page, its
    export and the wall screen share them)."""
    key = ("overview_numbers", frozenset(scope.insts), scope.target_scope, year)
    return c.service.cached(key, lambda: _numbers(c, scope, year))  # type: ignore[return-value]


def _numbers(c: Context, scope: Scope, year: int) -> Numbers | None:
    table = c.service.indicators(year)
    table = table[table["institution_id"].isin(scope.insts)]
    if not table["has_data"].any():
        return None
    agg = group_totals(table)
    targets = scope_targets(c, scope.target_scope, year)
    months = c.service.monthly_energy(year)
    months = months[months["institution_id"].isin(scope.insts)]
    local = pd.DatetimeIndex(months["period_start"]).tz_convert(c.service.tz).tz_localize(None)
    by_energy = (months.assign(month=local).groupby(["month", "energy"], as_index=False)["kgce"].sum())
    by_energy = by_energy.assign(tce=by_energy["kgce"] / KG_PER_T).drop(columns="kgce")
    costs = c.service.year_sums(year)[1]
    costs = costs[costs["institution_id"].isin(scope.insts)] if len(costs) else costs
    costs = models_api.cost_by_period(costs, "month", c.service.tz, by=("energy",)) if len(costs) else costs
    if len(costs):
        costs = costs.assign(month=pd.DatetimeIndex(costs["period_start"]).tz_convert(c.service.tz).tz_localize(None))
    cats = models_api.aggregate(table[table["has_data"]], by=["category"])[["category", "tce"]]
    running = c.service.today().tz_localize(None).to_period("M").to_timestamp() if c.service.is_running(year) else None
    return Numbers(agg, targets, year_end(c, scope.insts, year, targets), by_energy, costs, cats, running)


def group_totals(table: pd.DataFrame) -> pd.Series:
    """The one group row of an indicator table (`models.api.aggregate` over all its rows:
    ratios of sums over the institutions with data, the ledger's and the target
    evaluation's definition, never over every institution)."""
    return models_api.aggregate(table.assign(scope="all"), by=["scope"]).iloc[0]


def scope_targets(c: Context, scope: str | None, year: int) -> dict[str, dict]:
    """Targets of exactly this scope (region:R or institution:I) by indicator:
    {indicator: {limit, actual, projected, status, unit}} from quotas.evaluate. A target
    of another scope (a city's for the province, the province's for a city) does not
    apply and is not drawn."""
    if scope is None:
        return {}
    status = c.service.target_status(year)
    rows = status[status["scope"] == scope]
    return {r["indicator"]: r for r in rows.to_dict("records")}


def year_end(c: Context, insts: set[str], year: int, targets: dict[str, dict]) -> dict[str, float | None]:
    """Year-end projection of each gauge's total: the target's own projection (the
    alerts', quotas.evaluate) when the scope has a target, else the same projection
    quotas.evaluate gives a target's scope."""
    own = c.service.year_end_projection(insts, year).set_index("indicator")["projected"]
    out: dict[str, float | None] = {}
    for key, _col, _label, _unit in GAUGES:
        if key in targets and pd.notna(targets[key]["projected"]):
            out[key] = float(targets[key]["projected"])
        else:
            out[key] = float(own[key]) if pd.notna(own[key]) else None
    return out


# -- the page ----------------------------------------------------------------------------------
def content(c: Context, scope: Scope, year: int, lang: str, wall: bool = False) -> Any:
    """The overview of a scope for `year` (`wall`: the wall screen's larger, control-free
    version)."""
    n = numbers(c, scope, year)
    if n is None:
        return no_data(lang)
    gauges = [gauge(f"gauge-{key}", t(label, lang), float(n.agg[col]), limit(n, key), n.projected[key], u, lang)
              for key, col, label, u in GAUGES]
    charts = [ytd_figure(c, n, year, lang), trend_figure(n, lang)]
    if wall:
        charts = [on_dark(f) for f in charts]
    parts = [
        html.H2(f"{scope.name} · {year} · {t('totals', lang)}"),
        html.Div(gauges, className="row"),
        graph("ov-ytd", charts[0], static=wall),
        graph("ov-trend", charts[1], static=wall),
    ]
    if wall:
        return html.Div(parts[1:])
    return html.Div([
        *parts[:2],
        scrolling(intensity_table(n, lang, c.service.group_yoy(scope.insts, year))),
        plan_panel(c, scope.insts, scope.target_scope, year, lang),
        *parts[2:],
        graph("ov-cost", cost_figure(n, lang)),
        html.P(cost_note(c, scope.insts, n, lang), className="note", id="ov-cost-note"),
        html.Div([graph("ov-split-energy", split_figure(n.months.groupby("energy", as_index=False)["tce"].sum(),
                                                        "energy", "en_", t("split_energy", lang), lang), "half"),
                  graph("ov-split-category", split_figure(n.categories, "category", "cat_",
                                                          t("split_category", lang), lang), "half")],
                 className="row"),
    ])


def limit(n: Numbers, key: str) -> float | None:
    return float(n.targets[key]["limit"]) if key in n.targets else None


def intensity_table(n: Numbers, lang: str, yoy: tuple[float, str] = (np.nan, "no_previous")) -> html.Table:
    """Institutions with data, the scope's intensities against its intensity targets and
    the year-on-year change of its total energy (`DataService.group_yoy`: like for like,
    blank with the reason unless both years are complete)."""
    rows = [html.Tr([html.Td(t("institutions_count", lang)),
                     html.Td(str(int(n.agg["institutions_with_data"])), className="num"), html.Td("")])]
    for key, label, u in INTENSITIES:
        target = limit(n, key)
        rows.append(html.Tr([
            html.Td(t(label, lang)), html.Td(quantity(n.agg[key], u, lang, 2), className="num"),
            html.Td(f"{t('target', lang)}: {quantity(target, u, lang, 2)}" if target else t("no_target", lang)),
        ], id={"type": "intensity-row", "key": key}))
    rows.append(html.Tr(id="ov-yoy-total", children=[
        html.Td(t("yoy_tce", lang)),
        html.Td(f"{yoy[0] * 100:+.1f} %" if not yoy[1] else "", className="num"),
        html.Td(t(f"yoy_{yoy[1]}", lang) if yoy[1] else t("yoy_like_for_like", lang))]))
    return html.Table(className="grid", id="ov-intensities", children=[html.Tbody(rows)])


def gauge(component_id: str, title: str, actual: float | None, target: float | None, projected: float | None, u: str,
          lang: str) -> html.Div:
    """Year-to-date value on a bar up to the annual target (red mark); the light band
    reaches the year-end projection, which the subtitle states with its share of the
    target. Numbers in the language's style (in 万 or 亿 in Chinese). Drawn in HTML and
    CSS (`.gauge` in assets/style.css), not as a Plotly chart: three dials cost the
    browser about a third of a second to draw on the first screen. The figures are on
    the element too (`data-value`, `data-target`, `data-projected`; `role="meter"`)."""
    actual, target, projected = (x if x is not None and np.isfinite(x) else None for x in (actual, target, projected))
    top = max(x or 0.0 for x in (actual, target, projected, 1e-9)) * 1.15

    def at(x: float | None) -> str:
        return f"{100 * min(max(x or 0.0, 0.0), top) / top:.2f}%"

    over = bool(target and projected and projected > target)
    zh = norm_lang(lang) == "zh"
    number = compact(actual, lang, 4) if zh and (actual or 0) >= 1e4 else num(actual, 0 if (actual or 0) >= 100 else 1)
    marks = [html.Div(className="gauge-projected" + (" over" if over else ""), style={"width": at(projected)})
             if projected else None,
             html.Div(className="gauge-bar", style={"width": at(actual)}),
             html.Div(className="gauge-target", style={"left": at(target)}, title=f"{t('target', lang)}: "
                      f"{compact(target, lang)} {unit(u, lang)}") if target else None]
    return html.Div(id=component_id, className="gauge", role="meter", **{
        "aria-label": title, "aria-valuemin": 0, "aria-valuemax": top, "aria-valuenow": actual,
        "data-value": actual, "data-target": target, "data-projected": projected}, children=[
        html.Div(title, className="gauge-title"),
        html.Div(f"{number} {unit(u, lang)}", className="gauge-number"),
        html.Div([m for m in marks if m is not None], className="gauge-track"),
        html.Div([html.Span("0"), html.Span(compact(top, lang, 2))], className="gauge-scale"),
        html.Div(gauge_subtitle(target, projected, u, lang), className="gauge-sub" + (" over" if over else "")),
    ])


def gauge_subtitle(target: float | None, projected: float | None, u: str, lang: str) -> str:
    """The projection and its share of the target (or that there is no target)."""
    proj = f"{t('projection', lang)}: {compact(projected, lang)} {unit(u, lang)}" if projected is not None else ""
    if projected is not None and target:
        share = projected / target
        return proj + (f"（目标 {compact(target, lang)}，{pct(share, lang, 0)}）" if lang == "zh" else
                       f" ({pct(share, lang, 0)} of the target {compact(target, lang)})")
    if projected is not None:
        return f"{proj} · {t('no_target', lang)}"
    return t("no_target", lang) if not target else ""


def ytd_figure(c: Context, n: Numbers, year: int, lang: str) -> go.Figure:
    """Cumulative total (tce) at each month's end (now for the running month), with a
    dashed line to the year-end projection and the target when the scope has one."""
    fig = go.Figure()
    by_month = n.months.groupby("month")["tce"].sum().sort_index()
    end = c.service.year_bounds(year)[1].tz_localize(None)
    at = np.minimum(pd.DatetimeIndex(by_month.index) + pd.DateOffset(months=1), end)
    cum = by_month.cumsum().to_numpy(float)
    values = list(cum)
    projected, target = n.projected["energy_tce"], limit(n, "energy_tce")
    if len(cum):
        fig.add_trace(go.Scatter(x=at, y=cum, mode="lines+markers", name=t("ytd", lang),
                                 customdata=hover_values(cum, "tce", lang), hovertemplate="%{customdata}"))
        if projected is not None and n.running_month is not None:
            fig.add_trace(go.Scatter(x=[at[-1], pd.Timestamp(year=year + 1, month=1, day=1)], y=[cum[-1], projected],
                                     mode="lines", line={"dash": "dash"}, name=t("projection", lang),
                                     customdata=hover_values([cum[-1], projected], "tce", lang),
                                     hovertemplate="%{customdata}"))
            values.append(projected)
    if target:
        fig.add_hline(y=target, line={"color": "#e03131"}, annotation_text=f"{t('target', lang)} {compact(target, lang)}")
        values.append(target)
    fig = fig_layout(fig, chart_title(t("ytd", lang), "tce", lang), lang)
    date_axis(fig, lang, "month")
    return value_axis(fig, values, lang)


def trend_figure(n: Numbers, lang: str) -> go.Figure:
    """Total energy (tce) per month, stacked by energy type; the running month hatched."""
    fig = go.Figure()
    for energy, d in n.months[n.months["tce"] > 0].groupby("energy", sort=False):
        fig.add_trace(go.Bar(x=d["month"], y=d["tce"], name=t(f"en_{energy}", lang),
                             marker={"color": ENERGY_COLOURS.get(str(energy)), **partial_style(d["month"],
                                                                                              n.running_month)},
                             customdata=hover_values(d["tce"], "tce", lang), hovertemplate="%{customdata}"))
    if n.running_month is not None and len(n.months):
        partial_legend(fig, t("partial_period", lang))
    fig.update_layout(barmode="stack")
    fig = fig_layout(fig, chart_title(t("monthly_tce", lang), "tce", lang), lang)
    date_axis(fig, lang, "month")
    return value_axis(fig, n.months.groupby("month")["tce"].sum().to_numpy(float), lang)


def cost_figure(n: Numbers, lang: str) -> go.Figure:
    """Energy cost (元) per month, stacked by energy type; the running month hatched."""
    fig = go.Figure()
    costs = n.costs[n.costs["cost_cny"].notna()] if len(n.costs) else n.costs
    for energy, d in costs.groupby("energy", sort=False) if len(costs) else []:
        fig.add_trace(go.Bar(x=d["month"], y=d["cost_cny"], name=t(f"en_{energy}", lang),
                             marker={"color": ENERGY_COLOURS.get(str(energy)), **partial_style(d["month"],
                                                                                              n.running_month)},
                             customdata=hover_values(d["cost_cny"], "CNY", lang), hovertemplate="%{customdata}"))
    if n.running_month is not None and len(costs):
        partial_legend(fig, t("partial_period", lang))
    fig.update_layout(barmode="stack")
    fig = fig_layout(fig, chart_title(t("cost_chart", lang), "CNY", lang), lang)
    date_axis(fig, lang, "month")
    return value_axis(fig, costs.groupby("month")["cost_cny"].sum().to_numpy(float) if len(costs) else [], lang)


def cost_note(c: Context, insts: set[str], n: Numbers, lang: str) -> str:
    """How the cost was priced: bills, else the tariffs of the scope's regions."""
    regions = sorted({c.registry.institution_by_id[i].region for i in insts if i in c.registry.institution_by_id})
    tariffs = {e: p for r in regions for e, p in c.registry.tariffs_of(r).items()}
    listed = "、".join if lang == "zh" else ", ".join
    text = t("cost_note", lang, tariffs=listed(f"{t(f'en_{e}', lang)} {p:g} 元/{unit_of(e, lang)}" if lang == "zh"
                                               else f"{t(f'en_{e}', lang)} {p:g} CNY/{unit_of(e, lang)}"
                                               for e, p in sorted(tariffs.items())) or t("no_tariffs", lang))
    unpriced = 1 - float(n.costs["priced_share"].mean()) if len(n.costs) else 0.0
    if unpriced > 0.001:
        text += " " + t("cost_unpriced", lang, share=pct(unpriced, lang, 0))
    return text


def unit_of(energy: str, lang: str) -> str:
    """The canonical unit of an energy, typeset (kWh, m³, GJ, kg)."""
    return unit(models_api.CANONICAL_UNIT.get(energy, ""), lang)


def split_figure(frame: pd.DataFrame, key: str, prefix: str, label: str, lang: str) -> go.Figure:
    """A share of total energy (tce) by energy type or category."""
    d = frame[frame["tce"] > 0]
    colours = [ENERGY_COLOURS.get(str(k)) for k in d[key]] if key == "energy" else None
    fig = go.Figure(go.Pie(labels=[t(f"{prefix}{k}", lang) for k in d[key]], values=d["tce"], hole=0.4, sort=False,
                           marker={"colors": colours} if colours else None,
                           customdata=hover_values(d["tce"], "tce", lang),
                           hovertemplate="%{label}: %{customdata} (%{percent})<extra></extra>"))
    return fig_layout(fig, chart_title(label, "tce", lang), lang)


# -- the xlsx export --------------------------------------------------------------------------
def export_sheets(c: Context, scope: Scope, year: int, per: period.Period, lang: str) -> list:
    """What the overview shows, as workbook sheets (title, frame, columns, notes)."""
    n = numbers(c, scope, year)
    notes = [f"{scope.name} · {year}", cost_note(c, scope.insts, n, lang) if n is not None else t("no_data", lang)]
    sheets: list = []
    if n is not None:
        totals = pd.DataFrame({
            "indicator": [key for key, *_ in GAUGES] + [key for key, *_ in INTENSITIES],
            "label": [t(label, lang) for _k, _c, label, _u in GAUGES] + [t(label, lang) for _k, label, _u in INTENSITIES],
            "unit": [unit(u, lang) for *_x, u in GAUGES] + [unit(u, lang) for *_x, u in INTENSITIES],
            "actual": [float(n.agg[col]) for _k, col, _l, _u in GAUGES] + [float(n.agg[k]) for k, _l, _u in INTENSITIES],
            "target": [limit(n, k) for k, *_ in GAUGES] + [limit(n, k) for k, *_ in INTENSITIES],
            "projected": [n.projected[k] for k, *_ in GAUGES] + [None] * len(INTENSITIES),
        })
        sheets.append(("totals", totals, [("indicator", "指标"), ("label", t("indicator", lang)), ("unit", "unit"),
                                          ("actual", t("actual", lang)), ("target", t("target", lang)),
                                          ("projected", t("projection", lang))], notes))
        months = n.months.assign(month=[month_label(m, lang) for m in n.months["month"]],
                                 energy=[t(f"en_{e}", lang) for e in n.months["energy"]])
        sheets.append(("monthly", months, [("month", t("month", lang)), ("energy", t("split_energy", lang)),
                                           ("tce", chart_title(t("energy_tce_chart", lang), "tce", lang))],
                   notes[:1]))
        if len(n.costs):
            costs = n.costs.assign(month=[month_label(m, lang) for m in n.costs["month"]],
                                   energy=[t(f"en_{e}", lang) for e in n.costs["energy"]])
            sheets.append(("cost", costs, [("month", t("month", lang)), ("energy", t("split_energy", lang)),
                                           ("cost_cny", chart_title(t("cost", lang), "CNY", lang)),
                                           ("priced_share", "priced_share")], notes))
        cats = n.categories.assign(category=[t(f"cat_{k}", lang) for k in n.categories["category"]])
        sheets.append(("categories", cats, [("category", t("category", lang)), ("tce", "tce")], notes[:1]))
    table, chart = period.frames(c, scope.insts, per)
    table = table.assign(unit=[unit(u, lang) for u in table["unit"]])
    sheets.append(("period", table, [("indicator", t("indicator", lang)), ("unit", "unit"),
                                     ("this_period", t("this_period", lang)), ("last_year", t("last_year_period", lang)),
                                     ("change", t("change", lang))],
                   [f"{t('this_period', lang)}: {per.label()}", f"{t('last_year_period', lang)}: "
                                                                 f"{per.year_before().label()}"]))
    sheets.append(("period_series", chart.assign(period_start=chart["period_start"].dt.strftime("%Y-%m-%d")),
                   [("period_start", t("date", lang)), ("tce", f"{t('this_period', lang)} (tce)"),
                    ("tce_last_year", f"{t('last_year_period', lang)} (tce)")], []))
    return sheets


PAGE = Page("/", "nav_overview", render, register, charts=True)
