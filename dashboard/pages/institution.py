"""Institution page `/institution/<id>`: meters, periods, data quality.

Institution `/institution/<id>` (and the picker at `/institution`): the meter tree,
daily and hourly consumption, the electricity sub-item split, indicators against the
quota standard, data quality per meter, a free date range next to the same dates last
year (with its cost in 元), and the xlsx export of the page."""

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
from dashboard import inputs, integrations, period
from dashboard.context import Context, Page
from dashboard.data import INDICATORS, institution_meters
from dashboard.i18n import local_time, norm_lang, pct, quantity, t, unit
from dashboard.widgets import (
    ENERGY_COLOURS,
    KEEP,
    LEVEL_COLOURS,
    chart_title,
    date_axis,
    export_button,
    fig_layout,
    fmt,
    forbidden,
    graph,
    hover_values,
    partial_legend,
    partial_style,
    scrolling,
    value_axis,
)

# the unit of each indicator (the quota file's vocabulary), typeset by dashboard.i18n.unit
INDICATOR_UNITS = {"kgce_per_m2": "kgce/m2", "kgce_per_person": "kgce/person", "water_m3_per_person": "m3/person",
                   "kgco2_per_m2": "kgCO2/m2", "heating_kgce_per_m2": "kgce/m2", "nonheating_kgce_per_m2": "kgce/m2"}

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
                  State("lang", "data"), prevent_initial_call=True)
    def hourly(date: str | None, inst_id: str | None, lang: str | None) -> Any:
        """Another day's hourly chart (the page opens with yesterday's, drawn with it)."""
        lang = norm_lang(lang)
        date, inst_id = inputs.text(date), inputs.text(inst_id)
        try:
            inst = require_institution(c.current_user(), c.registry, inst_id)
        except Forbidden:
            return {"layout": {"title": {"text": t("forbidden", lang)}}}
        try:
            day = pd.Timestamp(date or c.service.today().date().isoformat()).normalize()
        except (ValueError, TypeError):
            raise PreventUpdate from None
        return hourly_of_day(c, inst, day, lang)

    @app.callback(Output("inst-period", "children"), Input("inst-range", "start_date"), Input("inst-range", "end_date"),
                  Input("inst-yoy", "value"), State("inst-id", "data"), State("lang", "data"),
                  prevent_initial_call=True)
    def institution_period(start: str | None, end: str | None, yoy: list | None, inst_id: str | None,
                           lang: str | None) -> Any:
        lang = norm_lang(lang)
        start, end, inst_id, yoy = inputs.text(start), inputs.text(end), inputs.text(inst_id), inputs.texts(yoy)
        try:
            inst = require_institution(c.current_user(), c.registry, inst_id)
        except Forbidden:
            return forbidden(lang)
        return period.view(c, {inst}, period.parse(c, start, end), "yoy" in yoy, lang, "inst", own=True)

    @app.callback(Output("inst-export-file", "data"), Input("inst-export-button", "n_clicks"),
                  State("inst-id", "data"), State("inst-range", "start_date"), State("inst-range", "end_date"),
                  State("lang", "data"), prevent_initial_call=True)
    def institution_export(clicks: int | None, inst_id: str | None, start: str | None, end: str | None,
                           lang: str | None) -> Any:
        lang = norm_lang(lang)
        clicks, inst_id, start, end = inputs.integer(clicks, lo=0), inputs.text(inst_id), inputs.text(start), \
            inputs.text(end)
        if not clicks:
            raise PreventUpdate
        try:
            inst = require_institution(c.current_user(), c.registry, inst_id)
        except Forbidden:
            raise PreventUpdate from None
        data = integrations.frames_xlsx(export_sheets(c, inst, period.parse(c, start, end), lang))
        return dcc.send_bytes(data, f"{inst}.xlsx")


