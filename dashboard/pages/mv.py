"""Savings verification page `/mv`: EMC and water-saving projects and their verdicts.

Savings verification `/mv`: each project the user may see (energy-performance contracts
in kWh, water-saving contracts, 合同节水管理, in m3 and worded as such: 节水量, 用水量)
with a plain-language verdict (verified or not, and why), its baseline and reporting
periods, the model in words, fit statistics and savings as percentages with units, the
payment in 元, what to note (the verification's findings), the monthly chart and the
report workbook.

Everything is read from `verification`'s `MVResult` (summary, findings, model spec,
periods); nothing is recomputed here."""

from __future__ import annotations

from typing import Any

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from core.users import User
from core.yamlfile import ConfigError
from dashboard import inputs
from dashboard.context import Context, Page
from dashboard.i18n import MISSING, TEXT, norm_lang, num, pct, quantity, t, typeset
from dashboard.widgets import KEEP, chart_title, date_axis, fig_layout, forbidden, graph, scrolling, value_axis

# summary rows: key, kind (energy: in the project's unit; pct; count; ratio; cny; flag)
FIT_ROWS = (("n", "count"), ("r2", "ratio"), ("cvrmse", "pct"), ("nmbe", "pct"), ("meets_ashrae14", "flag"))
SAVINGS_ROWS = (("adjusted_baseline", "energy"), ("reporting_actual", "energy"), ("avoided", "energy"),
                ("avoided_fraction", "pct"), ("avoided_low90", "energy"), ("avoided_high90", "energy"),
                ("normalized_savings", "energy"), ("payment_cny", "cny"))


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    projects = c.mv.visible(user)
    if not projects:
        return html.Div(t("no_mv_projects", lang), className="empty", id="mv")
    return html.Div(id="mv", children=[
        html.H2(t("nav_mv", lang)),
        html.Div(className="controls", children=[
            html.Label(className="wide", children=[t("project", lang), dcc.Dropdown(
                id="mv-project", **KEEP, options=[{"label": f"{p['name']} ({p['id']})", "value": p["id"]}
                                          for p in projects], value=projects[0]["id"], clearable=False)]),
            html.A(t("download", lang) + " (xlsx)", id="mv-download", href="#", className="button"),
        ]),
        dcc.Loading(html.Div(id="mv-body")),
    ])


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output("mv-body", "children"), Output("mv-download", "href"), Input("mv-project", "value"),
                  State("lang", "data"))
    def mv_body(project_id: str | None, lang: str | None) -> tuple:
        lang = norm_lang(lang)
        project_id = inputs.text(project_id)
        user = c.current_user()
        match = [p for p in c.mv.visible(user) if p["id"] == project_id] if user is not None else []
        if not match:
            return forbidden(lang), "#"
        p = match[0]
        if p["error"]:
            return html.Pre(p["error"], className="error"), "#"
        try:
            result = c.mv.result(p["file"])
        except (ConfigError, ValueError) as exc:  # data do not allow a verification: show every problem
            return html.Pre(str(exc), className="error", id="mv-error"), "#"
        return content(result, lang), f"/download/mv/{p['id']}.xlsx"


def label(key: str, lang: str, result: Any, **values: object) -> str:
    """The label `key`, in the wording of a water-saving contract (节水量, 用水量: the
    `KEY_water` label) when the project verifies water."""
    water = getattr(result.project, "energy", None) == "water" and f"{key}_water" in TEXT
    return t(f"{key}_water" if water else key, lang, **values)


def content(result: Any, lang: str) -> html.Div:
    """The verdict, the periods, the model, the summary tables, the findings and the chart."""
    s = result.summary
    u = str(s.get("unit") or getattr(result.project, "unit", "") or "")
    return html.Div([
        verdict(result, u, lang),
        html.Div(className="row", children=[
            html.Div(className="half", children=[
                html.H3(t("mv_periods", lang)), scrolling(periods_table(result, lang)),
                html.H3(t("mv_fit", lang)), scrolling(summary_table(result, FIT_ROWS, u, lang, "mv-fit",
                                                                    model_name(result, lang)))]),
            html.Div(className="half", children=[
                html.H3(label("mv_savings", lang, result)),
                scrolling(summary_table(result, SAVINGS_ROWS, u, lang, "mv-summary"))]),
        ]),
        findings(result, lang),
        graph("mv-chart", chart(result, u, lang)),
    ])


