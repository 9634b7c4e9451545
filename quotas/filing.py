"""The monthly submission service (统计填报): submit, approve, return, list, prefill and the audit trail.

One function per operation, each taking a principal (anything with `name`, `role`,
`scope`: a dashboard user or an API token's user) and a payload, and returning the JSON
shapes of interfaces.md § Monthly submissions as a `Result` (HTTP status and body), so the
dashboard's page and the API only wrap them. Scope is checked through `core.access`
(`Forbidden` escapes: the caller answers "no access" or 403). Nothing is written unless
everything is right: the bills go into the store (`Store.import_bills`, replacing the
month's earlier figures) and the status and audit rows into the submission book
(`storage.submissions`) in the book's one transaction.

The checks (`models.submission_checks`) see: the items converted through the one unit
table (`models.energy.to_canonical` over `core.vocab`), the same month last year (the
one `models.energy.energy_use`: meters and bills), the institution's main meters, and
the month's energy per floor area (the submission as bills plus the meters, through
`models.api.indicators`) against the 1st-99th percentile of its category in the same
month last year.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydantic
from cachetools import TTLCache

from core.access import Forbidden, institution_ids, require_institution
from core.registry import Registry
from core.vocab import BILL_UNITS, CANONICAL_UNIT, ENERGIES
from models.api import indicators
from models.energy import energy_use, split_bills, to_canonical
from models.factors import FactorSet, load_factors
from models.submission import (
    REOPEN_REASON,
    STATUS_ZH,
    TransitionError,
    days_left,
    deadline,
    items_to_bills,
    month_period,
    parse_month,
    statuses_for,
    transition,
)
from models.submission_checks import MIN_PEERS, PEER_PERCENTILES, blocking, run_checks
from storage.base import ImportRejected
from storage.submissions import SubmissionBook, bill_audit_rows, utc_now

PEER_CACHE_S = 600  # the peer band of a (month, category) is kept this long


class Item(pydantic.BaseModel):
    """One submitted figure: `quantity` in `unit` (one of `core.vocab.BILL_UNITS[energy]`), its cost."""

    model_config = pydantic.ConfigDict(extra="forbid")
    energy: str
    quantity: float | None
    unit: str
    cost_cny: float | None = None


class SubmissionBody(pydantic.BaseModel):
    """POST /api/v1/submissions (interfaces.md); `floor_area_m2`/`occupants`: the month's, if they changed."""

    model_config = pydantic.ConfigDict(extra="forbid")
    institution_id: str
    month: str
    items: list[Item]
    reasons: dict[str, str] = {}
    floor_area_m2: float | None = None
    occupants: float | None = None


