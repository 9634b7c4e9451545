"""Alerts page `/alerts`: filters, acknowledge, export.

Alerts `/alerts`: the alerts of the outbox the user may see, filtered by severity,
rule, scope, status and period; open alerts acknowledged one by one or in bulk (each
through `core.access.require_acknowledge`); scopes by name (保定市·医院, not
`region:bd/category:hospital`), local times, units typeset, and the offline meters of
one institution grouped in one row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dash
import pandas as pd
from dash import Input, Output, State, ctx, dash_table, dcc, html
from dash.exceptions import PreventUpdate

from alerts.record import SEVERITY_RANK
from core.access import Forbidden, institution_ids, region_ids, require_acknowledge, visible_alerts
from core.users import User
from dashboard import inputs, integrations
from dashboard.context import Context, Page
from dashboard.i18n import MISSING, local_time, norm_lang, quantity, t, typeset
from dashboard.widgets import KEEP, export_button, forbidden

GROUPED_RULES = ("meter_offline",)  # one row per institution for these rules
ROWS_PER_PAGE = 50
SEVERITY_COLOURS = {"critical": "#c92a2a", "warning": "#e67700", "info": "#1971c2"}
GROUP_PREFIX = "group:"  # selection keys of a grouped row: group:<rule>:<institution>:<open|past>
PERIODS = {"7d": 7, "30d": 30, "365d": 365}  # first seen within the last N days
DEFAULT_STATUS = ["open", "acknowledged"]


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    outbox = c.outbox()
    if outbox is None:
        return html.Div(t("not_available", lang), className="empty")
    alerts = visible_alerts(user, c.registry, outbox.list_alerts(open_only=False))
    rules = sorted({a.get("rule", "") for a in alerts})
    return html.Div(id="alerts", children=[
        html.Div(className="controls", children=[
            html.Label([t("filter_severity", lang), dcc.Dropdown(
                id="alerts-severity", **KEEP, multi=True, placeholder=t("all", lang),
                options=[{"label": t(f"sev_{s}", lang), "value": s} for s in ("critical", "warning", "info")])]),
            html.Label([t("filter_rule", lang), dcc.Dropdown(
                id="alerts-rule", **KEEP, multi=True, placeholder=t("all", lang),
                options=[{"label": t(f"rule_{r}", lang), "value": r} for r in rules])]),
            html.Label([t("filter_scope", lang), dcc.Dropdown(
                id="alerts-scope", **KEEP, placeholder=t("all", lang), options=scope_options(c, user))]),
            html.Label([t("filter_status", lang), dcc.Dropdown(
                id="alerts-status", **KEEP, multi=True, value=DEFAULT_STATUS, placeholder=t("all", lang),
                options=[{"label": t(f"status_{s}", lang), "value": s} for s in ("open", "acknowledged", "resolved")])]),
            html.Label([t("filter_period", lang), dcc.Dropdown(
                id="alerts-period", **KEEP, value="all", clearable=False,
                options=[{"label": t(f"period_{p}", lang), "value": p} for p in ("all", *PERIODS)])]),
        ]),
        html.Div(className="controls", children=[
            dcc.Checklist(id="alerts-select-all", options=[{"label": t("select_all", lang), "value": "all"}],
                          value=[], className="check", inline=True),
            html.Button(t("ack_selected", lang), id="alerts-ack-selected", className="button", n_clicks=0),
            export_button("alerts-export", lang),
        ]),
        html.Div(id="alerts-flash"),
        html.P(id="alerts-count", className="count"),
        html.H2(t("open_alerts", lang)),
        dcc.Loading(alert_table("alerts-open", True, lang)),
        html.H2(t("past_alerts", lang)),
        alert_table("alerts-past", False, lang),
    ])


def scope_options(c: Context, user: User) -> list[dict]:
    """The regions the user may choose and the institutions they see, by name."""
    regions = c.regions_by_depth(region_ids(user, c.registry))
    insts = sorted(institution_ids(user, c.registry))
    by_id = c.registry.institution_by_id
    return ([{"label": c.region_name[r], "value": f"region:{r}"} for r in regions]
            + [{"label": f"{by_id[i].name} ({i})", "value": f"institution:{i}"} for i in insts])


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output("alerts-open", "data"), Output("alerts-open", "selected_rows"), Output("alerts-past", "data"),
                  Output("alerts-count", "children"), Output("alerts-flash", "children"),
                  Input("alerts-severity", "value"), Input("alerts-rule", "value"), Input("alerts-scope", "value"),
                  Input("alerts-status", "value"), Input("alerts-period", "value"),
                  Input("alerts-open", "active_cell"), Input("alerts-ack-selected", "n_clicks"),
                  State("alerts-open", "data"), State("alerts-open", "selected_rows"), State("lang", "data"))
    def alerts_body(severity: list | None, rule: list | None, scope: str | None, status: list | None,
                    period: str | None, cell: dict | None, _bulk: int | None, shown: list | None,
                    selected: list | None, lang: str | None) -> tuple:
        """The filtered tables; a click on a row's "acknowledge" cell or on
        "acknowledge selected" first acknowledges (each alert through access)."""
        lang = norm_lang(lang)
        f = filters(severity, rule, scope, status, period)
        cell, shown_ids, selected = inputs.cell(cell), inputs.record_ids(shown), inputs.rows(selected)
        user = c.current_user()
        outbox = c.outbox()
        if user is None or outbox is None:
            return [], [], [], forbidden(lang), None
        flash = None
        trig = ctx.triggered_id
        if trig == "alerts-open":
            if not cell or cell["column_id"] != "action" or not cell["row_id"]:
                raise PreventUpdate  # a click elsewhere in the table
            flash = acknowledge(c, user, outbox, [cell["row_id"]], lang)
        elif trig == "alerts-ack-selected":
            keys = [k for k in (shown_ids[i] for i in selected if i < len(shown_ids)) if k]
            flash = acknowledge(c, user, outbox, keys, lang) if keys else None
        rows = filtered(c, user, outbox, f)
        total = len(visible_alerts(user, c.registry, outbox.list_alerts(open_only=False)))
        open_ = table_rows(c, [a for a in rows if a.get("status") == "open"], True, lang)
        past = table_rows(c, [a for a in rows if a.get("status") != "open"], False, lang)
        return open_, [], past, t("alerts_shown", lang, n=len(rows), total=total), flash

    @app.callback(Output("alerts-open", "selected_rows", allow_duplicate=True), Input("alerts-select-all", "value"),
                  State("alerts-open", "data"), prevent_initial_call=True)
    def select_all(value: list | None, rows: list | None) -> list:
        return list(range(len(inputs.record_ids(rows)))) if inputs.texts(value) else []

    @app.callback(Output("alerts-export-file", "data"), Input("alerts-export-button", "n_clicks"),
                  State("alerts-severity", "value"), State("alerts-rule", "value"), State("alerts-scope", "value"),
                  State("alerts-status", "value"), State("alerts-period", "value"), State("lang", "data"),
                  prevent_initial_call=True)
    def alerts_export(clicks: int | None, severity: list | None, rule: list | None, scope: str | None,
                      status: list | None, period: str | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        f = filters(severity, rule, scope, status, period)
        user, outbox = c.current_user(), c.outbox()
        if not inputs.integer(clicks, lo=0) or user is None or outbox is None:
            raise PreventUpdate
        rows = filtered(c, user, outbox, f)
        frame = pd.DataFrame([{
            "severity": t(f"sev_{a.get('severity', '')}", lang), "rule": t(f"rule_{a.get('rule', '')}", lang),
            "scope": scope_label(c, a, lang), "period": a.get("period", ""),
            "message": typeset(a.get("message_zh" if lang == "zh" else "message_en", ""), lang),
            "actual": a.get("actual"), "limit": a.get("limit"), "unit": a.get("unit", ""),
            "first_seen": local_time(a.get("first_seen"), c.service.tz, lang), "status": t(f"status_{status_of(a)}", lang),
            "acknowledged_by": a.get("acknowledged_by") or "", "key": a.get("key", "")} for a in rows])
        cols = [("severity", t("severity", lang)), ("rule", t("filter_rule", lang)), ("scope", t("scope", lang)),
                ("period", t("period", lang)), ("message", t("message", lang)), ("actual", t("actual", lang)),
                ("limit", t("target", lang)), ("unit", "unit"), ("first_seen", t("first_seen", lang)),
                ("status", t("filter_status", lang)), ("acknowledged_by", t("acknowledged", lang)), ("key", "key")]
        data = integrations.frames_xlsx([("alerts", frame if len(frame) else pd.DataFrame(columns=[k for k, _ in cols]),
                                          cols, [])])
        return dcc.send_bytes(data, "alerts.xlsx")


# -- filtering -----------------------------------------------------------------------------------
@dataclass
class Filters:
    severity: list[str] = field(default_factory=list)
    rule: list[str] = field(default_factory=list)
    scope: str | None = None  # region:R (its subtree) or institution:I
    status: list[str] = field(default_factory=list)  # open | acknowledged | resolved; none: all
    period: str = "all"  # all | 7d | 30d | 365d (first seen)


def filters(severity: Any, rule: Any, scope: Any, status: Any, period: Any) -> Filters:
    """The filter controls' values, type-checked (`dashboard.inputs`)."""
    return Filters(inputs.texts(severity), inputs.texts(rule), inputs.text(scope), inputs.texts(status),
                   inputs.text(period) or "all")