def last_complete_year(c: Context, inst_id: str) -> tuple[int, pd.Series | None, pd.DataFrame | None]:
    """The last complete year (quota standards are annual), its indicator row and the
    quota levels of the institution."""
    year = c.service.current_year() - 1
    table = c.service.ranking_table(year)
    row = table[table["institution_id"] == inst_id]
    return year, (row.iloc[0] if len(row) else None), (c.service.levels_of(row) if len(row) else None)


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
    last_year, row, levels = last_complete_year(c, inst_id)
    yesterday = (today - pd.Timedelta(days=1)).date()  # the hourly chart's first day
    return html.Div(id="institution", children=[
        dcc.Store(id="inst-id", data=inst_id),
        *heading(c, inst, lang),
        html.Div(className="row", children=[
            html.Div(className="half", children=[html.H3(t("meters", lang)), meter_tree(meters, quality, lang)]),
            html.Div(className="half", children=[
                html.H3(t("data_quality", lang)), quality_summary(quality, len(meters), lang),
                scrolling(quality_table(quality, lang, c.service.tz))]),
        ]),
        graph("inst-daily", daily_figure(daily, today, lang)),
        html.Div(className="controls", children=[
            html.Label([t("date", lang), dcc.DatePickerSingle(
                id="inst-hour-date", **KEEP, date=yesterday.isoformat(),
                display_format="YYYY-MM-DD", first_day_of_week=1)]),
        ]),
        graph("inst-hourly", hourly_of_day(c, inst_id, pd.Timestamp(yesterday), lang)),
        html.Div(className="row", children=[
            graph("inst-subitems", subitem_split(ytd, meters, year, lang), "half"),
            html.Div(className="half", children=[
                html.H3(f"{t('indicators', lang)} ({last_year})"),
                scrolling(indicator_table(row, levels, lang))]),
        ]),
        html.H2(t("period_analysis", lang)),
        period.controls("inst", lang, period.default_dates(c)),
        dcc.Loading(html.Div(id="inst-period", children=period.view(c, {inst_id}, period.parse(c, None, None), True,
                                                                      lang, "inst", own=True))),
    ])


def hourly_of_day(c: Context, inst_id: str, day: pd.Timestamp, lang: str) -> go.Figure:
    """The hourly electricity chart of the local calendar day `day` (naive)."""
    start = localtime.first_instant_of(day, c.service.tz)
    meters = institution_meters(c.registry, inst_id)
    hourly = c.service.consumption("hour", start, start + pd.Timedelta(days=1),
                                   [m.id for m in meters if m.energy == "electricity"])
    return hourly_figure(hourly, meters, lang, c.service.tz)


def heading(c: Context, inst: Institution, lang: str) -> list:
    """Name, region, category, areas, occupants, the CSV and xlsx downloads."""
    return [
        html.H2(f"{inst.name} ({inst.id})", id="inst-title"),
        html.P(f"{c.region_name.get(inst.region, inst.region)} · {t('cat_' + inst.category, lang)} · "
               f"{t('floor_area', lang)} {fmt(inst.floor_area_m2, 0)} · {t('heated_area', lang)} "
               f"{fmt(inst.heated_area_m2, 0)} · {t('occupants', lang)} {inst.occupants}"),
        html.Div(className="controls", children=[
            html.A(t("export_csv", lang), href=f"/download/institution/{inst.id}/daily.csv", className="button",
                   id="inst-export"),
            export_button("inst-export", lang),
        ]),
    ]


def quality_summary(quality: pd.DataFrame, n_meters: int, lang: str) -> html.P:
    """Mean estimated share over the meters and how many are offline."""
    est = float(np.nanmean(quality["estimated_share"])) if quality["estimated_share"].notna().any() else np.nan
    offline = int(quality["offline"].sum())
    return html.P(f"{t('estimated_share', lang)}: {pct(est, lang)} · {t('offline', lang)}: "
                  f"{offline}/{n_meters}", id="quality-summary")


def meter_tree(meters: list[Meter], quality: pd.DataFrame, lang: str) -> html.Ul:
    """Main meters with their sub-meters nested below, each with its state."""
    q = quality.set_index("meter_id") if len(quality) else pd.DataFrame()
    children: dict[str | None, list[Meter]] = {}
    for m in meters:
        children.setdefault(m.parent, []).append(m)

    def item(m: Meter) -> html.Li:
        offline = bool(q.loc[m.id, "offline"]) if m.id in q.index else True
        label = (f"{m.id} · {t(f'en_{m.energy}', lang)} · {t(f'sub_{m.subitem}', lang)} "
                 f"({unit(INDEX_UNIT[m.energy], lang)})")
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


