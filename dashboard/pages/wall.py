"""Wall screen `/wall`: an auto-rotating overview without controls.

Wall screen `/wall`: the overview for a screen on the wall of a control room, with
no header and no controls; it rotates every `ROTATE_S` seconds through the user's own
scope and each region below it (the administrator: the province, then each city) and
refreshes its numbers as it goes. Leave it with the browser's back button."""

from __future__ import annotations

from typing import Any

import dash
import pandas as pd
from dash import Input, Output, State, dcc, html

from core.access import Forbidden, default_region, region_ids
from core.users import User
from dashboard import inputs
from dashboard.context import Context, Page
from dashboard.i18n import local_time, norm_lang, t
from dashboard.pages import overview
from dashboard.widgets import forbidden

ROTATE_S = 20  # seconds each scope stays on the screen


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    return html.Div(id="wall", className="wall", children=[
        dcc.Interval(id="wall-tick", interval=ROTATE_S * 1000, n_intervals=0),
        html.Div(id="wall-body"),
    ])


def scopes(c: Context, user: User) -> list[str | None]:
    """What the screen rotates through: the user's own scope first (None: an
    institution user's institution), then every other region they may choose, from
    the top of the tree down."""
    own = default_region(user, c.registry)
    others = [r for r in c.regions_by_depth(region_ids(user, c.registry)) if r != own]
    return [own, *others]


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output("wall-body", "children"), Input("wall-tick", "n_intervals"), State("lang", "data"))
    def wall_body(tick: int | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        user = c.current_user()
        if user is None:
            return forbidden(lang)
        rotation = scopes(c, user)
        region = rotation[(inputs.integer(tick, lo=0) or 0) % len(rotation)]
        try:
            scope = overview.scope_of(c, user, region, lang)
        except Forbidden:
            return forbidden(lang)
        year = c.service.current_year()
        now = local_time(pd.Timestamp(c.service.now()), c.service.tz, lang)
        return html.Div([
            html.H1(f"{t('wall_title', lang)} · {scope.name}", id="wall-title"),
            html.P(t("wall_updated", lang, time=now, s=ROTATE_S), className="note"),
            overview.content(c, scope, year, lang, wall=True),
        ])


PAGE = Page("/wall", None, render, register, chrome=False)
