"""Assessment page `/assessment`: scores, grades and their breakdown.

Assessment `/assessment`: the year-end assessment (节能考核) of a complete year: the ranking
of scores of the institutions (or of the regions below the user's scope) with each
criterion's points, a row's breakdown (the figures behind each criterion), the key energy
users, the plan indicators, and the assessment and notice (通报) downloads with the
printable notice. Everything comes from `dashboard.assessments` cut to the user's scope."""

from __future__ import annotations

from typing import Any

import dash
import numpy as np
import pandas as pd
from dash import Input, Output, State, dash_table, dcc, html
from dash.exceptions import PreventUpdate

from core.access import default_region
from core.schemas.quotas import CRITERIA, VETOES
from core.users import User
from core.vocab import CATEGORIES
from dashboard import assessments as served
from dashboard import inputs, plan_panel
from dashboard.context import Context, Page
from dashboard.i18n import norm_lang, t
from dashboard.widgets import KEEP, fmt, no_data, scrolling, year_picker

PAGE_SIZE = 25
GRADE_COLOURS = ("#b2f2bb", "#d0ebff", "#fff3bf", "#ffc9c9")  # best grade .. the lowest (more grades: the last)


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    years = served.complete_years(c)
    if not years:
        return html.Div(t("no_complete_year", lang), className="empty")
    return html.Div(id="assessment", children=[
        html.H2(t("assessment", lang)),
        html.Div(className="controls", children=[
            year_picker("assess-year", years, years[0], lang),
            html.Label([t("assess_view", lang), dcc.Dropdown(
                id="assess-view", **KEEP, value="institutions", clearable=False, searchable=False,
                options=[{"label": t("assess_institutions", lang), "value": "institutions"},
                         {"label": t("assess_regions", lang), "value": "regions"}])]),
            html.A(t("assess_download", lang), id="assess-xlsx", href=f"/download/assessment?year={years[0]}",
                   className="button"),
            html.A(t("notice_download", lang), id="notice-xlsx", href=f"/download/notice?year={years[0]}",
                   className="button"),
            html.A(t("notice_print", lang), id="notice-print", href=f"/assessment/notice?year={years[0]}",
                   target="_blank", className="button"),
        ]),
        dcc.Loading(html.Div(id="assess-body")),
    ])


