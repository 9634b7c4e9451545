"""Comparison page `/compare`: up to five institutions side by side.

Comparison `/compare`: up to five institutions the user may see, side by side for a
year: totals, intensities with their quota level, year-on-year change and cost in
元, and their monthly total energy in one chart; the xlsx export of the table."""

from __future__ import annotations

from typing import Any

import dash
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from core.access import Forbidden, institution_ids, require_institution
from core.users import User
from dashboard import inputs, integrations
from dashboard.context import Context, Page
from dashboard.data import KG_PER_T
from dashboard.i18n import MISSING, norm_lang, pct, quantity, t, unit
from dashboard.widgets import (
    KEEP,
    LEVEL_COLOURS,
    chart_title,
    date_axis,
    export_button,
    fig_layout,
    forbidden,
    graph,
    hover_values,
    no_data,
    partial_legend,
    partial_style,
    scrolling,
    value_axis,
    year_picker,
)
from models import api as models_api

MAX_COMPARED = 5
DEFAULT_COMPARED = 3  # the page opens on the first few institutions the user sees
# table rows: column of the ranking table, label key, unit, quota level column (or None)
ROWS = (("tce", "energy_tce_chart", "tce", None), ("water_m3", "water_chart", "m3", None),
        ("t_co2", "co2_chart", "tCO2", None),
        ("kgce_per_m2", "ind_kgce_per_m2", "kgce/m2", "level_kgce_per_m2"),
        ("kgce_per_person", "ind_kgce_per_person", "kgce/person", "level_kgce_per_person"),
        ("water_m3_per_person", "ind_water_m3_per_person", "m3/person", "level_water_m3_per_person"),
        ("kgco2_per_m2", "ind_kgco2_per_m2", "kgCO2/m2", "level_kgco2_per_m2"),
        ("heating_kgce_per_m2", "ind_heating_kgce_per_m2", "kgce/m2", "level_heating_kgce_per_m2"),
        ("nonheating_kgce_per_m2", "ind_nonheating_kgce_per_m2", "kgce/m2", "level_nonheating_kgce_per_m2"),
        ("yoy_kgce", "col_yoy", "%", None), ("cost_cny", "cost", "CNY", None))
COLOURS = ("#1c7ed6", "#e8590c", "#2f9e44", "#9c36b5", "#f08c00")


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    visible = sorted(institution_ids(user, c.registry))
    by_id = c.registry.institution_by_id
    return html.Div(id="compare", children=[
        html.H2(t("compare_institutions", lang)),
        html.Div(className="controls", children=[
            html.Label(className="wide", children=[t("compare_pick", lang), dcc.Dropdown(
                id="cmp-institutions", **KEEP, multi=True, value=visible[:DEFAULT_COMPARED],
                options=[{"label": f"{by_id[i].name} ({i})", "value": i} for i in visible],
                placeholder=t("search_name", lang))]),
            year_picker("cmp-year", c.years(), c.service.current_year() - 1, lang),
            export_button("cmp-export", lang),
        ]),
        dcc.Loading(html.Div(id="cmp-body")),
    ])


def chosen(c: Context, user: User | None, ids: list | None) -> list[str]:
    """The chosen institutions (at most MAX_COMPARED), each one the user may see;
    raises Forbidden for any other."""
    return [require_institution(user, c.registry, i) for i in list(dict.fromkeys(ids or []))[:MAX_COMPARED]]