def status_of(alert: dict) -> str:
    if alert.get("status") != "open":
        return "resolved"
    return "acknowledged" if alert.get("acknowledged_by") else "open"


def in_scope(c: Context, alert: dict, scope: str | None) -> bool:
    """Is the alert about `scope` (an institution, or anything inside a region's subtree)?"""
    if not scope:
        return True
    kind, _, ident = scope.partition(":")
    inst = alert.get("institution_id")
    if kind == "institution":
        return inst == ident
    subtree = c.registry.region_subtree(ident)
    if inst:
        i = c.registry.institution_by_id.get(str(inst))
        return i is not None and i.region in subtree
    own = str(alert.get("scope") or "")
    return own.startswith("region:") and own.removeprefix("region:").split("/")[0] in subtree


def filtered(c: Context, user: User, outbox: Any, f: Filters) -> list[dict]:
    """The alerts `user` may see that pass the filters, most severe and newest first."""
    alerts = visible_alerts(user, c.registry, outbox.list_alerts(open_only=False))
    since = None
    if f.period in PERIODS:
        since = c.service.now() - pd.Timedelta(days=PERIODS[f.period])
    out = []
    for a in alerts:  # one outbox's alerts: at most a few thousand
        if f.severity and a.get("severity") not in f.severity:
            continue
        if f.rule and a.get("rule") not in f.rule:
            continue
        if f.status and status_of(a) not in f.status:
            continue
        if since is not None and not _seen_after(a.get("first_seen"), since):
            continue
        if in_scope(c, a, f.scope):
            out.append(a)
    return sorted(out, key=lambda a: (status_of(a) == "resolved", -SEVERITY_RANK.get(a.get("severity", ""), 0),
                                      _neg_time(a.get("first_seen"))))