def daily_figure(daily: pd.DataFrame, today: pd.Timestamp, lang: str) -> go.Figure:
    """Daily consumption of the main meters, one panel per energy, each in its own unit
    (named in the panel's title); today, not over yet, hatched."""
    energies = [e for e in daily["energy"].dropna().unique()] if len(daily) else []
    if not energies:
        return fig_layout(go.Figure(), t("daily", lang), lang)
    fig = make_subplots(rows=len(energies), cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[chart_title(t(f"en_{e}", lang), INDEX_UNIT[e], lang) for e in energies])
    running = today.tz_localize(None)
    for n, e in enumerate(energies, start=1):
        d = daily[daily["energy"] == e].groupby("period_start", as_index=False)["quantity"].sum()
        x = pd.DatetimeIndex(d["period_start"]).tz_convert(today.tz).tz_localize(None)
        fig.add_trace(go.Bar(x=x, y=d["quantity"], name=t(f"en_{e}", lang),
                             marker={"color": ENERGY_COLOURS.get(str(e)), **partial_style(x, running)},
                             customdata=hover_values(d["quantity"], INDEX_UNIT[e], lang),
                             hovertemplate="%{customdata}<extra></extra>"), row=n, col=1)
        value_axis(fig, d["quantity"].to_numpy(float), lang, axis="yaxis" if n == 1 else f"yaxis{n}")
        date_axis(fig, lang, "day", axis="xaxis" if n == 1 else f"xaxis{n}")
    partial_legend(fig, t("partial_period", lang))
    fig = fig_layout(fig, t("daily", lang), lang)
    fig.update_layout(height=220 * len(energies) + 80, hovermode="closest")
    return fig


def hourly_figure(hourly: pd.DataFrame, meters: list[Meter], lang: str, tz: str) -> go.Figure:
    """Hourly electricity (kWh): the main meter and each sub-item."""
    fig = go.Figure()
    by_id = {m.id: m for m in meters}
    values: list[float] = []
    for mid, d in hourly.groupby("meter_id") if len(hourly) else []:
        m = by_id.get(mid)
        if m is None or m.energy != "electricity":
            continue
        x = pd.DatetimeIndex(d["period_start"]).tz_convert(tz).tz_localize(None)  # local wall time
        fig.add_trace(go.Scatter(x=x, y=d["quantity"], mode="lines+markers",
                                 name=f"{t(f'sub_{m.subitem}', lang)} ({mid})",
                                 customdata=hover_values(d["quantity"], "kWh", lang), hovertemplate="%{customdata}"))
        values += list(d["quantity"])
    fig = fig_layout(fig, chart_title(t("hourly", lang), "kWh", lang), lang)
    date_axis(fig, lang, "hour")
    return value_axis(fig, values, lang)


def subitem_split(consumption: pd.DataFrame, meters: list[Meter], year: int, lang: str) -> go.Figure:
    """Electricity sub-items of the year so far with the main meter's unaccounted rest (kWh)."""
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
                           sort=False, customdata=hover_values(list(parts.values()), "kWh", lang),
                           hovertemplate="%{label}: %{customdata} (%{percent})<extra></extra>"))
    return fig_layout(fig, chart_title(f"{t('subitems', lang)} {year}", "kWh", lang), lang)


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
            html.Td(t(f"ind_{ind}", lang).split(" (")[0].split("（")[0].strip()),
            html.Td(quantity(value, INDICATOR_UNITS[ind], lang, 2), className="num"), html.Td(limits),
            html.Td(t(f"lvl_{level}", lang), style={"backgroundColor": LEVEL_COLOURS.get(level, "transparent")},
                    className=f"level-{level} nowrap"),
        ], id={"type": "ind-row", "id": ind}))
    return html.Table([html.Thead(head), html.Tbody(body)], className="grid", id="indicator-table")