def verdict(result: Any, u: str, lang: str) -> html.Div:
    """Verified or not, and why, in one or two sentences (from the summary's savings
    interval and ASHRAE Guideline 14 check, and the findings' values)."""
    s = result.summary
    low, high = s.get("avoided_low90"), s.get("avoided_high90")
    meets = bool(s.get("meets_ashrae14"))
    significant = bool(s.get("savings_significant"))
    fill = {"avoided": quantity(s.get("avoided"), u, lang, 0), "fraction": pct(s.get("avoided_fraction"), lang),
            "low": quantity(low, u, lang, 0), "high": quantity(high, u, lang, 0)}
    reasons = []
    if significant and meets:
        reasons.append(label("mv_why_verified", lang, result, **fill))
    elif not significant:
        below = low is not None and high is not None and high < 0
        reasons.append(label("mv_why_increase" if below else "mv_why_interval_zero", lang, result, **fill))
    if not meets:
        limits = next((f.values for f in result.findings if f.code == "ashrae14_not_met"), {})
        reasons.append(t("mv_why_ashrae", lang, cvrmse=pct(limits.get("cvrmse", s.get("cvrmse")), lang),
                         cvrmse_max=pct(limits.get("cvrmse_max", s.get("cvrmse_max")), lang, 0),
                         nmbe=pct(limits.get("nmbe", s.get("nmbe")), lang, 2),
                         nmbe_max=pct(limits.get("nmbe_max", s.get("nmbe_max")), lang, 0)))
    ok = significant and meets
    return html.Div(className=f"verdict {'ok' if ok else 'fail'}", id="mv-verdict", children=[
        html.H3(label("mv_verified" if ok else "mv_not_verified", lang, result)),
        *[html.P(r) for r in reasons],
    ])


def model_name(result: Any, lang: str) -> str:
    """The baseline model in words of the language, from its spec (kind, day type,
    occupancy, balance points); the verification's own name when the spec is unknown."""
    spec = getattr(getattr(result, "model", None), "spec", None)
    kind = getattr(spec, "kind", None)
    if spec is None or f"model_{kind}" not in TEXT:
        return str(result.summary.get("model", MISSING))
    parts = [t(f"model_{kind}", lang)]
    if getattr(spec, "day_type", False):
        parts.append(t("model_day_type", lang))
    if getattr(spec, "occupancy", False):
        parts.append(t("model_occupancy", lang))
    points = [t(key, lang, t=f"{v:g} °C") for key, v in (("model_heating_base", getattr(spec, "heating_base_c", None)),
                                                          ("model_cooling_base", getattr(spec, "cooling_base_c", None)))
              if v is not None]
    zh = norm_lang(lang) == "zh"
    sep = "，" if zh else ", "
    text = sep.join(parts)
    if points:
        text += f"（{sep.join(points)}）" if zh else f" ({sep.join(points)})"
    return text


def periods_table(result: Any, lang: str) -> html.Table:
    """Baseline and reporting periods with their lengths."""
    p = result.project
    rows = []
    for key, start, end in (("mv_baseline_period", p.baseline_start, p.baseline_end),
                            ("mv_reporting_period", p.reporting_start, p.reporting_end)):
        days = (pd.Timestamp(end) - pd.Timestamp(start)).days + 1
        rows.append(html.Tr([html.Td(t(key, lang)), html.Td(f"{start} ~ {end}", className="nowrap"),
                             html.Td(t("mv_days", lang, n=days), className="num")]))
    rows.append(html.Tr([html.Td(t("mv_option", lang)), html.Td(str(result.summary.get("option", MISSING))),
                         html.Td("")]))
    return html.Table([html.Tbody(rows)], className="grid", id="mv-periods")


