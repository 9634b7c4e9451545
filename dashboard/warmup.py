"""Preparing the first screen while the user logs in.

The first request to the dashboard (usually the login page) starts one background
thread that computes what the first pages need: this year's and last year's tables of
the overview (the year's sums, the targets and projections) and the ranking's last
complete year. Each lands in the data service's caches
(`DataService._cached` lets a page that asks meanwhile wait for the result instead of
computing it twice), so the overview after login is drawn from memory. A failure is
logged and ignored: the page then computes what it needs itself."""

from __future__ import annotations

import logging
import threading
from typing import Any

import flask

from dashboard.context import Context

log = logging.getLogger(__name__)
ENABLED = True  # the page benchmark switches it off to time pages without a head start


def warm(c: Context) -> None:
    """Fill the caches the first pages read (the overview's, then the ranking's). Not the
    savings verifications: their cache does not make a second caller wait, so a warm-up
    racing the M&V page would verify twice."""
    year = c.service.current_year()
    try:
        c.service.target_status(year)
        c.service.indicators(year)
        c.service.monthly_energy(year)
        c.service.ranking_table(year - 1)
    except Exception:  # a store closed under us: the pages compute what they need themselves
        log.debug("dashboard warm-up stopped", exc_info=True)


def register(server: flask.Flask, c: Context) -> None:
    """Start `warm` in a daemon thread at the first request the server gets."""
    started = threading.Event()

    @server.before_request
    def start_warm_up() -> Any:
        if ENABLED and not started.is_set():
            started.set()
            threading.Thread(target=warm, args=(c,), name="civicwatt-warm-up", daemon=True).start()
        return None
