"""Submission progress `/progress` (填报进度): per region and category who has not submitted or was returned.

For region managers (their region and below) and the administrator: a month's counts per
region and category by status, the days left to the deadline (`registry.submissions.
deadline_day`, default the 15th), and every institution not yet approved with approve and
return (with a comment) actions. The actions go through `quotas.filing` (scope and role
checked there, `core.access`); an institution user gets the "no access" message, also for
a crafted callback.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from core.access import Forbidden
from core.users import User
from dashboard import inputs
from dashboard.context import Context, Page
from dashboard.i18n import norm_lang, t
from dashboard.pages.filing import months
from dashboard.widgets import KEEP, forbidden
from models.submission import REVIEWER_ROLES, STATUSES, days_left, deadline, parse_month
from quotas.filing import approve, return_month, status_table

TODO = ("missing", "returned", "submitted")  # the statuses listed for follow-up, in this order


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    if c.filing() is None:
        return html.Div(t("not_available", lang), className="empty")
    if user.role not in REVIEWER_ROLES:
        raise Forbidden(user.name)
    ms = months(c)
    return html.Div(id="progress", children=[
        html.H2(t("progress_title", lang)),
        html.Div(className="controls", children=[
            html.Label([t("month", lang), dcc.Dropdown(id="progress-month", **KEEP, options=ms, value=ms[0],
                                                       clearable=False)])]),
        html.Div(id="progress-body", children=progress_body(c, user, ms[0], lang)),
    ])


def progress_body(c: Context, user: User, month: str, lang: str, note: Any = None) -> list:
    filing = c.filing()
    table = status_table(user, month, filing)
    left = days_left(month, filing.local_today(), filing.deadline_day)
    due = deadline(month, filing.deadline_day).isoformat()
    line = t("progress_deadline" if left >= 0 else "progress_overdue", lang).format(date=due, days=abs(left))
    counts = (table.assign(n=1).pivot_table(index=["region", "category"], columns="status", values="n",
                                            aggfunc="sum", fill_value=0)
              .reindex(columns=list(STATUSES), fill_value=0).reset_index())
    summary = html.Table(className="grid", id="progress-summary", children=[
        html.Thead(html.Tr([html.Th(t("region", lang)), html.Th(t("category", lang)),
                            html.Th(t("progress_expected", lang))]
                           + [html.Th(t(f"status_{s}", lang)) for s in STATUSES])),
        html.Tbody([html.Tr([html.Td(c.region_name.get(r["region"], r["region"])), html.Td(t(f"cat_{r['category']}", lang)),
                             html.Td(int(sum(r[s] for s in STATUSES)))] + [html.Td(int(r[s])) for s in STATUSES])
                    for r in counts.to_dict("records")])])
    todo = table[table["status"].isin(TODO)].copy()
    todo["_o"] = todo["status"].map({s: i for i, s in enumerate(TODO)})
    todo = todo.sort_values(["_o", "region", "institution_id"], kind="stable")
    rows = []
    for r in todo.to_dict("records"):
        iid = r["institution_id"]
        actions = []
        if r["status"] == "submitted":
            actions = [dcc.Input(id={"type": "pcomment", "iid": iid}, type="text", placeholder=t("comment", lang)),
                       html.Button(t("approve", lang), id={"type": "papprove", "iid": iid}, className="approve"),
                       html.Button(t("return", lang), id={"type": "preturn", "iid": iid}, className="return")]
        rows.append(html.Tr([html.Td(r["name"]), html.Td(c.region_name.get(r["region"], r["region"])),
                             html.Td(t(f"cat_{r['category']}", lang)),
                             html.Td(t(f"status_{r['status']}", lang), className=f"status-{r['status']}"),
                             html.Td(r["updated_at"] or ""), html.Td(r["comment"] or ""), html.Td(actions)],
                            id=f"progress-row-{iid}", className="progress-row"))
    return [html.Div(line, id="progress-deadline"), summary, *([note] if note is not None else []),
            html.H3(t("progress_todo", lang)),
            html.Table(className="grid", id="progress-todo", children=[
                html.Thead(html.Tr([html.Th(t(k, lang)) for k in ("nav_institution", "region", "category", "status",
                                                                  "audit_at", "reviewer_comment", "")])),
                html.Tbody(rows)])]


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output("progress-body", "children"), Input("progress-month", "value"),
                  Input({"type": "papprove", "iid": ALL}, "n_clicks"), Input({"type": "preturn", "iid": ALL}, "n_clicks"),
                  State({"type": "pcomment", "iid": ALL}, "value"), State({"type": "pcomment", "iid": ALL}, "id"),
                  State("lang", "data"), prevent_initial_call=True)
    def act(month: Any, approves: Any, returns: Any, comments: Any, comment_ids: Any, lang: str | None) -> Any:
        lang = norm_lang(lang)
        user = c.current_user()
        month = inputs.text(month)
        if user is None or c.filing() is None or not month:
            raise PreventUpdate
        if user.role not in REVIEWER_ROLES:
            return forbidden(lang)
        try:
            parse_month(month)
        except ValueError:
            raise PreventUpdate from None
        trig = ctx.triggered_id
        note = None
        try:
            if isinstance(trig, dict) and trig.get("type") in ("papprove", "preturn"):
                inputs.clicks(approves), inputs.clicks(returns)
                if not inputs.integer(ctx.triggered[0].get("value") if ctx.triggered else None, lo=0):
                    raise PreventUpdate  # a button appearing (n_clicks None), not a click
                iid = inputs.text(str(trig.get("iid")))
                comment = ""
                if isinstance(comment_ids, list) and isinstance(comments, list):
                    comment = next((inputs.text(v) or "" for i, v in zip(comment_ids, comments, strict=False)
                                    if isinstance(i, dict) and i.get("iid") == iid), "")
                op = approve if trig["type"] == "papprove" else return_month
                res = op(user, iid, month, {"comment": comment}, c.filing(), source="form")
                if not res.ok:
                    note = html.Div([p["message"] for p in res.body["problems"]], className="problems",
                                    id="progress-problems")
            return progress_body(c, user, month, lang, note)
        except Forbidden:
            return [forbidden(lang), *progress_body(c, user, month, lang)]


PAGE = Page("/progress", "nav_progress", render, register)
