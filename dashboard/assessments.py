"""The year-end assessment for the dashboard, built once per year and cached.

The year-end assessment for the dashboard: built once per complete year and kept for a
while, cut to the signed-in user's scope, and served as the assessment and notice
workbooks and the printable notice page.

The numbers are `reports.assessment.build_assessment`'s (the same as `civicwatt assess`),
with the open data-quality alerts of the dashboard's outbox (`alerts.quality`). Ranks are
computed among all institutions and regions before the scope applies (as in the ranking);
who sees which rows is decided in `core.access` (`visible_filter`,
`assessed_regions`, `region_ids`). Routes (login required, like every route):
`/download/assessment?year=Y` and `/download/notice?year=Y` (xlsx), and
`/assessment/notice?year=Y` (the printable notice, HTML with print CSS).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import flask
from cachetools import TTLCache

from core.access import Principal, assessed_regions, region_ids, visible_filter
from dashboard.context import Context

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REPORTS_KEPT = 8  # assessed years kept at once


def complete_years(c: Context) -> list[int]:
    """The complete years the pages offer, newest first."""
    return [y for y in c.years() if y < c.service.current_year()]


class Assessments:
    """The assessments of one dashboard (one per complete year and quota file, kept for
    the data service's `cache_ttl_s`)."""

    def __init__(self, c: Context):
        self.c = c
        self._cache: TTLCache = TTLCache(maxsize=REPORTS_KEPT, ttl=c.service.cache_ttl_s, timer=time.monotonic)
        self._lock = threading.Lock()

    def report(self, year: int) -> Any:
        """The `reports.assessment.AssessmentReport` of `year` for every institution."""
        from alerts.quality import open_quality_alerts
        from reports.assessment import build_assessment

        cfg = self.c.quotas.config()
        key = (year, id(cfg), self.c.service.generation)  # a month reported from below: assessed again
        with self._lock:  # one computation at a time: the next caller gets the cached one
            if key not in self._cache:
                outbox = self.c.outbox()
                alerts = outbox.list_alerts(open_only=True) if outbox is not None else []
                self._cache[key] = build_assessment(
                    self.c.store, self.c.registry, cfg, year,
                    open_quality_alerts(alerts, year, self.c.registry.timezone), factors=self.c.service.factors)
            return self._cache[key]

    def plan_inputs(self, year: int) -> Any:
        """What the plan's indicators of `year` need (`quotas.assessment.AssessmentInputs`): the
        assessment's own when it has been built, else `reports.assessment.plan_inputs` on the
        data service's year table (the one the ranking shows), so the overview's panel costs
        little more than the quota levels."""
        from reports.assessment import plan_inputs

        cfg = self.c.quotas.config()
        current = self.c.service.indicators(year)  # cached by the data service, outside our lock
        with self._lock:
            report = self._cache.get((year, id(cfg)))
            if report is not None:
                return report.inputs
            key = ("plan", year, id(cfg))
            if key not in self._cache:
                self._cache[key] = plan_inputs(self.c.store, self.c.registry, cfg, year,
                                               factors=self.c.service.factors, current=current)
            return self._cache[key]

    def for_user(self, user: Principal, year: int) -> Any:
        """The report of `year` cut to what `user` may see: the institutions they see, the
        regions below their scope, the plan of the regions they may choose (and of the
        whole portfolio for the administrator)."""
        from reports.assessment import scoped

        visible = visible_filter(user, self.c.registry)
        plan = None if visible is None else region_ids(user, self.c.registry)
        return scoped(self.report(year), None if visible is None else set(visible),
                      assessed_regions(user, self.c.registry), plan)


_LOCK = threading.Lock()


def assessments_of(c: Context) -> Assessments:
    """The one `Assessments` of the dashboard of `c` (the page, the overview's panel and
    the warm-up share it), kept in `c.shared`."""
    with _LOCK:
        if "assessments" not in c.shared:
            c.shared["assessments"] = Assessments(c)
        return c.shared["assessments"]


def complete_year(c: Context, value: Any) -> int | None:
    """`value` as a complete year that can be assessed (None if it is not one)."""
    try:
        year = int(value)
    except (TypeError, ValueError):
        return None
    return year if 1990 <= year < c.service.current_year() else None


def _year(c: Context) -> int:
    year = complete_year(c, flask.request.args.get("year"))
    if year is None:
        flask.abort(400)
    return year


def _user(c: Context) -> Principal:
    user = c.current_user()
    if user is None:
        flask.abort(401)
    return user


def _xlsx(write: Any, report: Any, name: str) -> flask.Response:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.xlsx"
        write(report, out)
        data = out.read_bytes()
    return flask.Response(data, mimetype=XLSX_MIME, headers={"Content-Disposition": f"attachment; filename={name}"})


def register(server: flask.Flask, c: Context, a: Assessments) -> None:
    """The assessment's downloads and printable notice (module docstring)."""
    from reports.assessment import notice_html, write_assessment, write_notice

    def assessment_xlsx() -> flask.Response:
        user, year = _user(c), _year(c)
        return _xlsx(write_assessment, a.for_user(user, year), f"assessment-{year}.xlsx")

    def notice_xlsx() -> flask.Response:
        user, year = _user(c), _year(c)
        return _xlsx(write_notice, a.for_user(user, year), f"notice-{year}.xlsx")

    def notice_page() -> flask.Response:
        user, year = _user(c), _year(c)
        return flask.Response(notice_html(a.for_user(user, year)), mimetype="text/html")

    server.add_url_rule("/download/assessment", "download_assessment", assessment_xlsx)
    server.add_url_rule("/download/notice", "download_notice", notice_xlsx)
    server.add_url_rule("/assessment/notice", "assessment_notice", notice_page)