@dataclass
class Result:
    """An operation's answer: HTTP `status` and the JSON `body`."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status < 400


@dataclass
class Filing:
    """What the operations work on: the registry, the store, the submission book and the
    factor set; `today()` the local date (tests fix it); `deadline_day` (default the 15th)."""

    registry: Registry
    store: Any
    book: SubmissionBook
    factors: FactorSet | None = None
    deadline_day: int | None = None
    today: Callable[[], date] | None = None
    _peers: TTLCache = field(default_factory=lambda: TTLCache(maxsize=256, ttl=PEER_CACHE_S))

    def __post_init__(self) -> None:
        self.factors = self.factors or load_factors()
        if self.deadline_day is None:
            self.deadline_day = self.registry.submissions.deadline_day

    @classmethod
    def open(cls, registry: Registry, store: Any, data_dir: str | Path, **kw: Any) -> Filing:
        """The filing of a data directory (the submission book beside the alert outbox)."""
        return cls(registry, store, SubmissionBook(data_dir), **kw)

    def use_registry(self, registry: Registry) -> None:
        """Work on `registry` from now on (the server's registry was swapped:
        `quotas.tables.YearTables.use_registry`); the peer groups are computed again."""
        if registry is not self.registry:
            self.registry = registry
            self._peers.clear()

    def local_today(self) -> date:
        return self.today() if self.today else pd.Timestamp.now(tz=self.registry.timezone).date()


def _finding_json(findings: pd.DataFrame) -> list[dict[str, Any]]:
    rows = findings.to_dict("records")
    return [{"code": r["code"], "severity": r["severity"], "index": None if r["index"] < 0 else int(r["index"]),
             "field": r["field"], "energy": r["energy"], "message": r["message_en"], "message_zh": r["message_zh"],
             "message_en": r["message_en"]} for r in rows]


def _refused(problems: list[dict[str, Any]], warnings: list[dict[str, Any]] | None = None) -> Result:
    return Result(422, {"problems": problems, "warnings": warnings or []})


def _problem(field_: str, message: str, code: str | None = None, index: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field_, "message": message}
    if code:
        out["code"] = code
    if index is not None:
        out["index"] = index
    return out


def _who(principal: Any) -> str:
    return str(getattr(principal, "name", None) or f"{principal.role}:{principal.scope}")


# -- the checks' inputs ----------------------------------------------------------------------
def _month_use(filing: Filing, month: str, ids: list[str] | None) -> pd.DataFrame:
    start, end = month_period(month)
    nxt = pd.Timestamp(end) + pd.Timedelta(days=1)
    return energy_use(filing.store, filing.registry, str(start), str(nxt.date()), "month", filing.factors,
                      institution_ids=ids)


def last_year_month(month: str) -> str:
    """The same month one year before."""
    return str(parse_month(month) - 12)


def peer_band(filing: Filing, month: str, category: str) -> tuple[float, float, int]:
    """1st and 99th percentile of kgce per m2 of the institutions of `category` with data
    in the same month last year, and how many there were (NaN band below MIN_PEERS)."""
    key = (last_year_month(month), category)
    if key not in filing._peers:
        use = _month_use(filing, key[0], None)
        ind = indicators(use, filing.registry, filing.factors, freq="month")
        peers = ind[(ind["category"] == category) & ind["has_data"].astype(bool) & (ind["kgce"] > 0)
                    & (ind["floor_area_m2"] > 0)]["kgce_per_m2"].to_numpy(float)
        if len(peers) < MIN_PEERS:
            filing._peers[key] = (np.nan, np.nan, len(peers))
        else:
            lo, hi = np.quantile(peers, PEER_PERCENTILES)
            filing._peers[key] = (float(lo), float(hi), len(peers))
    return filing._peers[key]


def prepare(filing: Filing, body: SubmissionBody) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The frames `models.submission_checks.run_checks` reads (its module docstring)."""
    iid, month = body.institution_id, body.month
    inst = filing.registry.institution_by_id[iid]
    raw = pd.DataFrame([i.model_dump() for i in body.items], columns=["energy", "quantity", "unit", "cost_cny"])
    raw["quantity"] = pd.to_numeric(raw["quantity"], errors="coerce").astype(float)
    raw["cost_cny"] = pd.to_numeric(raw["cost_cny"], errors="coerce").astype(float)
    items = raw.assign(index=np.arange(len(raw)), institution_id=iid)
    items["known_energy"] = items["energy"].isin(ENERGIES)
    allowed = {f"{e}|{u}" for e, units in BILL_UNITS.items() for u in units}
    items["unit_ok"] = (items["energy"] + "|" + items["unit"]).isin(allowed)
    ok = (items["known_energy"] & items["unit_ok"]).to_numpy(bool)
    q_c = np.full(len(items), np.nan)
    if ok.any():
        q_c[ok] = to_canonical(items["quantity"][ok], items["energy"][ok], items["unit"][ok], filing.factors)
    items["quantity_c"] = q_c
    items["duplicate"] = items["energy"].duplicated()
    meters = filing.registry.meters_frame()
    metered = set(meters[(meters["institution_id"] == iid) & meters["parent"].isna()]["energy"])
    items["metered"] = items["energy"].isin(metered)
    last = _month_use(filing, last_year_month(month), [iid])
    last = last[last["is_main"].astype(bool)].groupby("energy")["quantity"].sum()
    items["last_year_c"] = items["energy"].map(last).astype(float)
    missing = last[(last > 0) & ~last.index.isin(items["energy"]) & ~last.index.isin(list(metered))
                   & (last.index != "pv")]
    missing = pd.DataFrame({"institution_id": iid, "energy": missing.index.to_numpy(object),
                            "last_year_c": missing.to_numpy(float)})
    lo, hi, _ = peer_band(filing, month, inst.category)
    institutions = pd.DataFrame({
        "institution_id": [iid], "floor_area_m2": [float(inst.floor_area_m2)], "occupants": [float(inst.occupants)],
        "floor_area_given": [body.floor_area_m2], "occupants_given": [body.occupants],
        "kgce_per_m2": [month_intensity(filing, iid, month, items[ok & ~items["metered"].to_numpy(bool)])],
        "peer_low": [lo], "peer_high": [hi]})
    return items, institutions, missing


