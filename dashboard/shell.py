"""The frame around every page: header with navigation, language buttons and the
signed-in user; the router that renders the page of the URL for the signed-in user."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash
from dash import Input, Output, ctx, dcc, html
from dash.exceptions import PreventUpdate

from core.access import Forbidden
from dashboard import inputs
from dashboard.context import Context, Page
from dashboard.i18n import norm_lang, t
from dashboard.widgets import forbidden, not_found


def layout() -> html.Div:
    return html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        dcc.Store(id="lang", storage_type="local"),
        html.Header(className="top", children=[
            html.Div(id="nav", className="nav"),
            html.Div(className="right", children=[
                html.Button("中文", id="lang-zh", className="lang-button"),
                html.Button("English", id="lang-en", className="lang-button"),
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
    """The layout and the header, language and router callbacks."""
    app.layout = layout()

    @app.callback(Output("lang", "data"), Input("lang-zh", "n_clicks"), Input("lang-en", "n_clicks"),
                  prevent_initial_call=True)
    def switch_language(_zh: int | None, _en: int | None) -> str:
        return "en" if ctx.triggered_id == "lang-en" else "zh"

    @app.callback(Output("nav", "children"), Output("who", "children"), Output("logout", "children"),
                  Input("lang", "data"), Input("url", "pathname"))
    def header(lang: str | None, _path: str | None) -> tuple:
        lang = norm_lang(lang)
        user = c.current_user()
        if user is None:
            raise PreventUpdate
        nav = [html.Span(t("app_title", lang), className="brand")] + [
            dcc.Link(t(p.nav, lang), href=p.path, id=f"nav-{p.nav.removeprefix('nav_')}") for p in pages]
        who = f"{t('signed_in_as', lang)}: {user.name} ({t('role_' + user.role, lang)})"
        return nav, who, t("logout", lang)

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
