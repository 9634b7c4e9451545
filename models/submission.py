"""Monthly submissions (统计填报): the status model, deadlines and submitted items as bills (pure).

Status per institution and month (interfaces.md § Monthly submissions):
missing 未填报 -> submitted 已提交 -> approved 已审核 | returned 已退回 (with the reviewer's
comment). An institution submits (again after a return, or before review); a region manager
or the administrator approves or returns. An approved month is locked: a new submission
needs a written reason (`REOPEN_REASON`) and reopens review (status submitted again).

Submitted items are stored as bills of the whole month (BILL_COLUMNS of `storage.base`), in
the unit submitted (one of `core.vocab.BILL_UNITS`): the stored figures feed every indicator
exactly as imported bills do (`models.energy.split_bills`, `to_canonical`).
"""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pandas as pd

from core.registry import SubmissionSettings

STATUSES: tuple[str, ...] = ("missing", "submitted", "approved", "returned")
STATUS_ZH: dict[str, str] = {"missing": "未填报", "submitted": "已提交", "approved": "已审核", "returned": "已退回"}
ACTIONS: tuple[str, ...] = ("submit", "approve", "return")
REVIEWER_ROLES: tuple[str, ...] = ("region", "admin")
SOURCES: tuple[str, ...] = ("form", "upload", "api", "import")
REOPEN_REASON = "REOPEN"  # the `reasons` key a change after approval needs
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class TransitionError(Exception):
    """An action the status model refuses: `code` (stable), zh and en messages."""

    def __init__(self, code: str, en: str, zh: str):
        self.code, self.en, self.zh = code, en, zh
        super().__init__(en)


def parse_month(month: str) -> pd.Period:
    """'YYYY-MM' as a monthly Period; ValueError otherwise."""
    if not isinstance(month, str) or not MONTH_RE.match(month):
        raise ValueError(f"month must be YYYY-MM, not {str(month)[:80]!r}")
    return pd.Period(month, freq="M")


def month_period(month: str) -> tuple[date, date]:
    """First and last day (inclusive) of `month`."""
    p = parse_month(month)
    return p.start_time.date(), p.end_time.date()


def deadline(month: str, day: int = SubmissionSettings().deadline_day) -> date:
    """The date by which `month`'s figures are due: `day` of the next month (clipped to its length;
    the default and the registry's setting: `core.registry.SubmissionSettings`)."""
    nxt = parse_month(month) + 1
    return date(nxt.year, nxt.month, min(day, nxt.days_in_month))


def days_left(month: str, today: date, day: int = SubmissionSettings().deadline_day) -> int:
    """Days from `today` to the deadline of `month` (0 on the day, negative when overdue)."""
    return (deadline(month, day) - today).days


def reporting_month(today: date) -> str:
    """The month being reported on `today`: the previous calendar month."""
    return str(pd.Period(today, freq="M") - 1)


def transition(current: str, action: str, role: str, *, reason: str | None = None,
               comment: str | None = None) -> str:
    """The status after `action` by a user of `role` on a month in status `current`, or
    TransitionError. submit: missing | returned | submitted -> submitted; approved ->
    submitted only with a `reason` (it reopens review). approve: submitted -> approved;
    return: submitted | approved -> returned, with a `comment`; both for REVIEWER_ROLES."""
    if current not in STATUSES:
        raise ValueError(f"unknown status {current!r}")
    if action == "submit":
        if current == "approved" and not (reason or "").strip():
            raise TransitionError("LOCKED", "the month is approved: a change needs a written reason and reopens review",
                                  "该月已审核：修改须填写原因，并重新进入审核")
        return "submitted"
    if action not in ("approve", "return"):
        raise ValueError(f"unknown action {action!r}")
    if role not in REVIEWER_ROLES:
        raise TransitionError("NOT_REVIEWER", "only a region manager or the administrator reviews submissions",
                              "只有地区管理员或系统管理员可以审核")
    if action == "approve":
        if current != "submitted":
            raise TransitionError("NOT_SUBMITTED", f"only a submitted month can be approved (it is {current})",
                                  f"只有已提交的月份可以审核通过（当前：{STATUS_ZH[current]}）")
        return "approved"
    if current not in ("submitted", "approved"):
        raise TransitionError("NOT_SUBMITTED", f"only a submitted or approved month can be returned (it is {current})",
                              f"只有已提交或已审核的月份可以退回（当前：{STATUS_ZH[current]}）")
    if not (comment or "").strip():
        raise TransitionError("COMMENT_REQUIRED", "returning a month needs a comment", "退回须填写意见")
    return "returned"


def statuses_for(institution_ids: list[str], recorded: pd.DataFrame) -> pd.Series:
    """Status of each of `institution_ids` (index) from `recorded` (institution_id, status):
    'missing' where nothing is recorded."""
    known = recorded.set_index("institution_id")["status"] if len(recorded) else pd.Series(dtype=object)
    return pd.Series(pd.Index(institution_ids).map(known), index=institution_ids, dtype=object).fillna("missing")


ITEM_COLUMNS = ["energy", "quantity", "unit", "cost_cny"]


def items_to_bills(institution_id: str, month: str, items: pd.DataFrame) -> pd.DataFrame:
    """Submitted items (ITEM_COLUMNS) as bills of the whole `month` (BILL_COLUMNS)."""
    start, end = month_period(month)
    n = len(items)
    return pd.DataFrame({
        "institution_id": np.full(n, institution_id, dtype=object),
        "energy": items["energy"].astype(str).to_numpy(object),
        "period_start": np.full(n, start, dtype=object),
        "period_end": np.full(n, end, dtype=object),
        "quantity": pd.to_numeric(items["quantity"], errors="coerce").to_numpy(float),
        "unit": items["unit"].astype(str).to_numpy(object),
        "cost_cny": pd.to_numeric(items.get("cost_cny", pd.Series(np.nan, index=items.index)),
                                  errors="coerce").to_numpy(float),
    })