def picked(ids: Any, year: Any, default_year: int) -> tuple[list[str], int]:
    """The picker's institution ids and year, type-checked (`dashboard.inputs`)."""
    return inputs.texts(ids), inputs.integer(year, lo=1, hi=9999) or default_year


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output("cmp-body", "children"), Input("cmp-institutions", "value"), Input("cmp-year", "value"),
                  State("lang", "data"))
    def compare_body(ids: list | None, year: int | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        ids, year = picked(ids, year, c.service.current_year() - 1)
        try:
            insts = chosen(c, c.current_user(), ids)
        except Forbidden:
            return forbidden(lang)
        if not insts:
            return no_data(lang)
        note = html.P(t("compare_too_many", lang), className="note") if len(ids) > MAX_COMPARED else None
        table = comparison(c, insts, year)
        return html.Div([note, scrolling(comparison_table(c, table, insts, lang)),
                         graph("cmp-chart", monthly_figure(c, insts, year, lang))])

    @app.callback(Output("cmp-export-file", "data"), Input("cmp-export-button", "n_clicks"),
                  State("cmp-institutions", "value"), State("cmp-year", "value"), State("lang", "data"),
                  prevent_initial_call=True)
    def compare_export(clicks: int | None, ids: list | None, year: int | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        ids, year = picked(ids, year, c.service.current_year() - 1)
        try:
            insts = chosen(c, c.current_user(), ids)
        except Forbidden:
            raise PreventUpdate from None
        if not inputs.integer(clicks, lo=0) or not insts:
            raise PreventUpdate
        table = comparison(c, insts, year)
        by_id = c.registry.institution_by_id
        frame = pd.DataFrame({
            "indicator": [t(label, lang) for _col, label, _u, _lv in ROWS],
            "unit": [unit(u, lang) for _col, _label, u, _lv in ROWS],
            **{i: [table.at[i, col] if col in table else np.nan for col, *_ in ROWS] for i in insts}})
        cols = [("indicator", t("indicator", lang)), ("unit", "unit")] + [(i, f"{by_id[i].name} ({i})") for i in insts]
        data = integrations.frames_xlsx([("compare", frame, cols, [str(year)])])
        return dcc.send_bytes(data, f"compare-{year}.xlsx")


def comparison(c: Context, insts: list[str], year: int) -> pd.DataFrame:
    """One row per institution (index institution_id): the ranking table's indicators,
    year-on-year change and quota levels (`DataService.ranking_table`) and the year's
    cost (`models.api.energy_cost` of the year, summed)."""
    table = c.service.ranking_table(year).set_index("institution_id").reindex(insts)
    table["tce"] = table["kgce"] / KG_PER_T
    costs = c.service.year_sums(year)[1]
    costs = costs[costs["institution_id"].isin(insts)] if len(costs) else costs
    total = (models_api.cost_by_period(costs, "all", c.service.tz, by=("institution_id",)).set_index("institution_id")
             if len(costs) else pd.DataFrame(columns=["cost_cny"]))
    table["cost_cny"] = total["cost_cny"].reindex(insts).to_numpy(float) if len(total) else np.nan
    return table


def comparison_table(c: Context, table: pd.DataFrame, insts: list[str], lang: str) -> html.Table:
    by_id = c.registry.institution_by_id
    head = html.Tr([html.Th(t("indicator", lang)),
                    *[html.Th(dcc.Link(by_id[i].name, href=f"/institution/{i}"), className="num") for i in insts]])
    body = []
    for col, label, u, level_col in ROWS:
        cells = []
        for i in insts:
            v = table.at[i, col] if col in table else np.nan
            text = (MISSING if pd.isna(v) else ("+" if v > 0 else "") + pct(v / 100, lang)) if u == "%" else \
                quantity(v, u, lang, 2 if "/" in u else 1)
            level = str(table.at[i, level_col]) if level_col and level_col in table else None
            style = {"backgroundColor": LEVEL_COLOURS[level]} if level in LEVEL_COLOURS else None
            cells.append(html.Td(text, className="num", style=style,
                                 title=t(f"lvl_{level}", lang) if level else None))
        body.append(html.Tr([html.Td(t(label, lang)), *cells], id={"type": "cmp-row", "key": col}))
    return html.Table([html.Thead(head), html.Tbody(body)], className="grid", id="cmp-table")


def monthly_figure(c: Context, insts: list[str], year: int, lang: str) -> go.Figure:
    """Each institution's total energy (tce) per month, side by side; a running month hatched."""
    months = c.service.monthly_energy(year)
    months = months[months["institution_id"].isin(insts)]
    local = pd.DatetimeIndex(months["period_start"]).tz_convert(c.service.tz).tz_localize(None)
    g = months.assign(month=local).groupby(["institution_id", "month"], as_index=False)["kgce"].sum()
    g["tce"] = g["kgce"] / KG_PER_T
    running = c.service.today().tz_localize(None).to_period("M").to_timestamp() if c.service.is_running(year) else None
    fig = go.Figure()
    by_id = c.registry.institution_by_id
    for n, i in enumerate(insts):
        d = g[g["institution_id"] == i]
        fig.add_trace(go.Bar(x=d["month"], y=d["tce"], name=by_id[i].name,
                             marker={"color": COLOURS[n % len(COLOURS)], **partial_style(d["month"], running)},
                             customdata=hover_values(d["tce"], "tce", lang), hovertemplate="%{customdata}"))
    if running is not None and len(g):
        partial_legend(fig, t("partial_period", lang))
    fig.update_layout(barmode="group")
    fig = fig_layout(fig, chart_title(t("compare_monthly", lang), "tce", lang), lang, height=380)
    date_axis(fig, lang, "month")
    return value_axis(fig, g["tce"].to_numpy(float), lang)


PAGE = Page("/compare", "nav_compare", render, register)
