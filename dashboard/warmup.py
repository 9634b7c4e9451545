"""Preparing the first pages when the dashboard's server starts.

`serve` starts one background thread (`WarmUp.start`) as soon as the server listens: it
computes what the first pages show for the administrator's default scope (the top
region) in this and the last complete year: the overview's figures and its period view,
the rankings, the plan panel, the year-end assessment and the savings verifications.
Every result lands in the cache the page reads (`quotas.tables.YearTables.cached`,
`dashboard.assessments.Assessments`, `dashboard.integrations.MVProjects`), each of which
computes a key once: a page that asks while the warm-up computes the same table waits
for that result instead of computing it a second time. Nothing here is on a request's
path. `ready` is set when it is done (`seconds`: how long it took); `civicwatt serve`
and `demo` print it, the page benchmark waits for it. A failure is logged and ignored:
the pages then compute what they need themselves."""

from __future__ import annotations

import logging
import threading
import time

from core.users import User
from dashboard.context import Context

log = logging.getLogger(__name__)
ADMIN = User("warm-up", "admin", None)  # whose default scope is prepared: the top region


class WarmUp:
    """The start-up warm-up of one dashboard (module docstring)."""

    def __init__(self, c: Context):
        self.c = c
        self.ready = threading.Event()
        self.seconds: float | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WarmUp:
        """Start `run` in a daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="civicwatt-warm-up", daemon=True)
            self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the warm-up is done (True) or `timeout` seconds passed (False)."""
        return self.ready.wait(timeout)

    def run(self) -> None:
        t0 = time.perf_counter()
        try:
            self._warm()
        except Exception:  # a store closed under us: the pages compute what they need themselves
            log.warning("dashboard warm-up stopped", exc_info=True)
        finally:
            self.seconds = time.perf_counter() - t0
            self.ready.set()

    def _warm(self) -> None:
        from core.access import default_region
        from dashboard import period
        from dashboard.assessments import assessments_of, complete_years
        from dashboard.pages import overview

        c = self.c
        year = c.service.current_year()
        scope = overview.scope_of(c, ADMIN, default_region(ADMIN, c.registry), "zh")
        overview.numbers(c, scope, year)  # the year's sums, targets, projections, months, costs
        c.service.group_yoy(scope.insts, year)  # the running year's ranking tables
        period.frames(c, scope.insts, period.parse(c, None, None))  # the default date range
        c.service.ranking_table(year - 1)  # the ranking opens on the last complete year
        c.service.ranking_table(year)
        from dashboard.plan_panel import plan_panel

        plan_panel(c, scope.insts, scope.target_scope, year, "zh")
        years = complete_years(c)
        if years and c.quotas.config() is not None:
            assessments_of(c).report(years[0])  # the assessment page's default year
        for p in c.mv.projects():
            if p["error"] is None:
                c.mv.result(p["file"])