def quality_table(quality: pd.DataFrame, lang: str, tz: str) -> html.Table:
    head = html.Tr([html.Th(x) for x in (t("meters", lang), t("completeness", lang), t("estimated_share", lang),
                                          t("last_seen", lang), "")])
    rows = []
    for r in quality.itertuples(index=False):  # one row per meter of one institution
        low = r.completeness < 0.9
        rows.append(html.Tr([
            html.Td(r.meter_id, className="nowrap"),
            html.Td(pct(r.completeness, lang), className="num warn" if low else "num"),
            html.Td(pct(r.estimated_share, lang), className="num"),
            html.Td(local_time(r.last_seen, tz, lang), className="time"),
            html.Td(t("offline" if r.offline else "online", lang),
                    className="badge offline" if r.offline else "badge online"),
        ]))
    return html.Table([html.Thead(head), html.Tbody(rows)], className="grid", id="quality-table")


def export_sheets(c: Context, inst_id: str, per: period.Period, lang: str) -> list:
    """What the institution page shows, as workbook sheets."""
    inst = c.registry.institution_by_id[inst_id]
    meters = institution_meters(c.registry, inst_id)
    notes = [f"{inst.name} ({inst.id})"]
    today = c.service.today()
    daily = c.service.consumption("day", today - pd.Timedelta(days=DAILY_DAYS), today + pd.Timedelta(days=1),
                                  [m.id for m in meters if m.parent is None])
    daily = daily.assign(date=pd.DatetimeIndex(daily["period_start"]).tz_convert(c.service.tz).strftime("%Y-%m-%d")
                         if len(daily) else [], unit=daily["energy"].map(lambda e: unit(INDEX_UNIT[e], lang))
                         if len(daily) else [], energy=daily["energy"].map(lambda e: t(f"en_{e}", lang))
                         if len(daily) else [])
    last_year, row, levels = last_complete_year(c, inst_id)
    ind = pd.DataFrame({"indicator": [t(f"ind_{i}", lang) for i in INDICATORS],
                        "unit": [unit(INDICATOR_UNITS[i], lang) for i in INDICATORS],
                        "value": [float(row[i]) if row is not None and pd.notna(row[i]) else np.nan
                                  for i in INDICATORS]})
    if levels is not None and len(levels):
        lv = levels.set_index("indicator")["level"]
        ind["level"] = [t(f"lvl_{lv.get(i, 'none')}", lang) for i in INDICATORS]
    quality = c.service.data_quality(inst_id)
    quality = quality.assign(last_seen=[local_time(x, c.service.tz, lang) for x in quality["last_seen"]])
    table, chart = period.frames(c, {inst_id}, per, own=True)
    table = table.assign(unit=[unit(u, lang) for u in table["unit"]])
    return [
        ("daily", daily, [("date", t("date", lang)), ("meter_id", t("meters", lang)), ("energy", "energy"),
                          ("quantity", t("quantity", lang)), ("unit", "unit"),
                          ("estimated_share", t("estimated_share", lang))], notes),
        ("indicators", ind, [("indicator", t("indicator", lang)), ("unit", "unit"), ("value", t("value", lang)),
                             ("level", t("col_level", lang))], [*notes, str(last_year)]),
        ("data_quality", quality, [("meter_id", t("meters", lang)), ("completeness", t("completeness", lang)),
                                   ("estimated_share", t("estimated_share", lang)), ("last_seen", t("last_seen", lang)),
                                   ("offline", t("offline", lang))], notes),
        ("period", table, [("indicator", t("indicator", lang)), ("unit", "unit"),
                           ("this_period", t("this_period", lang)), ("last_year", t("last_year_period", lang)),
                           ("change", t("change", lang))], [*notes, per.label()]),
        ("period_series", chart.assign(period_start=chart["period_start"].dt.strftime("%Y-%m-%d")),
         [("period_start", t("date", lang)), ("tce", f"{t('this_period', lang)} (tce)"),
          ("tce_last_year", f"{t('last_year_period', lang)} (tce)")], notes),
    ]


PAGE = Page("/institution", "nav_institution", render, register, subpaths=True, charts=True)
