"""Argument types of the command line: bad values are argparse errors.

Argument types of the `civicwatt` command line: a bad value is an argparse error (exit 2,
one line naming the option and the value cut to 80 characters), never a traceback later."""

from __future__ import annotations

import argparse
import math
import os
import re
from urllib.parse import urlsplit

import pandas as pd

from collectors.shard import parse_shard
from core.textfile import echo

FIRST_YEAR, LAST_YEAR = 1990, 2100  # core.csvio.EARLIEST onwards: no public-institution data is older
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_NAME_MAX = 255  # bytes in one path component (Linux NAME_MAX)
_PATH_MAX = 4096


def _bad(what: str, text: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{what}, not '{echo(text)}'")


def path(text: str) -> str:
    """A file or directory name the operating system can take (no NUL, components under
    NAME_MAX bytes); whether it exists or is readable is the verb's check."""
    raw = os.fsencode(text) if "\x00" not in text else b"\x00"
    if b"\x00" in raw or len(raw) > _PATH_MAX or any(len(c) > _NAME_MAX for c in raw.split(b"/")):
        raise _bad("not a usable path (a NUL character, or a name over 255 bytes)", text)
    return text


def _int_in(text: str, lo: int, hi: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise _bad(f"expected {what} from {lo} to {hi}", text)
    return value


def port(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    return _int_in(text, 0, 65535, "a port number")


def count(text: str) -> int:
    """A non-negative integer under a million (days, seeds)."""
    return _int_in(text, 0, 999_999, "a whole number")


def workers(text: str) -> int:
    """A number of worker processes, 1 to 256."""
    return _int_in(text, 1, 256, "a number of workers")


def seconds(text: str) -> float:
    """A finite, positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise _bad("expected a number of seconds", text) from None
    if not (math.isfinite(value) and 0 < value <= 366 * 86400):
        raise _bad("expected a number of seconds, more than 0 and at most a year", text)
    return value


def whole_seconds(text: str) -> int:
    """`seconds`, whole."""
    value = seconds(text)
    if value != int(value):
        raise _bad("expected a whole number of seconds", text)
    return int(value)


def year(text: str) -> int:
    """A calendar year FIRST_YEAR..LAST_YEAR."""
    return _int_in(text, FIRST_YEAR, LAST_YEAR, "a year")


def month(text: str) -> str:
    """'YYYY-MM', a real month of FIRST_YEAR..LAST_YEAR (kept as text: the verbs parse it)."""
    if not _MONTH.match(text) or not 1 <= int(text[5:]) <= 12 or not FIRST_YEAR <= int(text[:4]) <= LAST_YEAR:
        raise _bad(f"expected a month YYYY-MM from {FIRST_YEAR} to {LAST_YEAR}", text)
    return text


def when(text: str) -> str:
    """A date (YYYY-MM-DD) or ISO 8601 time in FIRST_YEAR..LAST_YEAR (kept as text)."""
    try:
        t = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError, NotImplementedError):
        t = None
    if t is None or pd.isna(t) or not FIRST_YEAR <= t.year <= LAST_YEAR:
        raise _bad(f"expected a date YYYY-MM-DD (or an ISO 8601 time) from {FIRST_YEAR} to {LAST_YEAR}", text)
    return text


def shard(text: str) -> str:
    """'I/N' with 1 <= I <= N (collectors.shard.parse_shard; kept as text)."""
    try:
        parse_shard(text)
    except ValueError:
        raise _bad("expected I/N with 1 <= I <= N", text) from None
    return text


def store_url(text: str) -> str | None:
    """The problem with a store URL, or None: an embedded path must be `path`-clean, an
    InfluxDB URL must have a host and a port in range."""
    if text.startswith("embedded:"):
        try:
            path(text.removeprefix("embedded:"))
        except argparse.ArgumentTypeError as exc:
            return str(exc)
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises on a port out of range)
    except ValueError as exc:
        return f"{exc}: '{echo(text)}'"
    if not parts.hostname:
        return f"no host in '{echo(text)}'"
    return None