def month_intensity(filing: Filing, iid: str, month: str, items: pd.DataFrame) -> float:
    """kgce per m2 of `iid` in `month` with `items` as its bills of the month (the meters
    and other bills as stored; meters win, as everywhere)."""
    use = _month_use(filing, month, [iid])
    use = use[~((use["source"] == "bill") & use["energy"].isin(items["energy"]))]
    start, end = month_period(month)
    nxt = pd.Timestamp(end) + pd.Timedelta(days=1)
    bills = split_bills(items_to_bills(iid, month, items[["energy", "quantity", "unit", "cost_cny"]]), "month",
                        filing.registry.timezone, pd.Timestamp(start), nxt, filing.factors) if len(items) else None
    frame = pd.concat([u for u in (use, bills) if u is not None and len(u)], ignore_index=True) \
        if (len(use) or bills is not None) else use
    if frame.empty:
        return float("nan")
    ind = indicators(frame, filing.registry, filing.factors, freq="month")
    row = ind[ind["institution_id"] == iid]
    return float(row["kgce_per_m2"].iloc[0]) if len(row) else float("nan")


# -- operations --------------------------------------------------------------------------------
def submit(principal: Any, payload: dict | SubmissionBody, filing: Filing, source: str = "api") -> Result:
    """POST /api/v1/submissions: 201 {"status": "submitted", "warnings": [...]} (the warnings
    accepted with a reason), or 422 {"problems": [...], "warnings": [...]} (the errors, and
    the warnings still needing a reason). Forbidden outside the principal's scope."""
    try:
        body = payload if isinstance(payload, SubmissionBody) else SubmissionBody.model_validate(payload)
    except pydantic.ValidationError as exc:
        return _refused([_problem(".".join(str(x) for x in e["loc"]), e["msg"],
                                  index=next((x for x in e["loc"] if isinstance(x, int)), None))
                         for e in exc.errors(include_url=False, include_input=False, include_context=False)])
    iid = require_institution(principal, filing.registry, body.institution_id)
    try:
        p = parse_month(body.month)
    except ValueError as exc:
        return _refused([_problem("month", str(exc))])
    if p >= pd.Period(filing.local_today(), freq="M"):
        return _refused([_problem("month", f"{body.month} is not over yet: a month is submitted after it ends",
                                  code="FUTURE_MONTH")])
    if not body.items:
        return _refused([_problem("items", "no figures: submit at least one item", code="NO_ITEMS")])
    old = filing.book.get(iid, body.month)
    current = old["status"] if old else "missing"
    reopen = current == "approved"
    reasons = {k: v for k, v in body.reasons.items() if isinstance(v, str) and v.strip()}
    findings = run_checks(*prepare(filing, body))
    errors, open_warnings = blocking(findings, reasons)
    warnings = _finding_json(open_warnings)
    if reopen and REOPEN_REASON not in reasons:
        warnings.append({"code": REOPEN_REASON, "severity": "warning", "index": None, "field": "reasons",
                         "energy": None, "message": "the month is approved: a change needs a written reason and "
                                                    "reopens review",
                         "message_zh": "该月已审核：修改须填写原因，并重新进入审核",
                         "message_en": "the month is approved: a change needs a written reason and reopens review"})
    if len(errors) or warnings:
        return _refused(_finding_json(errors), warnings)
    status = transition(current, "submit", principal.role, reason=reasons.get(REOPEN_REASON))
    ok_items = pd.DataFrame([i.model_dump() for i in body.items])
    bills = items_to_bills(iid, body.month, ok_items)
    who, at = _who(principal), utc_now()
    accepted = findings[findings["severity"] == "warning"]
    codes = sorted(set(accepted["code"]) | ({REOPEN_REASON} if reopen else set()))
    why = "; ".join(f"{c}: {reasons[c]}" for c in codes if c in reasons) or None
    start, end = month_period(body.month)
    try:
        with filing.book.transaction():
            result = filing.store.import_bills(bills, replace=True)
            filing.book.add_audit(bill_audit_rows(result, who, source, reason=why, action="submit", at=at))
            extra = [(f, getattr(body, f), getattr(filing.registry.institution_by_id[iid], f))
                     for f in ("floor_area_m2", "occupants") if getattr(body, f) is not None]
            filing.book.add_audit(pd.DataFrame(
                [{"at": at, "who": who, "source": source, "action": "submit", "institution_id": iid,
                  "period_start": start, "period_end": end, "energy": None, "field": f, "old": f"{reg:g}",
                  "new": f"{given:g}", "reason": why} for f, given, reg in extra]
                + [{"at": at, "who": who, "source": source, "action": "submit", "institution_id": iid,
                    "period_start": start, "period_end": end, "energy": None, "field": "status", "old": current,
                    "new": status, "reason": why}]))
            filing.book.set_status(iid, body.month, status, who, comment=None, warnings=codes, reasons=reasons, at=at)
    except ImportRejected as exc:
        return _refused([_problem("items", p, code="BILL_CONFLICT") for p in exc.problems])
    return Result(201, {"status": status, "warnings": _finding_json(accepted)})


