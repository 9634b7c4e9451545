"""The frame around every page: navigation, languages, user, router.

The frame around every page: header with navigation, language buttons and the
signed-in user; the router that renders the page of the URL for the signed-in user.

On a narrow screen (a phone, under 760 px) the navigation folds behind a menu button
(`dashboard/assets/style.css`); a full-screen page (`Page.chrome` False: the wall
screen) has no header at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash
from dash import Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from core.access import Forbidden
from dashboard import inputs, warmup
from dashboard.context import Context, Page
from dashboard.i18n import norm_lang, t
from dashboard.widgets import forbidden, not_found

WALL_PATH = "/wall"


def layout() -> html.Div:
    return html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        dcc.Store(id="lang", storage_type="local"),
        html.Header(id="top", className="top", children=[
            html.Div(className="bar", children=[
                html.Span(id="brand", className="brand"),
                html.Button("☰", id="menu-button", className="menu-button", n_clicks=0, **{"aria-label": "menu"}),
            ]),
            html.Nav(id="nav", className="nav"),
            html.Div(className="right", children=[
                html.Button("中文", id="lang-zh", className="lang-button"),
                html.Button("English", id="lang-en", className="lang-button"),
                dcc.Link(id="wall-link", href=WALL_PATH, className="wall-link"),
                html.Span(id="who", className="who"),
                html.A(id="logout", href="/logout"),
            ]),
        ]),
        html.Main(id="page"),
    ])


def find_page(pages: Sequence[Page], pathname: str | None) -> tuple[Page | None, str | None]:
    """The page of a URL path and the rest of the path below it (None at the page's
    own path); (None, None) when no page serves it."""
    path = (pathname or "/").rstrip("/") or "/"
    for page in pages:
        if path == page.path:
            return page, None
        if page.subpaths and path.startswith(page.path + "/"):
            return page, path.removeprefix(page.path + "/")
    return None, None


def register(app: dash.Dash, c: Context, pages: Sequence[Page]) -> None:
    """The layout and the header, language, menu and router callbacks; the warm-up of
    the first pages' tables at the first request (`dashboard.warmup`)."""
    app.layout = layout()
    warmup.register(app.server, c)

    @app.callback(Output("lang", "data"), Input("lang-zh", "n_clicks"), Input("lang-en", "n_clicks"),
                  prevent_initial_call=True)
    def switch_language(_zh: int | None, _en: int | None) -> str:
        return "en" if ctx.triggered_id == "lang-en" else "zh"

    @app.callback(Output("top", "className"), Input("menu-button", "n_clicks"), Input("url", "pathname"),
                  State("top", "className"))
    def menu(_clicks: int | None, pathname: str | None, current: str | None) -> str:
        """The menu button opens and closes the folded navigation; following a link
        closes it; a full-screen page hides the header."""
        page, _rest = find_page(pages, inputs.text(pathname))
        current = inputs.text(current)
        if page is not None and not page.chrome:
            return "top hidden"
        if ctx.triggered_id == "menu-button":
            return "top" if "open" in (current or "") else "top open"
        return "top"

    @app.callback(Output("nav", "children"), Output("brand", "children"), Output("who", "children"),
                  Output("logout", "children"), Output("wall-link", "children"),
                  Input("lang", "data"), Input("url", "pathname"))
    def header(lang: str | None, pathname: str | None) -> tuple:
        lang = norm_lang(lang)
        user = c.current_user()
        if user is None:
            raise PreventUpdate
        current, _rest = find_page(pages, inputs.text(pathname))
        nav = [dcc.Link(t(p.nav, lang), href=p.path, id=f"nav-{p.nav.removeprefix('nav_')}",
                        className="active" if p is current else None) for p in pages if p.nav]
        who = f"{user.name} ({t('role_' + user.role, lang)})"
        return nav, t("app_title", lang), who, t("logout", lang), t("wall_mode", lang)

    @app.callback(Output("page", "children"), Input("url", "pathname"), Input("lang", "data"))
    def render(pathname: str | None, lang: str | None) -> Any:
        lang = norm_lang(lang)
        pathname = inputs.text(pathname)
        user = c.current_user()
        if user is None:
            return forbidden(lang)
        page, rest = find_page(pages, pathname)
        if page is None:
            return not_found(lang)
        try:
            return page.render(c, user, lang, rest)
        except Forbidden:
            return forbidden(lang)
