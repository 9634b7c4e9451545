"""Monthly submission `/filing` (填报): an institution's figures for a month, its status and audit trail.

The energies the institution meters are shown read-only (the meters' figure and its
estimated share); every other energy has a quantity, a unit (`core.vocab.BILL_UNITS`) and
a cost field, converted to the canonical unit as it is typed. Submit runs the entry checks
(`quotas.filing.submit`): errors are listed, warnings each get a reason field and block
until every one has a written reason. The same figures come in through the xlsx template
(download pre-filled, fill, upload; errors by row and field). Every callback re-reads the
signed-in user and goes through `quotas.filing`, which checks the scope (`core.access`):
a crafted request for another institution gets the "no access" message.
"""

from __future__ import annotations

import base64
from typing import Any

import dash
import numpy as np
import pandas as pd
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from core.access import Forbidden, institution_ids
from core.users import User
from core.vocab import BILL_UNITS, CANONICAL_UNIT, ENERGIES, INDEX_UNIT
from dashboard import inputs
from dashboard.context import Context, Page
from dashboard.i18n import norm_lang, t
from dashboard.widgets import KEEP, fmt, forbidden
from models.energy import to_canonical
from models.submission import reporting_month
from quotas.filing import audit_trail, prefill, submit
from reports.submission_form import TemplateError, read_template

MONTHS_OFFERED = 12
ENTRY_ENERGIES = tuple(e for e in ENERGIES if e != "pv")  # PV generation is metered, not reported


def months(c: Context) -> list[str]:
    last = pd.Period(reporting_month(c.service.today().date()), freq="M")
    return [str(last - k) for k in range(MONTHS_OFFERED)]


def visible_institutions(c: Context, user: User) -> list[str]:
    seen = institution_ids(user, c.registry)
    return [i.id for i in c.registry.institutions if i.id in seen]


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    if c.filing() is None:
        return html.Div(t("not_available", lang), className="empty")
    ids = visible_institutions(c, user)
    if not ids:
        raise Forbidden(user.name)
    ms = months(c)
    names = {i.id: i.name for i in c.registry.institutions}
    return html.Div(id="filing", children=[
        html.H2(t("filing_title", lang)),
        html.Div(className="controls", children=[
            html.Label([t("nav_institution", lang), dcc.Dropdown(
                id="filing-inst", **KEEP, options=[{"label": f"{names[i]} ({i})", "value": i} for i in ids],
                value=ids[0], clearable=False)]),
            html.Label([t("month", lang), dcc.Dropdown(id="filing-month", **KEEP, options=ms, value=ms[0],
                                                       clearable=False)]),
        ]),
        html.Div(id="filing-form"),
        html.Div(className="controls", children=[
            html.Label([t("filing_area_changed", lang), dcc.Input(id="filing-area", type="number", className="num")]),
            html.Label([t("filing_occupants_changed", lang), dcc.Input(id="filing-occupants", type="number",
                                                                       className="num")]),
        ]),
        html.Div(id="filing-warnings"),
        html.Button(t("filing_submit", lang), id="filing-submit", className="button"),
        html.Div(id="filing-result"),
        html.H3(t("filing_template", lang)),
        html.Div(className="controls", children=[
            html.A(t("filing_template_download", lang), id="filing-template", className="button", href="#"),
            dcc.Upload(id="filing-upload", children=html.Div(t("filing_upload", lang)), className="upload",
                       max_size=2 * 1024 * 1024, style={"border": "1px dashed #888", "padding": "0.6em 1em"}),
        ]),
        html.H3(t("audit_trail", lang)),
        html.Div(className="controls", children=[
            html.A(t("export_csv", lang), id="filing-audit-csv", className="button", href="#"),
            html.A(f"{t('download', lang)} (xlsx)", id="filing-audit-xlsx", className="button", href="#"),
        ]),
        html.Div(id="filing-audit"),
    ])