def review(principal: Any, institution_id: str, month: str, action: str, filing: Filing,
           comment: str | None = None, source: str = "api") -> Result:
    """POST .../{institution_id}/{month}/approve or /return: 200 {"institution_id", "month",
    "status", "comment"}, or 422 with the reason it is refused."""
    iid = require_institution(principal, filing.registry, institution_id)
    try:
        parse_month(month)
    except ValueError as exc:
        return _refused([_problem("month", str(exc))])
    old = filing.book.get(iid, month)
    current = old["status"] if old else "missing"
    try:
        status = transition(current, action, principal.role, comment=comment)
    except TransitionError as exc:
        if exc.code == "NOT_REVIEWER":
            raise Forbidden(exc.en) from None
        return _refused([_problem("comment" if exc.code == "COMMENT_REQUIRED" else "status", exc.en, code=exc.code)])
    who, at = _who(principal), utc_now()
    start, end = month_period(month)
    note = (comment or "").strip() or None
    with filing.book.transaction():
        filing.book.add_audit(pd.DataFrame([{
            "at": at, "who": who, "source": source, "action": action, "institution_id": iid, "period_start": start,
            "period_end": end, "energy": None, "field": "status", "old": current, "new": status, "reason": note}]))
        filing.book.set_status(iid, month, status, who, comment=note if action == "return" else None, at=at)
    return Result(200, {"institution_id": iid, "month": month, "status": status, "comment": note})


def approve(principal: Any, institution_id: str, month: str, payload: dict | None, filing: Filing,
            source: str = "api") -> Result:
    """Approve a submitted month (region managers and admins)."""
    return review(principal, institution_id, month, "approve", filing, (payload or {}).get("comment"), source)


def return_month(principal: Any, institution_id: str, month: str, payload: dict | None, filing: Filing,
                 source: str = "api") -> Result:
    """Return a submitted (or approved) month with the reviewer's `comment`."""
    return review(principal, institution_id, month, "return", filing, (payload or {}).get("comment"), source)


def list_submissions(principal: Any, month: str, filing: Filing) -> Result:
    """GET /api/v1/submissions?month=YYYY-MM: every institution in scope with its status
    (missing | submitted | approved | returned), the deadline and days left."""
    try:
        parse_month(month)
    except ValueError as exc:
        return _refused([_problem("month", str(exc))])
    frame = status_table(principal, month, filing)
    today = filing.local_today()
    rows = frame.to_dict("records")
    return Result(200, {"month": month, "deadline": deadline(month, filing.deadline_day).isoformat(),
                        "days_left": days_left(month, today, filing.deadline_day),
                        "submissions": [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                                        for r in rows]})


STATUS_COLUMNS = ["institution_id", "name", "region", "category", "status", "status_zh", "updated_at", "updated_by",
                  "comment"]