def register(app: dash.Dash, c: Context) -> None:
    a = served.assessments_of(c)
    served.register(app.server, c, a)

    @app.callback(Output("assess-xlsx", "href"), Output("notice-xlsx", "href"), Output("notice-print", "href"),
                  Input("assess-year", "value"))
    def links(year: int | None) -> tuple[str, str, str]:
        return (f"/download/assessment?year={year}", f"/download/notice?year={year}",
                f"/assessment/notice?year={year}")

    @app.callback(Output("assess-body", "children"), Input("assess-year", "value"), Input("assess-view", "value"),
                  State("lang", "data"))
    def body(year: int | None, view: str | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        user = c.current_user()
        year_i = served.complete_year(c, year)
        if user is None or year_i is None:
            raise PreventUpdate
        report = a.for_user(user, year_i)
        regions = view == "regions"
        return content(c, user, report, regions, lang)

    @app.callback(Output("assess-detail", "children"), Input("assess-table", "active_cell"),
                  State("assess-year", "value"), State("assess-view", "value"), State("lang", "data"),
                  prevent_initial_call=True)
    def detail(cell: dict | None, year: int | None, view: str | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        cell, view = inputs.cell(cell), inputs.text(view)
        user = c.current_user()
        year_i = served.complete_year(c, year)
        if user is None or year_i is None or not isinstance(cell, dict) or cell.get("row_id") is None:
            raise PreventUpdate
        report = a.for_user(user, year_i)  # the row is looked up in the user's own scope
        frame = report.assessment.regions if view == "regions" else report.assessment.institutions
        key = "region" if view == "regions" else "institution_id"
        rows = frame[frame[key] == str(cell["row_id"])]
        if rows.empty:
            raise PreventUpdate
        return breakdown(rows.iloc[0], report, view == "regions", lang)


def content(c: Context, user: User, report: Any, regions: bool, lang: str) -> Any:
    a = report.assessment
    frame = a.regions if regions else a.institutions
    if frame.empty:
        return no_data(lang)
    grades = [g.name for g in report.config.assessment.grades]
    counts = frame["grade"].value_counts()
    summary = " · ".join(f"{g} {int(counts.get(g, 0))}" for g in grades)
    region = default_region(user, c.registry)
    return html.Div([
        html.Div(f"{len(frame)} · {summary}", id="assess-count", className="count"),
        score_table(frame, report, regions, lang),
        html.Div(id="assess-detail", className="breakdown", children=html.Div(t("breakdown_hint", lang),
                                                                              className="empty")),
        *([] if regions else key_user_section(a.key_users, report, lang)),
        html.H3(t("plan_indicators", lang)),
        plan_panel.plan_table(a.plan[a.plan["scope"] == region] if region else a.plan.iloc[:0], report.config,
                              lang, "assess-plan"),
    ])


def _points(pts: pd.Series, weight: float) -> np.ndarray:
    """'points / weight' of a criterion, '—' where it does not apply."""
    text = pts.round(1).astype(str) + f" / {weight:g}"
    return np.where(pts.isna(), "—", text).astype(object)


def _vetoes(veto: pd.Series, lang: str) -> pd.Series:
    """The veto names ('target_total, constraint') in words."""
    out = veto.astype(str)
    for v in VETOES:
        out = out.str.replace(v, t(f"veto_{v}", lang), regex=False)
    return out


def grade_colours(names: list[str]) -> dict[str, str]:
    """Green for the best grade ... red for the lowest."""
    best = GRADE_COLOURS[:-1]
    return {g: GRADE_COLOURS[-1] if n == len(names) - 1 else best[min(n, len(best) - 1)] for n, g in enumerate(names)}


def score_table(frame: pd.DataFrame, report: Any, regions: bool, lang: str) -> dash_table.DataTable:
    """The ranking of scores with each criterion's points (out of its weight)."""
    names = report.region_names
    weights = report.config.assessment.weights
    key = "region" if regions else "institution_id"
    data = pd.DataFrame({
        "id": frame[key].to_numpy(object), "rank": frame["rank"].astype("Int64").astype(object).where(
            frame["rank"].notna(), None).to_numpy(object),
        "name": (frame["name"] if regions else
                 "[" + frame["name"].astype(str) + "](/institution/" + frame["institution_id"].astype(str) + ")"
                 ).to_numpy(object),
        "region": (frame["parent"].map(names).fillna("") if regions
                   else frame["region"].map(names).fillna(frame["region"])).to_numpy(object),
        "category": "" if regions else frame["category"].map({c: t(f"cat_{c}", lang) for c in CATEGORIES}),
        "key_user": "" if regions else np.where(frame["key_user"], t("yes", lang), ""),
        "score": frame["score"].round(1).astype(object).where(frame["score"].notna(), None).to_numpy(object),
        "grade": frame["grade"].to_numpy(object),
        "veto": _vetoes(frame["veto"], lang),
        **{f"pts_{c}": _points(frame[f"pts_{c}"], getattr(weights, c)) for c in CRITERIA},
    })
    columns = [{"name": t("assess_rank", lang), "id": "rank", "type": "numeric"},
               {"name": t("region" if regions else "col_name", lang), "id": "name", "presentation": "markdown"},
               {"name": t("parent_region" if regions else "region", lang), "id": "region"},
               *([] if regions else [{"name": t("category", lang), "id": "category"},
                                     {"name": t("key_user", lang), "id": "key_user"}]),
               {"name": t("score", lang), "id": "score", "type": "numeric"},
               {"name": t("grade", lang), "id": "grade"},
               *[{"name": t(f"crit_{c}", lang), "id": f"pts_{c}"} for c in CRITERIA],
               {"name": t("veto", lang), "id": "veto"}]
    colour = grade_colours([g.name for g in report.config.assessment.grades])
    return dash_table.DataTable(
        id="assess-table", columns=columns, data=data.to_dict("records"), page_action="native",
        page_size=PAGE_SIZE, sort_action="native", markdown_options={"link_target": "_self"},
        css=[{"selector": ".cell-markdown p", "rule": "margin: 0"}],
        style_table={"overflowX": "auto"}, cell_selectable=True,
        style_cell={"fontFamily": "inherit", "padding": "4px 8px", "textAlign": "left"},
        style_data_conditional=[{"if": {"filter_query": f'{{grade}} = "{g}"', "column_id": "grade"},
                                 "backgroundColor": col} for g, col in colour.items()])


def breakdown(row: pd.Series, report: Any, region: bool, lang: str) -> html.Div:
    """The figures behind each criterion of one institution's (or region's) score."""
    s = report.config.assessment
    pct = lambda v: "—" if pd.isna(v) else f"{v:.1%}"  # noqa: E731
    items = []
    n = int(row["targets_n"])
    items.append((t("crit_targets", lang), "targets",
                  t("targets_met", lang).format(met=int(row["targets_met"]), n=n) if n else t("not_applicable", lang)))
    if region:
        quota = t("quota_members", lang).format(v=pct(row["f_quota"]), n=int(row["institutions_constraint_exceeded"]))
        periods = t("periods_members", lang).format(ok=int(row["periods_on_time"]), n=int(row["periods"]))
        quality = t("quality_members", lang).format(v=pct(row["f_data_quality"]))
    else:
        lv = report.inputs.levels
        lv = lv[(lv["institution_id"] == row["institution_id"]) & (lv["level"] != "no_data")] if len(lv) else lv
        quota = "; ".join(f"{t(f'ind_{i}', lang)}: {t(f'lvl_{level}', lang)}"
                          for i, level in zip(lv.get("indicator", []), lv.get("level", []), strict=True)
                          ) or t("not_applicable", lang)
        periods = t("periods_on_time", lang).format(
            ok=int(row["periods_on_time"]), n=int(row["periods"]), review=t(f"review_{row['review']}", lang),
            pct=pct(row["metering_completeness"]))
        if row["late_detail"]:
            periods += f" — {t('late_periods', lang)}: {row['late_detail']}"
        quality = (t("estimated_vs", lang).format(v=pct(row["estimated_share"]), max=pct(row["max_estimated_share"]))
                   + "; " + t("alerts_vs", lang).format(n=int(row["open_quality_alerts"]),
                                                          max=int(row["max_open_quality_alerts"])))
    items.append((t("crit_quota", lang), "quota", quota))
    items.append((t("crit_submissions", lang), "submissions", periods))
    items.append((t("crit_data_quality", lang), "data_quality", quality))
    yoy = (t("yoy_value", lang).format(ind=t(f"ind_{row['yoy_indicator']}", lang), v=f"{row['yoy_change']:+.1%}")
           if not row["yoy_reason"] else t(f"yoy_{row['yoy_reason']}", lang))
    items.append((t("crit_yoy", lang), "yoy", yoy))
    head = html.Tr([html.Th(x) for x in (t("indicator", lang), t("value", lang), t("points", lang))])
    weights = report.config.assessment.weights
    rows = [html.Tr([html.Td(label), html.Td(text),
                     html.Td(_points(pd.Series([row[f"pts_{c}"]], dtype=float), getattr(weights, c))[0],
                             className="num")]) for label, c, text in items]
    title = f"{row['name']} — {t('score', lang)} {fmt(row['score'], 1)} · {row['grade']}"
    veto = [html.Div(f"{t('veto', lang)}: " + _vetoes(pd.Series([row["veto"]]), lang).iloc[0], className="warn")
            ] if row["veto"] else []
    return html.Div(id="assess-breakdown", children=[
        html.H3(title), *veto,
        scrolling(html.Table([html.Thead(head), html.Tbody(rows)], className="grid")),
        html.Div(f"{t('grade', lang)}: " + "; ".join(f"{g.name} ≥ {g.min_score:g}" for g in s.grades),
                 className="count"),
    ])


def key_user_section(key_users: pd.DataFrame, report: Any, lang: str) -> list:
    rule = t("key_users_rule", lang).format(tce=f"{report.config.key_users.threshold_tce:,.0f}")
    if key_users.empty:
        return [html.H3(t("key_users", lang)), html.Div(rule, className="count"), no_data(lang)]
    head = html.Tr([html.Th(x) for x in (t("col_name", lang), t("region", lang), "tce", t("score", lang),
                                         t("grade", lang))])
    rows = [html.Tr([html.Td(r.name), html.Td(report.region_names.get(r.region, r.region)),
                     html.Td(fmt(r.tce, 1), className="num"), html.Td(fmt(r.score, 1), className="num"),
                     html.Td(r.grade)]) for r in key_users.itertuples(index=False)]  # the key users (few)
    return [html.H3(t("key_users", lang)), html.Div(rule, className="count"),
            scrolling(html.Table([html.Thead(head), html.Tbody(rows)], className="grid", id="assess-key-users"))]


PAGE = Page("/assessment", "nav_assessment", render, register)