def _seen_after(value: Any, since: pd.Timestamp) -> bool:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return True
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts) >= since


def _neg_time(value: Any) -> float:
    try:
        ts = pd.Timestamp(value)
        return -(ts.tz_localize("UTC") if ts.tzinfo is None else ts).timestamp()
    except (ValueError, TypeError):
        return 0.0


# -- acknowledging ----------------------------------------------------------------------------
def acknowledge(c: Context, user: User, outbox: Any, keys: Iterable[str], lang: str) -> html.Div:
    """Acknowledge the open alerts named by `keys` (alert keys or group keys), each one
    through `access.require_acknowledge`; what the user may not acknowledge is refused
    and counted."""
    open_alerts = {a.get("key"): a for a in outbox.list_alerts(open_only=True)}
    wanted: list[str] = []
    for key in keys:
        wanted += group_members(open_alerts.values(), key) if key.startswith(GROUP_PREFIX) else [key]
    done = refused = 0
    for key in dict.fromkeys(wanted):
        try:
            require_acknowledge(user, c.registry, open_alerts.get(key))
        except Forbidden:
            refused += 1
            continue
        done += bool(outbox.acknowledge(key, user.name))
    text = t("acknowledged_n", lang, n=done) + (" " + t("ack_refused", lang, n=refused) if refused else "")
    return html.Div(text, className="flash", id="alerts-ack-result")


