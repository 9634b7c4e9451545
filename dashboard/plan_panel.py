"""The overview's plan panel: the five-year plan's indicators of the overview's scope.

Renewable share of electricity, the share of institutions at or below their baseline
quota value, each intensity against the plan's base year and the progress to the plan's
targets (`quotas.assessment.plan_indicators`), for the overview's year when it is
complete, else the last complete year, from the same assessment as the assessment page
(`dashboard.assessments`). The panel is filled by its own callback (an assessment takes
a moment the first time), registered by the assessment page's `register`, which owns the
assessments it reads; the callback re-derives the scope from the signed-in user
(`dashboard.access.overview_scope`), never from the browser."""

from __future__ import annotations

from typing import Any

import dash
import numpy as np
import pandas as pd
from dash import Input, Output, State, dcc, html

from dashboard.access import Forbidden, overview_scope
from dashboard.context import Context
from dashboard.i18n import norm_lang, t
from dashboard.widgets import forbidden, no_data

SHARES = ("renewable_share", "baseline_share")


def plan_panel(scope: str | None, year: int) -> html.Div:
    """The panel's place in the overview of `scope` (region:R, institution:I or None) and `year`."""
    return html.Div(id="ov-plan", children=[dcc.Store(id="ov-plan-args", data={"scope": scope, "year": year}),
                                            dcc.Loading(html.Div(id="ov-plan-body"))])


def _value(v: Any, indicator: str) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return f"{v:.1%}" if indicator in SHARES else f"{v:,.2f}"


def _pct(v: Any) -> str:
    return "—" if v is None or v is pd.NA or not np.isfinite(float(v)) else f"{float(v):+.1%}"


def plan_table(rows: pd.DataFrame, report: Any, lang: str, table_id: str) -> Any:
    """The plan rows of one scope as a table: value, base, change, target, due by now, progress, on track."""
    if rows.empty:
        return no_data(lang)
    head = html.Tr([html.Th(x) for x in (t("indicator", lang), t("value", lang),
                                         t("plan_base", lang).format(year=report.config.plan.base_year),
                                         t("plan_change", lang), t("plan_target", lang), t("plan_expected", lang),
                                         t("plan_progress", lang), t("plan_on_track", lang), "")])
    body = []
    for r in rows.itertuples(index=False):  # one row per plan indicator (six)
        share = r.indicator in SHARES
        label = t(f"plan_{r.indicator}", lang) if share else t(f"ind_{r.indicator}", lang)
        on_track = "" if r.on_track is None or r.on_track is pd.NA else t("yes" if bool(r.on_track) else "no", lang)
        body.append(html.Tr([
            html.Td(label), html.Td(_value(r.value, r.indicator), className="num"),
            html.Td("" if share else _value(r.base_value, r.indicator), className="num"),
            html.Td("" if share else _pct(r.change), className="num"),
            html.Td(_value(r.target, "renewable_share") if share else _pct(r.target), className="num"),
            html.Td("" if share else _pct(r.due), className="num"),
            html.Td(_value(r.progress, "renewable_share"), className="num"), html.Td(on_track),
            html.Td(t(f"plan_{r.reason}", lang) if r.reason else "")]))
    return html.Table([html.Thead(head), html.Tbody(body)], className="grid", id=table_id)


def register(app: dash.Dash, c: Context, assessments: Any) -> None:
    from quotas.assessment import plan_for

    @app.callback(Output("ov-plan-body", "children"), Input("ov-plan-args", "data"), State("lang", "data"))
    def fill(args: dict | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        args = args or {}
        scope = str(args.get("scope") or "")
        region = scope.removeprefix("region:") if scope.startswith("region:") else None
        try:
            insts, _scope = overview_scope(c.current_user(), c.registry, region)
        except Forbidden:
            return forbidden(lang)
        try:
            year = int(args.get("year"))
        except (TypeError, ValueError):
            year = c.service.current_year() - 1
        year = min(year, c.service.current_year() - 1)  # the plan compares complete years
        report = assessments.report(year)
        if region:
            rows = report.assessment.plan[report.assessment.plan["scope"] == region]
        else:
            members = pd.DataFrame({"scope": "view", "institution_id": sorted(insts)})
            rows = plan_for(report.inputs, report.config, members)
        title = t("plan_of_year", lang).format(plan=report.config.plan.name, year=year)
        return [html.H3(title), plan_table(rows, report, lang, "ov-plan-table")]