def form_body(c: Context, user: User, iid: str, month: str, lang: str) -> list:
    filing = c.filing()
    rows = prefill(user, iid, month, filing)
    rec = filing.book.get(iid, month)
    status = rec["status"] if rec else "missing"
    head = [html.Div([html.Span(f"{t('status', lang)}: "),
                      html.Span(t(f"status_{status}", lang), id="filing-status",
                                className=f"status-{status}")])]
    if rec and rec.get("comment"):
        head.append(html.Div(f"{t('reviewer_comment', lang)}: {rec['comment']}", id="filing-comment",
                             className="comment"))
    metered = rows[rows["metered"].astype(bool)]
    entry = rows[~rows["metered"].astype(bool)].set_index("energy")
    out = head
    if len(metered):
        out += [html.H3(t("filing_metered", lang)), html.Table(className="grid", id="filing-metered", children=[
            html.Thead(html.Tr([html.Th(t(k, lang)) for k in ("energy", "quantity", "unit", "estimated_share")])),
            html.Tbody([html.Tr([html.Td(t(f"en_{r['energy']}", lang)), html.Td(fmt(r["quantity"], 1)),
                                 html.Td(r["unit"]), html.Td(f"{100 * r['estimated_share']:.1f} %")])
                        for r in metered.to_dict("records")])])]
    body = []
    for e in ENTRY_ENERGIES:
        if e in set(metered["energy"]):
            continue
        have = entry.loc[e] if e in entry.index else None
        q = None if have is None or pd.isna(have["quantity"]) else float(have["quantity"])
        unit = str(have["unit"]) if have is not None else INDEX_UNIT[e]
        cost = None if have is None or pd.isna(have["cost_cny"]) else float(have["cost_cny"])
        last = None if have is None or pd.isna(have["last_year_c"]) else float(have["last_year_c"])
        body.append(html.Tr([
            html.Td(t(f"en_{e}", lang)),
            html.Td(dcc.Input(id={"type": "fq", "energy": e}, type="number", value=q, debounce=False,
                              className="num", style={"width": "9em"})),
            html.Td(dcc.Dropdown(id={"type": "fu", "energy": e}, options=sorted(BILL_UNITS[e]), value=unit,
                                 clearable=False, style={"minWidth": "6em"})),
            html.Td(dcc.Input(id={"type": "fc", "energy": e}, type="number", value=cost, className="num", style={"width": "9em"})),
            html.Td(html.Span(id={"type": "fconv", "energy": e})),
            html.Td("—" if last is None else f"{last:,.1f} {CANONICAL_UNIT[e]}"),
        ]))
    out += [html.H3(t("filing_entry", lang)), html.Table(className="grid", id="filing-entry", children=[
        html.Thead(html.Tr([html.Th(t(k, lang)) for k in ("energy", "quantity", "unit", "cost_cny",
                                                          "filing_converted", "filing_last_year")])),
        html.Tbody(body)])]
    inst = c.registry.institution_by_id[iid]
    out.append(html.Div(f"{t('registered', lang)}: {t('floor_area', lang)} {inst.floor_area_m2:g}, "
                        f"{t('occupants', lang)} {inst.occupants:g}", className="hint"))
    return out


def audit_table(c: Context, user: User, iid: str, lang: str) -> Any:
    trail = audit_trail(user, iid, c.filing())
    if trail.empty:
        return html.Div(t("no_data", lang), className="empty")
    cols = ["at", "who", "source", "action", "period_start", "energy", "field", "old", "new", "reason"]
    return html.Table(className="grid", id="filing-audit-table", children=[
        html.Thead(html.Tr([html.Th(t(f"audit_{k}", lang)) for k in cols])),
        html.Tbody([html.Tr([html.Td("" if r[k] is None else str(r[k])) for k in cols], className="audit-row")
                    for r in trail.iloc[::-1].to_dict("records")])])


