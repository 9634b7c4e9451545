"""Page bodies: Dash components built from frames the caller has already scoped.

Nothing here checks access: `dashboard.app` passes only what the signed-in user may
see. Each builder takes the language and returns components; figures are plotly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dash_table, dcc, html
from plotly.subplots import make_subplots

from core.registry import Meter, Registry
from core.vocab import INDEX_UNIT
from dashboard.data import INDICATORS
from dashboard.i18n import t
from dashboard.ranking import DEFAULT_INDICATOR, PAGE_SIZE

# a control keeps the user's choice while the page re-renders (language switch) and
# for the browser session
KEEP = {"persistence": True, "persistence_type": "session"}
LEVEL_COLOURS = {  # quota level (quotas.evaluate) -> colour: green guide .. red above the constraint
    "guide": "#b2f2bb",
    "advanced": "#b2f2bb",
    "baseline": "#fff3bf",
    "general": "#fff3bf",
    "constraint": "#ffd8a8",
    "exceeds": "#ffc9c9",
}


def fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    return f"{float(v):,.{digits}f}"


def _fig_layout(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title=title, margin={"l": 40, "r": 20, "t": 50, "b": 40}, height=340,
                      template="plotly_white", legend={"orientation": "h"})
    return fig


def no_data(lang: str) -> html.Div:
    return html.Div(t("no_data", lang), className="empty")


def forbidden(lang: str) -> html.Div:
    return html.Div(t("forbidden", lang), className="forbidden", id="forbidden")


# -- ranking -----------------------------------------------------------------------------
def ranking_controls(lang: str, regions: list[tuple[str, str]], categories: list[str], years: list[int],
                     year: int) -> html.Div:
    return html.Div(className="controls", children=[
        html.Label([t("region", lang), dcc.Dropdown(id="rank-region", **KEEP, options=[
            {"label": name, "value": rid} for rid, name in regions], value=None, placeholder=t("all", lang))]),
        html.Label([t("category", lang), dcc.Dropdown(id="rank-category", **KEEP, options=[
            {"label": t(f"cat_{c}", lang), "value": c} for c in categories], value=None,
            placeholder=t("all", lang))]),
        html.Label([t("year", lang), dcc.Dropdown(id="rank-year", **KEEP, options=[
            {"label": str(y), "value": y} for y in years], value=year, clearable=False)]),
        html.Label([t("indicator", lang), dcc.Dropdown(id="rank-indicator", **KEEP, options=[
            {"label": t(f"ind_{i}", lang), "value": i} for i in INDICATORS], value=DEFAULT_INDICATOR,
            clearable=False)]),
        html.Label([t("search_name", lang), dcc.Input(id="rank-search", **KEEP, type="search", debounce=True,
                                                      placeholder=t("search_name", lang))]),
        html.A(t("export_csv", lang), id="rank-export", href="/download/ranking.csv", className="button"),
    ])


def ranking_columns(lang: str, indicator: str) -> list[dict]:
    return [
        {"name": t("col_rank", lang), "id": "rank", "type": "numeric"},
        {"name": t("col_peers", lang), "id": "peers", "type": "numeric"},
        {"name": t("col_id", lang), "id": "institution_id"},
        {"name": t("col_name", lang), "id": "name", "presentation": "markdown"},
        {"name": t("region", lang), "id": "region_name"},
        {"name": t("category", lang), "id": "category_name"},
        {"name": t(f"ind_{indicator}", lang), "id": "value", "type": "numeric"},
        {"name": t("col_yoy", lang), "id": "yoy", "type": "numeric"},
        {"name": t("col_level", lang), "id": "level_name"},
        {"name": t("col_estimated", lang), "id": "estimated_share", "type": "numeric"},
    ]


def ranking_table(lang: str) -> dash_table.DataTable:
    return dash_table.DataTable(
        id="rank-table", **KEEP, persisted_props=["sort_by"],
        columns=ranking_columns(lang, DEFAULT_INDICATOR), data=[],
        page_action="custom", page_current=0, page_size=PAGE_SIZE, page_count=1,
        sort_action="custom", sort_mode="single", sort_by=[],
        markdown_options={"link_target": "_self"},
        style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "inherit", "padding": "4px 8px", "textAlign": "left"},
        style_data_conditional=[
            {"if": {"filter_query": f'{{level}} = "{lvl}"'}, "backgroundColor": colour}
            for lvl, colour in LEVEL_COLOURS.items()
        ],
    )


def ranking_rows(page: pd.DataFrame, registry: Registry, lang: str) -> list[dict]:
    """Table rows of one page (names link to the institution page)."""
    region_name = {r.id: r.name for r in registry.regions}
    return [{
        "rank": int(r.rank), "peers": int(r.peers), "institution_id": r.institution_id,
        "name": f"[{r.name}](/institution/{r.institution_id})",
        "region_name": region_name.get(r.region, r.region),
        "category_name": t(f"cat_{r.category}", lang),
        "value": None if np.isnan(r.value) else round(float(r.value), 2),
        "yoy": None if np.isnan(r.yoy) else round(float(r.yoy), 1),
        "level": r.level, "level_name": t(f"lvl_{r.level}", lang),
        "estimated_share": None if np.isnan(r.estimated_share) else round(float(r.estimated_share) * 100, 1),
    } for r in page.itertuples(index=False)]  # one page: at most page_size rows


# -- institution ---------------------------------------------------------------------------
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
        return _fig_layout(go.Figure(), t("daily", lang))
    fig = make_subplots(rows=len(energies), cols=1, shared_xaxes=True,
                        subplot_titles=[f"{t(f'en_{e}', lang)} ({INDEX_UNIT[e]})" for e in energies])
    for n, e in enumerate(energies, start=1):
        d = daily[daily["energy"] == e].groupby("period_start", as_index=False)["quantity"].sum()
        fig.add_trace(go.Bar(x=d["period_start"], y=d["quantity"], name=t(f"en_{e}", lang)), row=n, col=1)
    fig = _fig_layout(fig, t("daily", lang))
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
    fig = _fig_layout(fig, f"{t('hourly', lang)} (kWh)")
    return fig


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
    return _fig_layout(fig, f"{t('subitems', lang)} (kWh)")


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


# -- overview ---------------------------------------------------------------------------------
def gauge(title: str, actual: float, target: float | None, projected: float | None, unit: str, lang: str) -> go.Figure:
    """Year-to-date value on a dial up to the annual target (red mark); the light band
    reaches the year-end projection, which the subtitle states with its share of the
    target."""
    top = max(x for x in (actual, target or 0, projected or 0, 1e-9) if x is not None and not np.isnan(x)) * 1.15
    if projected is not None and target:
        share = projected / target * 100
        sub = f"{t('projection', lang)}: {fmt(projected, 1)} " + (f"（目标的 {share:.0f}%）" if lang == "zh" else
                                                                   f"({share:.0f} % of target)")
    elif projected is not None:
        sub = f"{t('projection', lang)}: {fmt(projected, 1)} · {t('no_target', lang)}"
    else:
        sub = t("no_target", lang) if not target else ""
    over = bool(target and projected and projected > target)
    ind = go.Indicator(
        mode="gauge+number", value=actual,
        number={"suffix": f" {unit}", "valueformat": ",.1f"},
        title={"text": f"{title}<br><span style='font-size:0.7em;color:{'#e03131' if over else '#495057'}'>"
                       f"{sub}</span>"},
        gauge={"axis": {"range": [0, top]},
               "bar": {"color": "#1c7ed6"},
               "steps": ([{"range": [0, projected], "color": "#ffe3e3" if over else "#e7f5ff"}] if projected else []),
               "threshold": {"line": {"color": "#e03131", "width": 4}, "value": target} if target else None},
    )
    fig = go.Figure(ind)
    fig.update_layout(height=280, margin={"l": 30, "r": 30, "t": 80, "b": 10})
    return fig


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
    return _fig_layout(fig, f"{t('ytd', lang)} ({unit})")
