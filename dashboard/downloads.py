"""Every /download/... route of the dashboard.

Downloads: the ranking and an institution's daily consumption as CSV, the monthly
report, the carbon ledger, a savings-verification report, an institution's submission
template (xlsx) and audit trail (csv, xlsx), each built from what
the signed-in user may see (401 without a session, 403 for anything else, 400 for a
malformed request or a parameter out of range: never a 5xx for what the URL says)."""

from __future__ import annotations

import io
from typing import Any

import flask
import pandas as pd

from core.access import Forbidden, report_registry, require_institution, visible_filter
from core.csvio import EARLIEST
from core.users import User
from core.vocab import INDEX_UNIT
from core.yamlfile import ConfigError
from dashboard import integrations
from dashboard.context import Context
from dashboard.data import institution_meters
from dashboard.pages.filing import ENTRY_ENERGIES
from dashboard.pages.institution import DAILY_DAYS
from quotas.filing import audit_trail, prefill
from quotas.ranking import DEFAULT_INDICATOR, ranked, user_query
from reports.submission_form import audit_bytes, write_template

MAX_DOWNLOAD_DAYS = 3660  # ten years of daily rows at most per download
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _user_or_401(c: Context) -> User:
    user = c.current_user()
    if user is None:
        flask.abort(401)
    return user


def _int_arg(name: str, default: int) -> int:
    raw = flask.request.args.get(name)
    if raw is None:
        return default
    if not raw.strip().lstrip("+-").isdigit() or len(raw) > 12:  # int() also takes "1_000" and 4,300 digits
        flask.abort(400)
    return int(raw)


def valid_year(c: Context, year: int) -> bool:
    """A year from EARLIEST (no data is older) to the running year."""
    return EARLIEST.year <= year <= c.service.current_year()


def month_period(c: Context, raw: str) -> pd.Period | None:
    """`raw` as a month YYYY-MM from EARLIEST to the running month, else None."""
    try:
        period = pd.Period(raw, freq="M") if len(raw) == 7 and raw[4] == "-" else None
    except ValueError:
        period = None
    latest = pd.Period(c.service.today().tz_localize(None), freq="M")
    return period if period is not None and pd.Period(EARLIEST, freq="M") <= period <= latest else None


def _year_arg(c: Context, default: int) -> int:
    """`?year=` (`valid_year`), else 400."""
    year = _int_arg("year", default)
    if not valid_year(c, year):
        flask.abort(400, f"year must be from {EARLIEST.year} to {c.service.current_year()}")
    return year


def _month_arg(c: Context) -> pd.Period:
    """`?month=YYYY-MM` (`month_period`), else 400."""
    period = month_period(c, flask.request.args.get("month", ""))
    if period is None:
        flask.abort(400, f"month must be YYYY-MM from {EARLIEST:%Y-%m} to the running month")
    return period


def csv_response(frame: pd.DataFrame, filename: str) -> flask.Response:
    data = frame.to_csv(index=False).encode("utf-8-sig")  # BOM: Excel opens Chinese names right
    return flask.Response(data, mimetype="text/csv",
                          headers={"Content-Disposition": f"attachment; filename={filename}"})


def xlsx_response(data: bytes, filename: str) -> flask.Response:
    return flask.send_file(io.BytesIO(data), as_attachment=True, download_name=filename, mimetype=XLSX_MIME)


def ranking_csv(c: Context) -> Any:
    user = _user_or_401(c)
    args = flask.request.args
    year_arg = _year_arg(c, c.service.current_year()) if args.get("year") else None
    try:
        q, year = user_query(user, c.registry, year_arg, args.get("region") or None,
                             args.get("category") or None, args.get("indicator") or DEFAULT_INDICATOR,
                             args.get("search") or "", [], 0, 10**9, c.service.current_year())
    except Forbidden:
        flask.abort(403)
    except ValueError:
        flask.abort(400)
    rows = ranked(c.service.ranking_table(year), q)
    rows = rows.assign(region_name=rows["region"].map(c.region_name), indicator=q.indicator, year=year,
                       source=rows["institution_id"].map(c.registry.source_by_id))  # empty: this level's own
    return csv_response(rows, f"ranking-{year}-{q.indicator}.csv")


def daily_csv(c: Context, institution_id: str) -> Any:
    user = _user_or_401(c)
    try:
        inst = require_institution(user, c.registry, institution_id)
    except Forbidden:
        flask.abort(403)
    end = c.service.today() + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=min(max(_int_arg("days", DAILY_DAYS), 1), MAX_DOWNLOAD_DAYS))
    ids = [m.id for m in institution_meters(c.registry, inst)]
    out = c.service.consumption("day", start, end, ids)[["meter_id", "period_start", "quantity",
                                                         "estimated_share"]].copy()
    out["unit"] = out["meter_id"].map({m.id: m.unit for m in c.registry.meters})
    return csv_response(out, f"{inst}-daily.csv")


