"""Overview `/`: a region's (or the user's) totals for a year on gauges against its
dual-control targets with the year-end projection, intensities, the year-to-date
curve, the monthly trend by energy and the splits by energy and category."""

from __future__ import annotations

from typing import Any

import dash
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from core import localtime
from core.access import Forbidden, default_region, overview_scope, region_ids
from core.users import User
from dashboard import inputs
from dashboard.context import Context, Page
from dashboard.data import KG_PER_T
from dashboard.i18n import norm_lang, t
from dashboard.plan_panel import plan_panel
from dashboard.widgets import KEEP, fig_layout, fmt, forbidden, no_data, year_picker
from models.api import aggregate

# overview totals -> quotas.config target indicators
TARGET_KEYS = {"tce": "energy_tce", "water_m3": "water_m3", "t_co2": "co2_t", "kgce_per_m2": "kgce_per_m2",
               "kgce_per_person": "kgce_per_person", "water_m3_per_person": "water_m3_per_person"}
GAUGES = (("tce", "ind_tce", "tce"), ("water_m3", "ind_water_m3", "m³"), ("t_co2", "ind_t_co2", "t"))


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    regions = c.regions_by_depth(region_ids(user, c.registry))
    return html.Div(id="overview", children=[
        html.Div(className="controls", children=[
            html.Label([t("region", lang), dcc.Dropdown(
                id="ov-region", **KEEP, options=[{"label": c.region_name[r], "value": r} for r in regions],
                value=default_region(user, c.registry), clearable=False, disabled=not regions)]),
            year_picker("ov-year", c.years(), c.service.current_year(), lang),
        ]),
        dcc.Loading(html.Div(id="ov-body")),
    ])


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output("ov-body", "children"), Input("ov-region", "value"), Input("ov-year", "value"),
                  State("lang", "data"))
    def overview_body(region: str | None, year: int | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        region, year = inputs.text(region), inputs.integer(year, lo=1, hi=9999)
        try:
            insts, scope = overview_scope(c.current_user(), c.registry, region)
        except Forbidden:
            return forbidden(lang)
        try:
            year = int(year or c.service.current_year())
        except (ValueError, TypeError):
            raise PreventUpdate from None
        return content(c, insts, scope, year, lang)


def scope_targets(c: Context, scope: str | None, year: int) -> dict[str, dict]:
    """Targets of exactly this scope (region:R or institution:I) by indicator:
    {indicator: {limit, actual, projected, status}} from quotas.evaluate."""
    if scope is None:
        return {}
    status = c.service.target_status(year)
    rows = status[status["scope"] == scope]
    return {r["indicator"]: r for r in rows.to_dict("records")}


def content(c: Context, insts: set[str], scope: str | None, year: int, lang: str) -> Any:
    """The overview of these institutions (`scope`: whose targets apply) for `year`."""
    table = c.service.indicators(year)
    table = table[table["institution_id"].isin(insts)]
    if table["kgce"].notna().sum() == 0:
        return no_data(lang)
    months = c.service.monthly_energy(year)
    months = months[months["institution_id"].isin(insts)]
    totals = {"tce": float(table["kgce"].sum()) / KG_PER_T, "water_m3": float(table["water_m3"].sum()),
              "t_co2": float(table["t_co2"].sum())}
    targets = scope_targets(c, scope, year)
    limit = {k: (targets[k]["limit"] if k in targets else None) for k in TARGET_KEYS.values()}
    projections = year_end(c, insts, year, targets)
    gauges = [dcc.Graph(id=f"gauge-{key}", figure=gauge(t(label, lang), totals[key], limit[TARGET_KEYS[key]],
                                                         projections[key], unit, lang),
                        config={"displayModeBar": False}, className="gauge") for key, label, unit in GAUGES]
    cum = cumulative_tce(months, c.service.year_bounds(year)[1], c.service.tz)
    ytd = dcc.Graph(id="ov-ytd", figure=ytd_figure(cum, projections["tce"], limit["energy_tce"], year, lang))
    fig_trend, fig_split_e, fig_split_c = trend_figures(months, table, lang)
    return html.Div([
        html.H2(t("totals", lang)),
        html.Div(gauges, className="row"),
        intensity_table(table, totals, limit, lang, c.service.group_yoy(insts, year)),
        plan_panel(c, insts, scope, year, lang),
        ytd,
        dcc.Graph(id="ov-trend", figure=fig_trend),
        html.Div([dcc.Graph(id="ov-split-energy", figure=fig_split_e, className="half"),
                  dcc.Graph(id="ov-split-category", figure=fig_split_c, className="half")], className="row"),
    ])


def year_end(c: Context, insts: set[str], year: int, targets: dict[str, dict]) -> dict[str, float | None]:
    """Year-end projection of each gauge's total: the target's own projection (the
    alerts', quotas.evaluate) when the scope has a target, else the same projection
    quotas.evaluate gives a target's scope."""
    own = c.service.year_end_projection(insts, year).set_index("indicator")["projected"]
    out: dict[str, float | None] = {}
    for key, _label, _unit in GAUGES:
        tkey = TARGET_KEYS[key]
        if tkey in targets and pd.notna(targets[tkey]["projected"]):
            out[key] = float(targets[tkey]["projected"])
        else:
            out[key] = float(own[tkey]) if pd.notna(own[tkey]) else None
    return out


def intensity_table(table: pd.DataFrame, totals: dict[str, float], limit: dict[str, float | None],
                    lang: str, yoy: tuple[float, str] = (np.nan, "no_previous")) -> html.Table:
    """Number of institutions with data, the scope's intensities against its targets and
    the year-on-year change of its total energy (`DataService.group_yoy`, blank with the
    reason unless both years are complete):
    ratios of sums over the institutions with data (`models.api.aggregate`, the ledger's
    and the target evaluation's definition), never over every institution."""
    group = group_totals(table)
    rows = [("ind_kgce_per_m2", group["kgce_per_m2"], "kgce_per_m2"),
            ("ind_kgce_per_person", group["kgce_per_person"], "kgce_per_person"),
            ("ind_water_m3_per_person", group["water_m3_per_person"], "water_m3_per_person")]
    return html.Table(className="grid", id="ov-intensities", children=[
        html.Tbody([
            html.Tr([html.Td(t("institutions_count", lang)), html.Td(str(int(group["institutions_with_data"])),
                                                                    className="num")]),
            *[html.Tr([html.Td(t(label, lang)), html.Td(fmt(value, 2), className="num"),
                       html.Td(target_text(limit[key], lang))]) for label, value, key in rows],
            html.Tr(id="ov-yoy", children=[
                html.Td(t("yoy_tce", lang)),
                html.Td(f"{yoy[0] * 100:+.1f} %" if not yoy[1] else "", className="num"),
                html.Td(t(f"yoy_{yoy[1]}", lang) if yoy[1] else t("yoy_like_for_like", lang))]),
        ])])


def group_totals(table: pd.DataFrame) -> pd.Series:
    """The one group row of an indicator table (`models.api.aggregate` over all its rows)."""
    return aggregate(table.assign(all="all"), ["all"]).iloc[0]


def target_text(value: float | None, lang: str) -> str:
    return f"{t('target', lang)}: {fmt(value, 2)}" if value else t("no_target", lang)


def cumulative_tce(months: pd.DataFrame, end: pd.Timestamp, tz: str) -> pd.DataFrame:
    """Each month's cumulative total (tce) at its end (`end`, i.e. now, for the running
    month): columns month (naive local), cumulative."""
    by_month = (months.groupby("period_start")["kgce"].sum() / KG_PER_T).sort_index()
    month_end = localtime.local_wall(localtime.local_next(pd.DatetimeIndex(by_month.index), "month", tz), tz)
    month_end = np.minimum(month_end, end.tz_localize(None))
    return pd.DataFrame({"month": pd.DatetimeIndex(month_end), "cumulative": by_month.cumsum().to_numpy()})


def trend_figures(months: pd.DataFrame, table: pd.DataFrame, lang: str) -> tuple[go.Figure, go.Figure, go.Figure]:
    """The monthly trend by energy type and the splits by energy type and category (kgce)."""
    trend = months.groupby(["period_start", "energy"], as_index=False)["kgce"].sum()
    trend = trend[trend["kgce"] > 0]
    trend["energy_name"] = trend["energy"].map(lambda e: t(f"en_{e}", lang))
    trend["month"] = pd.DatetimeIndex(trend["period_start"]).tz_localize(None)
    fig_trend = px.bar(trend, x="month", y="kgce", color="energy_name", title=t("trend_month", lang),
                       labels={"kgce": "kgce", "month": "", "energy_name": ""}, template="plotly_white")
    fig_trend.update_xaxes(dtick="M1", tickformat="%Y-%m")
    split_e = trend.groupby("energy_name", as_index=False)["kgce"].sum()
    fig_split_e = px.pie(split_e, names="energy_name", values="kgce", hole=0.4,
                         title=f"{t('split_energy', lang)} (kgce)")
    by_cat = table.groupby("category", as_index=False)["kgce"].sum()
    by_cat["name"] = by_cat["category"].map(lambda c: t(f"cat_{c}", lang))
    fig_split_c = px.pie(by_cat, names="name", values="kgce", hole=0.4,
                         title=f"{t('split_category', lang)} (kgce)")
    return fig_trend, fig_split_e, fig_split_c


def gauge(title: str, actual: float, target: float | None, projected: float | None, unit: str, lang: str) -> go.Figure:
    """Year-to-date value on a dial up to the annual target (red mark); the light band
    reaches the year-end projection, which the subtitle states with its share of the
    target."""
    top = max(x for x in (actual, target or 0, projected or 0, 1e-9) if x is not None and not np.isnan(x)) * 1.15
    over = bool(target and projected and projected > target)
    ind = go.Indicator(
        mode="gauge+number", value=actual,
        number={"suffix": f" {unit}", "valueformat": ",.1f"},
        title={"text": f"{title}<br><span style='font-size:0.7em;color:{'#e03131' if over else '#495057'}'>"
                       f"{gauge_subtitle(target, projected, lang)}</span>"},
        gauge={"axis": {"range": [0, top]},
               "bar": {"color": "#1c7ed6"},
               "steps": ([{"range": [0, projected], "color": "#ffe3e3" if over else "#e7f5ff"}] if projected else []),
               "threshold": {"line": {"color": "#e03131", "width": 4}, "value": target} if target else None},
    )
    fig = go.Figure(ind)
    fig.update_layout(height=280, margin={"l": 30, "r": 30, "t": 80, "b": 10})
    return fig


def gauge_subtitle(target: float | None, projected: float | None, lang: str) -> str:
    """The projection and its share of the target (or that there is no target)."""
    if projected is not None and target:
        share = projected / target * 100
        return f"{t('projection', lang)}: {fmt(projected, 1)} " + (f"（目标的 {share:.0f}%）" if lang == "zh" else
                                                                    f"({share:.0f} % of target)")
    if projected is not None:
        return f"{t('projection', lang)}: {fmt(projected, 1)} · {t('no_target', lang)}"
    return t("no_target", lang) if not target else ""


def ytd_figure(months: pd.DataFrame, projection: float | None, target: float | None, year: int, lang: str,
               unit: str = "tce") -> go.Figure:
    """Cumulative monthly total with a dashed line to the year-end projection."""
    fig = go.Figure()
    if len(months):
        x = months["month"]
        y = months["cumulative"]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=t("ytd", lang)))
        if projection is not None:
            fig.add_trace(go.Scatter(x=[x.iloc[-1], pd.Timestamp(year=year + 1, month=1, day=1)],
                                     y=[y.iloc[-1], projection], mode="lines", line={"dash": "dash"},
                                     name=t("projection", lang)))
    if target:
        fig.add_hline(y=target, line={"color": "#e03131"}, annotation_text=t("target", lang))
    return fig_layout(fig, f"{t('ytd', lang)} ({unit})")


PAGE = Page("/", "nav_overview", render, register)
