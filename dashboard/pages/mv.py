"""Savings verification `/mv`: each EMC project the user may see with its model, fit
statistics, avoided energy, payment, the monthly chart and the report workbook."""

from __future__ import annotations

from typing import Any

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from core.users import User
from core.yamlfile import ConfigError
from dashboard import inputs
from dashboard.context import Context, Page
from dashboard.i18n import norm_lang, t
from dashboard.widgets import KEEP, fmt, forbidden

SUMMARY_KEYS = ("model", "n", "r2", "cvrmse", "nmbe", "meets_ashrae14", "adjusted_baseline", "reporting_actual",
                "avoided", "avoided_fraction", "avoided_low90", "avoided_high90", "normalized_savings", "payment_cny")


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    projects = c.mv.visible(user)
    if not projects:
        return html.Div(t("no_mv_projects", lang), className="empty", id="mv")
    return html.Div(id="mv", children=[
        html.H2(t("nav_mv", lang)),
        html.Div(className="controls", children=[
            html.Label([t("project", lang), dcc.Dropdown(
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


def content(result: Any, lang: str) -> html.Div:
    """The summary table, the monthly chart and the warnings of one verification."""
    from verification.report import chart_frame

    s = result.summary
    rows = [html.Tr([html.Td(t(f"mv_{k}", lang)), html.Td(summary_value(s.get(k)), className="num")],
                    id={"type": "mv-row", "key": k}) for k in SUMMARY_KEYS if k in s]
    chart = chart_frame(result)
    fig = go.Figure()
    for col, name in (("actual", t("actual", lang)), ("baseline_model", t("baseline_model", lang)),
                      ("adjusted_baseline", t("adjusted_baseline", lang))):
        fig.add_trace(go.Scatter(x=chart["month"], y=chart[col], mode="lines+markers", name=name))
    fig.update_layout(title=f"{t('nav_mv', lang)} ({result.project.unit or ''})", template="plotly_white",
                      height=360, margin={"l": 40, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h"})
    return html.Div([
        html.Table([html.Tbody(rows)], className="grid", id="mv-summary"),
        dcc.Graph(id="mv-chart", figure=fig),
        html.Ul([html.Li(w_) for w_ in result.warnings], className="warnings") if result.warnings else None,
    ])


def summary_value(v: Any) -> str:
    if isinstance(v, float):
        return fmt(v, 4) if abs(v) < 10 else fmt(v, 1)
    return str(v)


PAGE = Page("/mv", "nav_mv", render, register)