def group_key(alert: dict) -> str:
    bucket = "past" if alert.get("status") != "open" else "open"
    return f"{GROUP_PREFIX}{alert.get('rule')}:{alert.get('institution_id')}:{bucket}"


def group_members(alerts: Iterable[dict], key: str) -> list[str]:
    """The alert keys a group row stands for."""
    return [a.get("key", "") for a in alerts if a.get("rule") in GROUPED_RULES and a.get("institution_id")
            and group_key(a) == key]


# -- the table -------------------------------------------------------------------------------
def grouped(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """(row key, alerts) per table row: one per alert, one per institution and bucket
    for the grouped rules (offline meters), in the order of their first member."""
    out: list[tuple[str, list[dict]]] = []
    groups: dict[str, list[dict]] = {}
    for a in rows:
        if a.get("rule") in GROUPED_RULES and a.get("institution_id"):
            key = group_key(a)
            if key not in groups:
                groups[key] = []
                out.append((key, groups[key]))
            groups[key].append(a)
        else:
            out.append((a.get("key", ""), [a]))
    return [(key, members) if len(members) > 1 else (members[0].get("key", ""), members) for key, members in out]


def alert_table(table_id: str, with_ack: bool, lang: str) -> dash_table.DataTable:
    """A table of alerts (rows from `table_rows`): paged, sortable, rows selectable for
    the open alerts, whose "acknowledge" cells acknowledge their row."""
    columns = [{"name": t("severity", lang), "id": "severity"}, {"name": t("filter_rule", lang), "id": "rule"},
               {"name": t("scope", lang), "id": "scope", "presentation": "markdown"},
               {"name": t("period", lang), "id": "period"}, {"name": t("message", lang), "id": "message"},
               {"name": t("value_limit", lang), "id": "value"}, {"name": t("first_seen", lang), "id": "first_seen"},
               {"name": "", "id": "action"}]
    return dash_table.DataTable(
        id=table_id, columns=columns, data=[], page_action="native", page_size=ROWS_PER_PAGE,
        sort_action="native", row_selectable="multi" if with_ack else False, selected_rows=[],
        markdown_options={"link_target": "_self"}, style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "inherit", "padding": "4px 8px", "textAlign": "left", "whiteSpace": "normal",
                    "height": "auto", "verticalAlign": "top"},
        style_cell_conditional=[
            {"if": {"column_id": c}, "whiteSpace": "nowrap"} for c in ("severity", "rule", "first_seen", "action",
                                                                       "value")] + [
            {"if": {"column_id": "message"}, "minWidth": "280px", "maxWidth": "560px"},
            {"if": {"column_id": "scope"}, "minWidth": "9em"}, {"if": {"column_id": "value"}, "textAlign": "right"}],
        style_data_conditional=[
            *[{"if": {"filter_query": f'{{sev}} = "{sev}"', "column_id": "severity"}, "color": colour,
               "fontWeight": 600} for sev, colour in SEVERITY_COLOURS.items()],
            {"if": {"filter_query": "{can_ack} = 1", "column_id": "action"}, "color": "#1c7ed6", "cursor": "pointer",
             "textDecoration": "underline"},
        ],
        style_header={"fontWeight": 600, "backgroundColor": "#f1f3f5"},
    )


