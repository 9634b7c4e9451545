"""The submission status model (models.submission) and its book (storage.submissions)."""

from __future__ import annotations

import os
import stat
from datetime import date

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.submission import (
    STATUSES,
    TransitionError,
    days_left,
    deadline,
    items_to_bills,
    month_period,
    parse_month,
    reporting_month,
    statuses_for,
    transition,
)
from storage.submissions import AUDIT_COLUMNS, SubmissionBook


def test_transitions_follow_the_review_cycle():
    assert transition("missing", "submit", "institution") == "submitted"
    assert transition("returned", "submit", "institution") == "submitted"
    assert transition("submitted", "approve", "region") == "approved"
    assert transition("submitted", "return", "admin", comment="电费偏高") == "returned"
    with pytest.raises(TransitionError) as info:
        transition("approved", "submit", "institution")
    assert info.value.code == "LOCKED" and "原因" in info.value.zh
    assert transition("approved", "submit", "institution", reason="账单更正") == "submitted"
    with pytest.raises(TransitionError) as info:
        transition("submitted", "approve", "institution")
    assert info.value.code == "NOT_REVIEWER"
    with pytest.raises(TransitionError) as info:
        transition("missing", "approve", "region")
    assert info.value.code == "NOT_SUBMITTED"
    with pytest.raises(TransitionError) as info:
        transition("submitted", "return", "region", comment="  ")
    assert info.value.code == "COMMENT_REQUIRED"


@given(st.sampled_from(STATUSES), st.sampled_from(["submit", "approve", "return"]),
       st.sampled_from(["admin", "region", "institution"]), st.text(max_size=3), st.text(max_size=3))
def test_transition_lands_in_a_status_or_refuses(current, action, role, reason, comment):
    try:
        out = transition(current, action, role, reason=reason, comment=comment)
    except TransitionError as exc:
        assert exc.code in {"LOCKED", "NOT_REVIEWER", "NOT_SUBMITTED", "COMMENT_REQUIRED"}
        return
    assert out in STATUSES
    assert out != "approved" or (current == "submitted" and role != "institution")
    assert not (current == "approved" and action == "submit") or reason.strip()


def test_months_and_deadlines():
    assert month_period("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert deadline("2026-11") == date(2026, 12, 15)
    assert deadline("2026-12", day=31) == date(2027, 1, 31)
    assert deadline("2027-01", day=31) == date(2027, 2, 28)
    assert days_left("2026-11", date(2026, 12, 2)) == 13
    assert days_left("2026-11", date(2026, 12, 16)) == -1
    assert reporting_month(date(2027, 1, 9)) == "2026-12"
    for bad in ("2026-13", "2026-1", "26-01", 202601):
        with pytest.raises(ValueError):
            parse_month(bad)


def test_items_become_bills_of_the_month():
    items = pd.DataFrame({"energy": ["water", "gasoline"], "quantity": [12.5, 80], "unit": ["t", "L"],
                          "cost_cny": [40.0, None]})
    bills = items_to_bills("HB-1", "2026-02", items)
    assert bills["period_start"].tolist() == [date(2026, 2, 1)] * 2
    assert bills["period_end"].tolist() == [date(2026, 2, 28)] * 2
    assert bills["quantity"].tolist() == [12.5, 80.0]
    assert pd.isna(bills["cost_cny"].iloc[1])


def test_book_statuses_audit_and_reminders(tmp_path):
    book = SubmissionBook(tmp_path / "data")
    assert stat.S_IMODE(os.stat(book.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "data").st_mode) == 0o700
    book.set_status("I1", "2026-11", "submitted", "alice", warnings=["YOY_CHANGE"], reasons={"YOY_CHANGE": "新楼"})
    book.set_status("I1", "2026-11", "returned", "bob", comment="请核对")
    got = book.get("I1", "2026-11")
    assert (got["status"], got["updated_by"], got["comment"]) == ("returned", "bob", "请核对")
    assert got["reasons"] == {"YOY_CHANGE": "新楼"}  # kept from the submission
    assert book.get("I2", "2026-11") is None
    assert statuses_for(["I1", "I2"], book.statuses("2026-11")).tolist() == ["returned", "missing"]
    book.add_audit(pd.DataFrame([{"who": "alice", "source": "form", "action": "submit", "institution_id": "I1",
                                  "period_start": date(2026, 11, 1), "period_end": date(2026, 11, 30),
                                  "energy": "water", "field": "quantity", "old": None, "new": "12.5 t"}]))
    audit = book.audit(["I1"], "2026-11")
    assert list(audit.columns) == AUDIT_COLUMNS
    assert audit[["old", "new", "period_start"]].iloc[0].tolist() == [None, "12.5 t", "2026-11-01"]
    assert book.audit(["I2"]).empty and book.audit(month="2026-10").empty


def test_book_transaction_rolls_back_everything(tmp_path):
    book = SubmissionBook(tmp_path)
    with pytest.raises(RuntimeError), book.transaction():
        book.set_status("I1", "2026-11", "submitted", "alice")
        book.add_audit(pd.DataFrame([{"who": "alice", "source": "api", "action": "submit",
                                      "institution_id": "I1"}]))
        raise RuntimeError("the bill write failed")
    assert book.get("I1", "2026-11") is None and book.audit().empty
