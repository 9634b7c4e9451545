"""Callback inputs checked for the type the page sends: anything else (a crafted request) stops the callback.

A Dash callback receives whatever JSON the request carries; the components of our
pages send strings, integers, lists of sort columns. These helpers return the value
when it has the expected type and raise `PreventUpdate` otherwise, which Dash answers
with 204 No Content: a clean empty answer instead of an exception (and HTTP 500).
"""

from __future__ import annotations

from typing import Any

from dash.exceptions import PreventUpdate

MAX_TEXT = 1000  # longer than any id, date or search our components send
MAX_PAGE_SIZE = 1000


def text(value: Any) -> str | None:
    """A string (or None) of sane length."""
    if value is None or (isinstance(value, str) and len(value) <= MAX_TEXT):
        return value
    raise PreventUpdate


def integer(value: Any, lo: int | None = None, hi: int | None = None) -> int | None:
    """An integer (or None; a whole-number float or digit string from a picker is taken
    too), within [lo, hi] when given. Booleans are not integers here."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise PreventUpdate
    if (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) <= 12):
        value = int(value)
    if not isinstance(value, int) or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise PreventUpdate
    return value


def sort_by(value: Any) -> list[dict[str, str]]:
    """A DataTable `sort_by`: a list of {column_id: str, direction: asc|desc}."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 20:
        raise PreventUpdate
    for item in value:
        if not (isinstance(item, dict) and isinstance(item.get("column_id"), str)
                and item.get("direction") in ("asc", "desc")):
            raise PreventUpdate
    return value


def clicks(value: Any) -> list[int | None]:
    """n_clicks of a pattern-matching set of buttons: a list of integers or None."""
    value = value if isinstance(value, list) else [value]
    return [integer(v, lo=0) for v in value]


MAX_ITEMS = 1000  # more than any checklist, multi-select or table selection we show


def texts(value: Any, max_items: int = MAX_ITEMS) -> list[str]:
    """A list of strings (a checklist's or multi-select's value; None: empty)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > max_items:
        raise PreventUpdate
    return [v for v in (text(x) for x in value) if v is not None]


def rows(value: Any) -> list[int]:
    """A DataTable's `selected_rows`: row indices (None: none selected)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ITEMS * 10:
        raise PreventUpdate
    return [v for v in (integer(x, lo=0) for x in value) if v is not None]


def cell(value: Any) -> dict[str, Any] | None:
    """A DataTable's `active_cell`: {row, column, column_id, row_id?}; column_id and
    row_id come back as strings."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("column_id"), str):
        raise PreventUpdate
    row_id = value.get("row_id")
    if (row_id is not None and not isinstance(row_id, str | int)) or isinstance(row_id, bool):
        raise PreventUpdate
    return {"column_id": text(value["column_id"]), "row_id": None if row_id is None else text(str(row_id))}


def record_ids(value: Any) -> list[str | None]:
    """The `id` of each row of a DataTable's `data` sent back as State (None where a row
    has no string id)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ITEMS * 10:
        raise PreventUpdate
    return [r["id"] if isinstance(r, dict) and isinstance(r.get("id"), str) and len(r["id"]) <= MAX_TEXT else None
            for r in value]
