"""Institution `/institution/<id>` (and the picker at `/institution`): the meter tree,
daily and hourly consumption, the electricity sub-item split, indicators against the
quota standard and data quality per meter."""

from __future__ import annotations

from typing import Any

import dash
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate
from plotly.subplots import make_subplots

from core import localtime
from core.access import Forbidden, institution_ids, require_institution
from core.registry import Institution, Meter
from core.users import User
from core.vocab import INDEX_UNIT
from dashboard import inputs
from dashboard.context import Context, Page
from dashboard.data import INDICATORS, institution_meters
from dashboard.i18n import norm_lang, t
from dashboard.widgets import KEEP, LEVEL_COLOURS, fig_layout, fmt

DAILY_DAYS = 60  # days shown in the institution's daily chart (and downloaded by default)


def render(c: Context, user: User, lang: str, rest: str | None) -> html.Div:
    """The picker at /institution (the page itself for a user who sees one), else the
    page of the institution in the rest of the path."""
    if rest is not None:
        return institution_page(c, user, rest, lang)
    visible = sorted(institution_ids(user, c.registry))
    if len(visible) == 1:
        return institution_page(c, user, visible[0], lang)
    by_id = c.registry.institution_by_id
    return html.Div([
        html.H2(t("choose_institution", lang)),
        dcc.Dropdown(id="inst-picker", options=[{"label": f"{by_id[i].name} ({i})", "value": i}
                                                for i in visible], placeholder=t("search_name", lang)),
    ])


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output("url", "pathname"), Input("inst-picker", "value"), prevent_initial_call=True)
    def pick_institution(inst: str | None) -> str:
        inst = inputs.text(inst)
        if not inst:
            raise PreventUpdate
        return f"/institution/{inst}"

    @app.callback(Output("inst-hourly", "figure"), Input("inst-hour-date", "date"), State("inst-id", "data"),
                  State("lang", "data"))
    def hourly(date: str | None, inst_id: str | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        date, inst_id = inputs.text(date), inputs.text(inst_id)
        try:
            inst = require_institution(c.current_user(), c.registry, inst_id)
        except Forbidden:
            return {"layout": {"title": {"text": t("forbidden", lang)}}}
        try:
            day = localtime.first_instant_of(pd.Timestamp(date or c.service.today().date().isoformat()).normalize(),
                                               c.service.tz)
        except (ValueError, TypeError):
            raise PreventUpdate from None
        meters = institution_meters(c.registry, inst)
        hourly = c.service.consumption("hour", day, day + pd.Timedelta(days=1),
                                       [m.id for m in meters if m.energy == "electricity"])
        return hourly_figure(hourly, meters, lang)


def institution_page(c: Context, user: User, institution_id: str, lang: str) -> html.Div:
    inst_id = require_institution(user, c.registry, institution_id)
    inst = c.registry.institution_by_id[inst_id]
    meters = institution_meters(c.registry, inst_id)
    quality = c.service.data_quality(inst_id)
    today = c.service.today()
    daily = c.service.consumption("day", today - pd.Timedelta(days=DAILY_DAYS), today + pd.Timedelta(days=1),
                                  [m.id for m in meters if m.parent is None])
    year = c.service.current_year()
    ytd = c.service.consumption("year", *c.service.year_bounds(year), [m.id for m in meters])
    # indicators of the last complete year: quota standards are annual
    table = c.service.ranking_table(year - 1)
    row = table[table["institution_id"] == inst_id]
    return html.Div(id="institution", children=[
        dcc.Store(id="inst-id", data=inst_id),
        *heading(c, inst, lang),
        html.Div(className="row", children=[
            html.Div(className="half", children=[html.H3(t("meters", lang)), meter_tree(meters, quality, lang)]),
            html.Div(className="half", children=[
                html.H3(t("data_quality", lang)), quality_summary(quality, len(meters), lang),
                quality_table(quality, lang, c.service.tz)]),
        ]),
        dcc.Graph(id="inst-daily", figure=daily_figure(daily, lang)),
        html.Div(className="controls", children=[
            html.Label([t("date", lang), dcc.DatePickerSingle(
                id="inst-hour-date", **KEEP, date=(today - pd.Timedelta(days=1)).date().isoformat(),
                display_format="YYYY-MM-DD")]),
        ]),
        dcc.Graph(id="inst-hourly"),
        html.Div(className="row", children=[
            dcc.Graph(id="inst-subitems", figure=subitem_split(ytd, meters, lang), className="half"),
            html.Div(className="half", children=[
                html.H3(f"{t('indicators', lang)} ({year - 1})"),
                indicator_table(row.iloc[0] if len(row) else None, c.service.levels_of(row) if len(row) else None,
                                lang)]),
        ]),
    ])


def heading(c: Context, inst: Institution, lang: str) -> list:
    """Name, region, category, areas, occupants and the CSV download link."""
    return [
        html.H2(f"{inst.name} ({inst.id})", id="inst-title"),
        html.P(f"{c.region_name.get(inst.region, inst.region)} · {t('cat_' + inst.category, lang)} · "
               f"{t('floor_area', lang)} {fmt(inst.floor_area_m2, 0)} · {t('heated_area', lang)} "
               f"{fmt(inst.heated_area_m2, 0)} · {t('occupants', lang)} {inst.occupants}"),
        html.A(t("export_csv", lang), href=f"/download/institution/{inst.id}/daily.csv", className="button",
               id="inst-export"),
    ]


def quality_summary(quality: pd.DataFrame, n_meters: int, lang: str) -> html.P:
    """Mean estimated share over the meters and how many are offline."""
    est = float(np.nanmean(quality["estimated_share"])) if quality["estimated_share"].notna().any() else np.nan
    offline = int(quality["offline"].sum())
    return html.P(f"{t('estimated_share', lang)}: {fmt(est * 100, 1)} % · {t('offline', lang)}: "
                  f"{offline}/{n_meters}", id="quality-summary")


def meter_tree(meters: list[Meter], quality: pd.DataFrame, lang: str) -> html.Ul:
    """Main meters with their sub-meters nested below, each with its state."""
    q = quality.set_index("meter_id") if len(quality) else pd.DataFrame()
    children: dict[str | None, list[Meter]] = {}
    for m in meters:
        children.setdefault(m.parent, []).append(m)

    def item(m: Meter) -> html.Li:
        offline = bool(q.loc[m.id, "offline"]) if m.id in q.index else True
        label = f"{m.id} · {t(f'en_{m.energy}', lang)} · {t(f'sub_{m.subitem}', lang)} ({INDEX_UNIT[m.energy]})"
        kids = children.get(m.id, [])
        return html.Li([
            html.Span(label, className="meter"),
            html.Span(t("offline" if offline else "online", lang),
                      className="badge offline" if offline else "badge online"),
            html.Ul([item(k) for k in kids]) if kids else None,
        ], id={"type": "meter-node", "id": m.id})

    ids = {m.id for m in meters}
    roots = [m for m in meters if m.parent is None or m.parent not in ids]
    return html.Ul([item(m) for m in roots], className="meter-tree", id="meter-tree")


def daily_figure(daily: pd.DataFrame, lang: str) -> go.Figure:
    """Daily consumption of the main meters, one panel per energy (its own unit)."""
    energies = [e for e in daily["energy"].dropna().unique()] if len(daily) else []
    if not energies:
        return fig_layout(go.Figure(), t("daily", lang))
    fig = make_subplots(rows=len(energies), cols=1, shared_xaxes=True,
                        subplot_titles=[f"{t(f'en_{e}', lang)} ({INDEX_UNIT[e]})" for e in energies])
    for n, e in enumerate(energies, start=1):
        d = daily[daily["energy"] == e].groupby("period_start", as_index=False)["quantity"].sum()
        fig.add_trace(go.Bar(x=d["period_start"], y=d["quantity"], name=t(f"en_{e}", lang)), row=n, col=1)
    fig = fig_layout(fig, t("daily", lang))
    fig.update_layout(height=220 * len(energies) + 60, showlegend=False)
    return fig


def hourly_figure(hourly: pd.DataFrame, meters: list[Meter], lang: str) -> go.Figure:
    """Hourly electricity (kWh): the main meter and each sub-item."""
    fig = go.Figure()
    by_id = {m.id: m for m in meters}
    for mid, d in hourly.groupby("meter_id") if len(hourly) else []:
        m = by_id.get(mid)
        if m is None or m.energy != "electricity":
            continue
        fig.add_trace(go.Scatter(x=d["period_start"], y=d["quantity"], mode="lines+markers",
                                 name=f"{t(f'sub_{m.subitem}', lang)} ({mid})"))
    return fig_layout(fig, f"{t('hourly', lang)} (kWh)")


def subitem_split(consumption: pd.DataFrame, meters: list[Meter], lang: str) -> go.Figure:
    """Electricity sub-items of the period with the main meter's unaccounted rest."""
    by_id = {m.id: m for m in meters}
    c = consumption[consumption["energy"] == "electricity"] if len(consumption) else consumption
    tot = c.groupby("meter_id")["quantity"].sum() if len(c) else pd.Series(dtype=float)
    main = sum(float(tot.get(m.id, 0.0)) for m in meters if m.energy == "electricity" and m.parent is None)
    parts: dict[str, float] = {}
    for mid, q in tot.items():
        m = by_id.get(mid)
        if m is not None and m.parent is not None and m.subitem != "total":
            parts[m.subitem] = parts.get(m.subitem, 0.0) + float(q)
    rest = main - sum(parts.values())
    if rest > 0:
        parts["unaccounted"] = rest
    fig = go.Figure(go.Pie(labels=[t(f"sub_{k}", lang) for k in parts], values=list(parts.values()), hole=0.4,
                           sort=False))
    return fig_layout(fig, f"{t('subitems', lang)} (kWh)")


def indicator_table(row: pd.Series | None, levels: pd.DataFrame | None, lang: str) -> html.Table:
    """The institution's intensities with the values of the quota standard that applies
    (`quotas.evaluate.quota_levels` rows: indicator, guide, baseline, constraint,
    advanced, general, level) and the level met."""
    lv = levels.set_index("indicator") if levels is not None and len(levels) else pd.DataFrame()
    head = html.Tr([html.Th(x) for x in (t("indicator", lang), t("value", lang), t("quota_values", lang),
                                          t("col_level", lang))])
    body = []
    for ind in INDICATORS:
        value = float(row[ind]) if row is not None and pd.notna(row[ind]) else np.nan
        std = lv.loc[ind] if ind in lv.index else None
        level = str(std["level"]) if std is not None else "none"
        limits = "—" if std is None else " · ".join(
            f"{t(k, lang)} {fmt(std[k], 2)}" for k in ("guide", "baseline", "constraint", "advanced", "general")
            if pd.notna(std[k]))
        body.append(html.Tr([
            html.Td(t(f"ind_{ind}", lang)), html.Td(fmt(value, 2), className="num"), html.Td(limits),
            html.Td(t(f"lvl_{level}", lang), style={"backgroundColor": LEVEL_COLOURS.get(level, "transparent")},
                    className=f"level-{level}"),
        ], id={"type": "ind-row", "id": ind}))
    return html.Table([html.Thead(head), html.Tbody(body)], className="grid", id="indicator-table")


def quality_table(quality: pd.DataFrame, lang: str, tz: str) -> html.Table:
    head = html.Tr([html.Th(x) for x in (t("meters", lang), t("completeness", lang), t("estimated_share", lang),
                                          t("last_seen", lang), "")])
    rows = []
    for r in quality.itertuples(index=False):  # one row per meter of one institution
        last = pd.Timestamp(r.last_seen)
        last_s = "—" if pd.isna(last) else last.tz_localize("UTC").tz_convert(tz).strftime("%Y-%m-%d %H:%M") \
            if last.tzinfo is None else last.tz_convert(tz).strftime("%Y-%m-%d %H:%M")
        low = r.completeness < 0.9
        rows.append(html.Tr([
            html.Td(r.meter_id), html.Td(f"{r.completeness * 100:.1f} %", className="num warn" if low else "num"),
            html.Td("—" if np.isnan(r.estimated_share) else f"{r.estimated_share * 100:.1f} %", className="num"),
            html.Td(last_s), html.Td(t("offline" if r.offline else "online", lang),
                                     className="badge offline" if r.offline else "badge online"),
        ]))
    return html.Table([html.Thead(head), html.Tbody(rows)], className="grid", id="quality-table")


PAGE = Page("/institution", "nav_institution", render, register, subpaths=True)