def status_table(principal: Any, month: str, filing: Filing) -> pd.DataFrame:
    """STATUS_COLUMNS for every institution `principal` may see, in registry order."""
    visible = institution_ids(principal, filing.registry)
    inst = filing.registry.institutions_frame()
    inst = inst[inst["id"].isin(visible)].reset_index(drop=True)
    recorded = filing.book.statuses(month, visible)
    status = statuses_for(inst["id"].tolist(), recorded)
    rec = recorded.set_index("institution_id") if len(recorded) else pd.DataFrame(
        columns=["updated_at", "updated_by", "comment"])
    return pd.DataFrame({
        "institution_id": inst["id"].to_numpy(object), "name": inst["name"].to_numpy(object),
        "region": inst["region"].to_numpy(object), "category": inst["category"].to_numpy(object),
        "status": status.to_numpy(object), "status_zh": status.map(STATUS_ZH).to_numpy(object),
        "updated_at": inst["id"].map(rec["updated_at"]).astype(object).to_numpy(),
        "updated_by": inst["id"].map(rec["updated_by"]).astype(object).to_numpy(),
        "comment": inst["id"].map(rec["comment"]).astype(object).to_numpy()})[STATUS_COLUMNS]


def audit_trail(principal: Any, institution_id: str, filing: Filing, month: str | None = None) -> pd.DataFrame:
    """The audit rows (storage.submissions.AUDIT_COLUMNS) of one institution in scope."""
    iid = require_institution(principal, filing.registry, institution_id)
    return filing.book.audit([iid], month)


PREFILL_COLUMNS = ["energy", "metered", "quantity", "unit", "canonical_unit", "quantity_c", "cost_cny",
                   "estimated_share", "last_year_c"]


def prefill(principal: Any, institution_id: str, month: str, filing: Filing) -> pd.DataFrame:
    """What the entry form shows for one institution and month (PREFILL_COLUMNS): the
    metered energies with the meters' figure and its estimated share (read-only), and
    the energies entered before (the stored bills of the month) or expected (billed the
    same month last year), with last year's figure."""
    iid = require_institution(principal, filing.registry, institution_id)
    start, end = month_period(month)
    use = _month_use(filing, month, [iid])
    use = use[use["is_main"].astype(bool)]
    meters = use[use["source"] == "meter"]
    q = meters["quantity"].to_numpy(float)
    est = meters.assign(_e=q * meters["estimated_share"].to_numpy(float)).groupby("energy")[["quantity", "_e"]].sum()
    m_rows = pd.DataFrame({"energy": est.index.to_numpy(object), "metered": True,
                           "quantity": est["quantity"].to_numpy(float),
                           "unit": est.index.map(CANONICAL_UNIT).to_numpy(object),
                           "cost_cny": np.nan,
                           "estimated_share": np.where(est["quantity"] > 0, est["_e"] / est["quantity"].where(
                               est["quantity"] > 0, 1.0), 0.0)})
    bills = filing.store.read_bills([iid])
    if len(bills):
        bills = bills[(pd.to_datetime(bills["period_start"]).dt.date == start)
                      & (pd.to_datetime(bills["period_end"]).dt.date == end)]
    b_rows = pd.DataFrame({"energy": bills["energy"].to_numpy(object) if len(bills) else [], "metered": False,
                           "quantity": bills["quantity"].to_numpy(float) if len(bills) else [],
                           "unit": bills["unit"].to_numpy(object) if len(bills) else [],
                           "cost_cny": bills["cost_cny"].to_numpy(float) if len(bills) else [],
                           "estimated_share": 0.0})
    last = _month_use(filing, last_year_month(month), [iid])
    last = last[last["is_main"].astype(bool)].groupby("energy")["quantity"].sum()
    expected = [e for e in last.index if e not in set(m_rows["energy"]) | set(b_rows["energy"]) and e != "pv"]
    e_rows = pd.DataFrame({"energy": expected, "metered": False, "quantity": np.nan,
                           "unit": [CANONICAL_UNIT[e] for e in expected], "cost_cny": np.nan, "estimated_share": 0.0})
    out = pd.concat([f for f in (m_rows, b_rows, e_rows) if len(f)], ignore_index=True) if (
        len(m_rows) or len(b_rows) or len(e_rows)) else pd.DataFrame(columns=PREFILL_COLUMNS)
    out["canonical_unit"] = out["energy"].map(CANONICAL_UNIT)
    ok = out["quantity"].notna().to_numpy(bool)
    qc = np.full(len(out), np.nan)
    if ok.any():
        qc[ok] = to_canonical(out["quantity"][ok], out["energy"][ok], out["unit"][ok], filing.factors)
    out["quantity_c"] = qc
    out["last_year_c"] = out["energy"].map(last).astype(float)
    order = {e: i for i, e in enumerate(ENERGIES)}
    return out.sort_values("energy", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)[PREFILL_COLUMNS]