def table_rows(c: Context, rows: list[dict], with_ack: bool, lang: str) -> list[dict]:
    """The rows of an alert table: one per alert or group of offline meters, by name,
    in local time, units typeset; `id` is the alert (or group) key."""
    tz = c.service.tz
    out = []
    for key, members in grouped(rows):  # one page of the outbox: at most a few thousand rows
        a = members[0]
        sev = str(a.get("severity", ""))
        if len(members) > 1:  # offline meters of one institution
            meters = "、".join(str(m.get("scope", "")).removeprefix("meter:") for m in members)
            message = f"{t('meters_offline_group', lang, n=len(members))}: {meters}"
            value = MISSING
            first = min((m.get("first_seen") or "" for m in members), default="")
        else:
            message = typeset(a.get("message_zh" if lang == "zh" else "message_en", ""), lang)
            u = str(a.get("unit") or "")
            value = (f"{quantity(a.get('actual'), u, lang, 2)} / {quantity(a.get('limit'), u, lang, 2)}"
                     if a.get("actual") is not None or a.get("limit") is not None else MISSING)
            first = a.get("first_seen")
        acked = [m.get("acknowledged_by") for m in members if m.get("acknowledged_by")]
        if acked and len(acked) == len(members):
            action = f"{t('acknowledged', lang)}: {', '.join(dict.fromkeys(acked))}"
        elif with_ack:
            action = t("acknowledge", lang)
        else:
            action = members[0].get("resolution") or ""
        out.append({"id": key, "sev": sev, "severity": t(f"sev_{sev}", lang), "rule": t(f"rule_{a.get('rule', '')}",
                                                                                        lang),
                    "scope": scope_cell(c, a, lang), "period": a.get("period", ""), "message": message,
                    "value": value, "first_seen": local_time(first, tz, lang), "action": action,
                    "can_ack": int(with_ack and not (acked and len(acked) == len(members)))})
    return out


def scope_label(c: Context, alert: dict, lang: str) -> str:
    """What an alert is about, by name: an institution's name, 石家庄市·学校 for a
    category in a region, a region's name, a meter with its institution."""
    scope = str(alert.get("scope") or "")
    parts = dict(p.split(":", 1) for p in scope.split("/") if ":" in p)
    by_id = c.registry.institution_by_id
    if "meter" in parts:
        inst = by_id.get(str(alert.get("institution_id") or ""))
        return f"{parts['meter']}（{inst.name}）" if inst and lang == "zh" else \
            f"{parts['meter']} ({inst.name})" if inst else parts["meter"]
    if "institution" in parts:
        inst = by_id.get(parts["institution"])
        return inst.name if inst else parts["institution"]
    region = c.region_name.get(parts.get("region", ""), parts.get("region", ""))
    if "category" in parts:
        return f"{region}·{t('cat_' + parts['category'], lang)}"
    return region or scope


def scope_cell(c: Context, alert: dict, lang: str) -> str:
    """The scope's name (markdown), linking to the institution page when it is (inside) one."""
    inst = c.registry.institution_by_id.get(str(alert.get("institution_id") or ""))
    label = inst.name if inst is not None and alert.get("rule") in GROUPED_RULES else scope_label(c, alert, lang)
    label = label.replace("[", "(").replace("]", ")")
    return f"[{label}](/institution/{inst.id})" if inst is not None else label


PAGE = Page("/alerts", "nav_alerts", render, register)