def ledger_file(c: Context, user: User, year: int, fmt: str) -> tuple[bytes, str]:
    """The carbon ledger of `year` as `fmt` (xlsx | csv) built from what `user` may
    see, and its file name (the download route and the reports page's button)."""
    visible = visible_filter(user, c.registry)
    data = integrations.ledger_bytes(c.registry, None if visible is None else set(visible), c.store, year, fmt,
                                     c.quotas.config())
    return data, f"carbon-ledger-{year}.{fmt}"


def report_file(c: Context, user: User, period: pd.Period) -> tuple[bytes, str]:
    """The monthly report of `period` built from what `user` may see, and its file name."""
    data = integrations.report_bytes(report_registry(user, c.registry), c.store, str(period), c.quotas.config())
    return data, f"monthly-report-{period}.xlsx"


def ledger(c: Context) -> Any:
    user = _user_or_401(c)
    year = _year_arg(c, c.service.current_year() - 1)
    fmt = flask.request.args.get("format", "xlsx")
    if fmt not in ("xlsx", "csv"):
        flask.abort(400)
    data, name = ledger_file(c, user, year, fmt)
    return flask.send_file(io.BytesIO(data), mimetype="text/csv" if fmt == "csv" else XLSX_MIME,
                           as_attachment=True, download_name=name)


def monthly_report(c: Context) -> Any:
    user = _user_or_401(c)
    period = _month_arg(c)
    data, name = report_file(c, user, period)
    return xlsx_response(data, name)


def mv_report(c: Context, project_id: str) -> Any:
    user = _user_or_401(c)
    match = [p for p in c.mv.visible(user) if p["id"] == project_id and not p["error"]]
    if not match:
        flask.abort(403)
    try:
        data = c.mv.report_bytes(match[0]["file"])
    except (ConfigError, ValueError) as exc:  # the verification's own message, as text
        return flask.Response(str(exc), status=422, mimetype="text/plain")
    return xlsx_response(data, f"mv-{project_id}.xlsx")


def _filing_call(c: Context, fn: Any, *args: Any) -> Any:
    """`fn(user, *args, filing)` of `quotas.filing` for the signed-in user: 401 without a
    session, 404 without a submission book, 403 outside the scope, 400 for a bad month."""
    user = _user_or_401(c)
    filing = c.filing()
    if filing is None:
        flask.abort(404)
    try:
        return fn(user, *args, filing)
    except Forbidden:
        flask.abort(403)
    except ValueError:
        flask.abort(400, "month must be YYYY-MM")


def submission_template(c: Context, institution_id: str, month: str) -> Any:
    """The pre-filled xlsx template of one institution and month (`reports.submission_form`):
    every energy the page offers, metered ones marked."""
    rows = _filing_call(c, prefill, institution_id, month)
    metered = set(rows.loc[rows["metered"].astype(bool), "energy"])
    empty = pd.DataFrame({"energy": [e for e in ENTRY_ENERGIES if e not in set(rows["energy"])]})
    empty = empty.assign(metered=empty["energy"].isin(metered), quantity=float("nan"),
                         unit=empty["energy"].map(INDEX_UNIT), cost_cny=float("nan"))
    order = {e: i for i, e in enumerate(ENTRY_ENERGIES)}
    table = pd.concat([rows[["energy", "metered", "quantity", "unit", "cost_cny"]], empty], ignore_index=True)
    table = table[table["energy"].isin(order)].sort_values("energy", key=lambda s: s.map(order), kind="stable")
    name = c.registry.institution_by_id[institution_id].name
    return xlsx_response(write_template(institution_id, name, month, table), f"{institution_id}-{month}-填报.xlsx")


def audit_download(c: Context, institution_id: str, fmt: str) -> Any:
    """An institution's audit trail as csv or xlsx."""
    data = audit_bytes(_filing_call(c, audit_trail, institution_id), fmt)
    if fmt == "csv":
        return flask.Response(data, mimetype="text/csv",
                              headers={"Content-Disposition": f"attachment; filename={institution_id}-audit.csv"})
    return xlsx_response(data, f"{institution_id}-audit.xlsx")


def register(server: flask.Flask, c: Context) -> None:
    """Add the download routes under /download/."""
    server.add_url_rule("/download/ranking.csv", "download_ranking", lambda: ranking_csv(c))
    server.add_url_rule("/download/institution/<institution_id>/daily.csv", "download_daily",
                        lambda institution_id: daily_csv(c, institution_id))
    server.add_url_rule("/download/ledger", "download_ledger", lambda: ledger(c))
    server.add_url_rule("/download/report", "download_report", lambda: monthly_report(c))
    server.add_url_rule("/download/submission/<institution_id>/<month>.xlsx", "download_submission",
                        lambda institution_id, month: submission_template(c, institution_id, month))
    server.add_url_rule("/download/audit/<institution_id>.<any(csv, xlsx):fmt>", "download_audit",
                        lambda institution_id, fmt: audit_download(c, institution_id, fmt))
    server.add_url_rule("/download/mv/<project_id>.xlsx", "download_mv", lambda project_id: mv_report(c, project_id))