def warnings_block(result_body: dict, reasons: dict[str, str], lang: str) -> list:
    warns = result_body.get("warnings") or []
    if not warns:
        return []
    items = []
    for w in warns:
        items.append(html.Div(className="warning-item", children=[
            html.Div(f"[{w['code']}] {w['message_zh'] if lang == 'zh' else w['message_en']}", className="warning"),
            dcc.Textarea(id={"type": "freason", "code": w["code"]}, value=reasons.get(w["code"], ""),
                         placeholder=t("filing_reason", lang), style={"width": "100%", "height": "3em"}),
        ]))
    return [html.H3(t("filing_warnings", lang)), *items]


def result_block(res, lang: str, rows: list[int] | None = None) -> html.Div:
    if res.ok:
        return html.Div(t("filing_done", lang), className="ok", id="filing-ok")
    problems = res.body.get("problems") or []
    lines = []
    for p in problems:
        where = p.get("field", "")
        if p.get("index") is not None:
            where = f"{t('row', lang)} {rows[p['index']] if rows else p['index'] + 1}: {where}"
        lines.append(html.Li(f"{where}: {p.get('message_zh') if lang == 'zh' and p.get('message_zh') else p['message']}"))
    if not problems:
        lines.append(html.Li(t("filing_need_reasons", lang)))
    return html.Div(className="problems", id="filing-problems", children=[html.Ul(lines)])


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output({"type": "fconv", "energy": ALL}, "children"), Input({"type": "fq", "energy": ALL}, "value"),
                  Input({"type": "fu", "energy": ALL}, "value"))
    def converted(qs: Any, units: Any) -> list:
        """Each typed quantity in its energy's canonical unit (the one unit table)."""
        outs = ctx.outputs_list
        if not (isinstance(qs, list) and isinstance(units, list) and isinstance(outs, list)) \
                or not len(qs) == len(units) == len(outs) or c.filing() is None:
            raise PreventUpdate
        energies = [o.get("id", {}).get("energy") if isinstance(o, dict) and isinstance(o.get("id"), dict) else None
                    for o in outs]
        q = np.array([float(v) if isinstance(v, int | float) and not isinstance(v, bool) else np.nan for v in qs])
        ok = np.array([isinstance(e, str) and isinstance(u, str) and u in BILL_UNITS.get(e, ())
                       for e, u in zip(energies, units, strict=True)], dtype=bool) & np.isfinite(q)
        out = np.full(len(q), np.nan)
        if ok.any():
            out[ok] = to_canonical(q[ok], np.array(energies, dtype=object)[ok], np.array(units, dtype=object)[ok],
                                   c.filing().factors)
        return ["" if not np.isfinite(v) else f"{v:,.2f} {CANONICAL_UNIT[e]}" for v, e in zip(out, energies,
                                                                                           strict=True)]

    @app.callback(Output("filing-form", "children"), Output("filing-audit", "children"),
                  Output("filing-template", "href"), Output("filing-audit-csv", "href"),
                  Output("filing-audit-xlsx", "href"), Output("filing-warnings", "children"),
                  Output("filing-result", "children"),
                  Input("filing-inst", "value"), Input("filing-month", "value"),
                  Input("filing-submit", "n_clicks"), Input("filing-upload", "contents"),
                  State({"type": "fq", "energy": ALL}, "value"), State({"type": "fu", "energy": ALL}, "value"),
                  State({"type": "fc", "energy": ALL}, "value"), State({"type": "fq", "energy": ALL}, "id"),
                  State({"type": "freason", "code": ALL}, "value"), State({"type": "freason", "code": ALL}, "id"),
                  State("filing-area", "value"), State("filing-occupants", "value"), State("lang", "data"))
    def update(iid: Any, month: Any, _n: Any, upload: Any, qs: Any, units: Any, costs: Any, ids: Any,
               reason_values: Any, reason_ids: Any, area: Any, occupants: Any, lang: str | None) -> tuple:
        """Show an institution's month (inst or month changed), or submit the form or an upload."""
        lang = norm_lang(lang)
        user = c.current_user()
        iid, month = inputs.text(iid), inputs.text(month)
        if user is None or c.filing() is None or not iid or not month:
            raise PreventUpdate
        trig = ctx.triggered_id
        try:
            if trig in ("filing-submit", "filing-upload"):
                ok, result, warnings, iid, month = send(c, user, trig, iid, month, upload, qs, units, costs, ids,
                                                        reason_values, reason_ids, area, occupants, lang)
            else:
                ok, result, warnings = True, "", []
            form = form_body(c, user, iid, month, lang) if ok else dash.no_update  # a refusal keeps what was typed
            audit = audit_table(c, user, iid, lang)
        except Forbidden:
            return forbidden(lang), "", "#", "#", "#", [], ""
        except ValueError:
            raise PreventUpdate from None
        return (form, audit, f"/download/submission/{iid}/{month}.xlsx", f"/download/audit/{iid}.csv",
                f"/download/audit/{iid}.xlsx", warnings, result)


