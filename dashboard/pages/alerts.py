"""Alerts `/alerts`: open alerts (with an acknowledge button) and past alerts from the
alert outbox, those the user may see."""

from __future__ import annotations

from typing import Any

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from core.access import Forbidden, require_acknowledge, visible_alerts
from core.users import User
from dashboard import inputs
from dashboard.context import Context, Page
from dashboard.i18n import norm_lang, t
from dashboard.widgets import forbidden, no_data


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    if c.outbox() is None:
        return html.Div(t("not_available", lang), className="empty")
    return html.Div(id="alerts", children=[html.Div(id="alerts-body", children=alerts_body(c, user, lang))])


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output("alerts-body", "children"), Input({"type": "ack", "key": ALL}, "n_clicks"),
                  State("lang", "data"), prevent_initial_call=True)
    def acknowledge(clicks: list, lang: str | None) -> Any:
        lang = norm_lang(lang)
        user = c.current_user()
        trig = ctx.triggered_id
        clicks = inputs.clicks(clicks)
        outbox = c.outbox()
        if user is None or not isinstance(trig, dict) or not any(clicks) or outbox is None:
            raise PreventUpdate
        key = str(trig.get("key"))
        match = [a for a in outbox.list_alerts(open_only=True) if a.get("key") == key]
        try:
            require_acknowledge(user, c.registry, match[0] if match else None)
        except Forbidden:
            return [forbidden(lang), *alerts_body(c, user, lang)]
        outbox.acknowledge(key, user.name)
        return alerts_body(c, user, lang)


def alerts_body(c: Context, user: User, lang: str) -> list:
    outbox = c.outbox()
    alerts = visible_alerts(user, c.registry, outbox.list_alerts(open_only=False)) if outbox is not None else []
    open_ = [a for a in alerts if a.get("status") == "open"]
    past = [a for a in alerts if a.get("status") != "open"]
    return [html.H2(t("open_alerts", lang)), alert_table(c, open_, True, "alerts-open", lang) if open_ else no_data(lang),
            html.H2(t("past_alerts", lang)), alert_table(c, past, False, "alerts-past", lang) if past else no_data(lang)]


def alert_table(c: Context, rows: list[dict], with_ack: bool, table_id: str, lang: str) -> html.Table:
    head = html.Tr([html.Th(x) for x in (t("severity", lang), t("scope", lang), t("period", lang),
                                          t("message", lang), t("first_seen", lang), "")])
    body = []
    for a in rows:
        inst = c.registry.institution_by_id.get(str(a.get("institution_id") or ""))
        body.append(html.Tr([
            html.Td(t(f"sev_{a.get('severity', '')}", lang), className=f"sev-{a.get('severity', '')}"),
            html.Td(dcc.Link(inst.name, href=f"/institution/{inst.id}") if inst else str(a.get("scope", ""))),
            html.Td(a.get("period", "")), html.Td(a.get("message_zh" if lang == "zh" else "message_en", "")),
            html.Td(str(a.get("first_seen", ""))[:16]), html.Td(alert_action(a, with_ack, lang))],
            className="alert-row"))
    return html.Table([html.Thead(head), html.Tbody(body)], className="grid", id=table_id)


def alert_action(a: dict, with_ack: bool, lang: str) -> Any:
    """Who acknowledged it, the acknowledge button (open alerts), or how it ended."""
    if a.get("acknowledged_by"):
        return f"{t('acknowledged', lang)}: {a['acknowledged_by']}"
    if with_ack:
        return html.Button(t("acknowledge", lang), id={"type": "ack", "key": a["key"]}, className="ack")
    return a.get("resolution") or ""


PAGE = Page("/alerts", "nav_alerts", render, register)
