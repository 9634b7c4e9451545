"""The overview's plan panel: the five-year plan's indicators of the overview's scope.

Renewable share of electricity, the share of institutions at or below their baseline
quota value, each intensity against the plan's base year and the progress to the plan's
targets (`quotas.assessment.plan_for`), for the overview's year when it is complete,
else the last complete year, by the same function and from the same inputs as the
assessment page's (`dashboard.assessments.Assessments.plan_inputs`). It is rendered with
the overview (its institutions are the overview's, already cut to the user's scope)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from dash import html

from dashboard.context import Context
from dashboard.i18n import t
from dashboard.widgets import no_data, scrolling

SHARES = ("renewable_share", "baseline_share")


def plan_panel(c: Context, insts: set[str], scope: str | None, year: int, lang: str) -> html.Div:
    """The plan indicators of the overview's institutions `insts` (`scope`: region:R keeps
    the region's published base values) for `year`, or the last complete year."""
    from dashboard.assessments import assessments_of
    from quotas.assessment import plan_for
    from quotas.config import QuotaConfig

    year = min(year, c.service.current_year() - 1)  # the plan compares complete years
    config = c.quotas.config() or QuotaConfig()
    region = scope.removeprefix("region:") if scope and scope.startswith("region:") else None
    members = pd.DataFrame({"scope": region or "view", "institution_id": sorted(insts)})
    rows = plan_for(assessments_of(c).plan_inputs(year), config, members)
    return html.Div(id="ov-plan", children=[
        html.H3(t("plan_of_year", lang).format(plan=config.plan.name, year=year)),
        plan_table(rows, config, lang, "ov-plan-table")])


def _value(v: Any, indicator: str) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return f"{v:.1%}" if indicator in SHARES else f"{v:,.2f}"


def _pct(v: Any) -> str:
    return "—" if v is None or v is pd.NA or not np.isfinite(float(v)) else f"{float(v):+.1%}"


def plan_table(rows: pd.DataFrame, config: Any, lang: str, table_id: str) -> Any:
    """The plan rows of one scope as a table: value, base, change, target, due by now, progress, on track."""
    if rows.empty:
        return no_data(lang)
    head = html.Tr([html.Th(x) for x in (t("indicator", lang), t("value", lang),
                                         t("plan_base", lang).format(year=config.plan.base_year),
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
    return scrolling(html.Table([html.Thead(head), html.Tbody(body)], className="grid", id=table_id))