def send(c: Context, user: User, trig: str, iid: str, month: str, upload: Any, qs: Any, units: Any, costs: Any,
         ids: Any, reason_values: Any, reason_ids: Any, area: Any, occupants: Any, lang: str) -> tuple:
    """Submit the typed figures or an uploaded template: (accepted, result block, warnings block,
    institution, month)."""
    reasons = {}
    if isinstance(reason_ids, list) and isinstance(reason_values, list):
        reasons = {str(i.get("code")): inputs.text(v) or "" for i, v in zip(reason_ids, reason_values, strict=False)
                   if isinstance(i, dict) and isinstance(v, str | type(None))}
    rows = None
    if trig == "filing-upload":
        try:
            data = base64.b64decode(inputs_upload(upload).split(",", 1)[-1])
            iid, month, items, rows = read_template(data)
        except (TemplateError, ValueError) as exc:
            problems = exc.problems if isinstance(exc, TemplateError) else [
                {"row": 0, "field": "-", "message": "not a readable upload"}]
            return False, html.Div(className="problems", id="filing-problems", children=[html.Ul([
                html.Li(f"{t('row', lang)} {p['row']}: {p['field']}: {p['message']}") for p in problems])]), [], \
                iid, month
        source = "upload"
    else:
        items = entered_items(qs, units, costs, ids)
        source = "form"
    payload = {"institution_id": iid, "month": month, "items": items, "reasons": reasons,
               "floor_area_m2": number(area), "occupants": number(occupants)}
    res = submit(user, payload, c.filing(), source=source)
    return res.ok, result_block(res, lang, rows), warnings_block(res.body, reasons, lang), iid, month


def inputs_upload(value: Any) -> str:
    """An upload's data URL (a string), else stop."""
    if not isinstance(value, str) or len(value) > 4 * 1024 * 1024:
        raise PreventUpdate
    return value


def number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PreventUpdate
    try:
        return float(value)
    except ValueError:
        raise PreventUpdate from None


def entered_items(qs: Any, units: Any, costs: Any, ids: Any) -> list[dict[str, Any]]:
    """The typed figures as submission items (energies left empty are not submitted)."""
    if not all(isinstance(x, list) for x in (qs, units, costs, ids)) or not len(qs) == len(units) == len(costs) \
            == len(ids):
        raise PreventUpdate
    out = []
    for q, u, cost, i in zip(qs, units, costs, ids, strict=True):
        if not isinstance(i, dict) or q is None or q == "":
            continue
        out.append({"energy": inputs.text(str(i.get("energy"))), "quantity": number(q), "unit": inputs.text(str(u)),
                    "cost_cny": number(cost)})
    return out


PAGE = Page("/filing", "nav_filing", render, register)
