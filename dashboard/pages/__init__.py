"""The dashboard's pages, in the order of the navigation bar.

Each module is one page: it renders its layout for the signed-in user, registers its
own callbacks and exports `PAGE` (`dashboard.context.Page`). Adding a page is adding
a module here and its `PAGE` to `PAGES`; `create_app` and the router need no change.
A page without a `nav` label (the wall screen) is reached by its path only.
"""

from __future__ import annotations

from dashboard.context import Page
from dashboard.pages import (
    alerts,
    assessment,
    compare,
    filing,
    institution,
    mv,
    overview,
    progress,
    ranking,
    reports,
    wall,
)

PAGES: tuple[Page, ...] = (overview.PAGE, ranking.PAGE, institution.PAGE, compare.PAGE, alerts.PAGE, reports.PAGE,
                           mv.PAGE, assessment.PAGE, filing.PAGE, progress.PAGE, wall.PAGE)