def summary_table(result: Any, keys: tuple, u: str, lang: str, table_id: str, model: str | None = None) -> html.Table:
    s = result.summary
    rows = [html.Tr([html.Td(t("mv_model", lang)), html.Td(model, id="mv-model-name")], id={"type": "mv-row",
                                                                                            "key": "model"})] \
        if model is not None else []
    rows += [html.Tr([html.Td(label(f"mv_{k}", lang, result)), html.Td(summary_value(s.get(k), kind, u, lang), className="num")],
                     id={"type": "mv-row", "key": k}) for k, kind in keys if k in s]
    return html.Table([html.Tbody(rows)], className="grid", id=table_id)


def summary_value(v: Any, kind: str, u: str, lang: str) -> str:
    """A summary value as people read it: 10.96 %, 1,450 kWh, 761.1 元, 是 / yes."""
    if v is None or (isinstance(v, float) and v != v):
        return MISSING
    if kind == "flag":
        return t("yes" if v else "no", lang)
    if kind == "pct":
        return pct(v, lang, 2)
    if kind == "energy":
        return quantity(v, u, lang, 0)
    if kind == "cny":
        return quantity(v, "CNY", lang, 2)
    if kind == "count":
        return num(v, 0)
    return num(v, 3)


def findings(result: Any, lang: str) -> html.Div | None:
    """What a reader must know: each finding by its code's label, with the
    verification's own sentence."""
    if not result.findings:
        return None
    items = [html.Li([html.B(t(f"finding_{f.code}", lang) if f"finding_{f.code}" in TEXT else f.code),
                      " — ", typeset(f.message, lang)]) for f in result.findings]
    return html.Div([html.H3(t("mv_findings", lang)), html.Ul(items, className="warnings")], id="mv-findings")


def partial_months(result: Any) -> set[pd.Timestamp]:
    """Months (their first day) that a period covers only in part: a baseline or
    reporting period starting after the 1st or ending before the month's last day
    (the running month of a reporting period that lasts to yesterday)."""
    p = result.project
    out = set()
    for start, end in ((p.baseline_start, p.baseline_end), (p.reporting_start, p.reporting_end)):
        s, e = pd.Timestamp(start), pd.Timestamp(end)
        if s.day != 1:
            out.add(s.to_period("M").to_timestamp())
        if not e.is_month_end:
            out.add(e.to_period("M").to_timestamp())
    return out


def chart(result: Any, u: str, lang: str) -> go.Figure:
    """Monthly actual, baseline model and adjusted baseline (in the project's unit); a
    month the periods cover only in part is drawn with a dashed segment and a hollow
    marker, so it is not read as a drop."""
    from verification.report import chart_frame

    frame = chart_frame(result)
    partial = frame["month"].isin(partial_months(result)).to_numpy()
    fig = go.Figure()
    values: list[float] = []
    for n, (col, name) in enumerate((("actual", t("actual", lang)), ("baseline_model", t("baseline_model", lang)),
                                     ("adjusted_baseline", t("adjusted_baseline", lang)))):
        colour = ("#4c6ef5", "#e8590c", "#12b886")[n]
        y = frame[col].where(~partial)
        fig.add_trace(go.Scatter(x=frame["month"], y=y, mode="lines+markers", name=name, line={"color": colour},
                                 connectgaps=False))
        if partial.any():  # each partial month joined to its neighbour by a dashed segment
            for i in [k for k in range(len(frame)) if partial[k]]:
                near = [j for j in (i - 1, i + 1) if 0 <= j < len(frame) and not partial[j]
                        and frame["phase"].iloc[j] == frame["phase"].iloc[i]]
                idx = sorted([i, *near[:1]])
                fig.add_trace(go.Scatter(x=frame["month"].iloc[idx], y=frame[col].iloc[idx], mode="lines+markers",
                                         line={"dash": "dot", "color": colour},
                                         marker={"symbol": ["circle-open" if partial[j] else "circle" for j in idx]},
                                         showlegend=False, name=name))
        values += list(frame[col])
    if partial.any():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines+markers", name=t("partial_period", lang),
                                 line={"dash": "dot", "color": "#868e96"}, marker={"symbol": "circle-open"}))
    fig = fig_layout(fig, chart_title(t("nav_mv", lang), u, lang), lang, height=360)
    date_axis(fig, lang, "month")
    return value_axis(fig, values, lang)


PAGE = Page("/mv", "nav_mv", render, register, charts=True)
