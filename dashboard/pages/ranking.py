"""Rankings page `/ranking`: institutions ranked within their peer group.

Rankings `/ranking`: institutions ranked within their peer group by an intensity,
filtered, searched, sorted and paged on the server (`quotas.ranking`), with the
quota level as the row colour and a CSV export of the filtered list."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import dash
import numpy as np
import pandas as pd
from dash import Input, Output, State, ctx, dash_table, dcc, html
from dash.exceptions import PreventUpdate

from core.access import Forbidden, region_ids
from core.registry import Registry
from core.users import User
from core.vocab import CATEGORIES
from dashboard import inputs, integrations
from dashboard.context import Context, Page
from dashboard.data import INDICATORS
from dashboard.i18n import norm_lang, t
from dashboard.widgets import KEEP, LEVEL_COLOURS, export_button, year_picker
from quotas.ranking import DEFAULT_INDICATOR, PAGE_SIZE, RankedPages, ranked, user_query


def render(c: Context, user: User, lang: str, _rest: str | None) -> html.Div:
    regions = c.regions_by_depth(region_ids(user, c.registry))
    return html.Div(id="ranking", children=[
        # the last complete year by default: rankings compare whole years
        ranking_controls(lang, [(r, c.region_name[r]) for r in regions], list(CATEGORIES), c.years(),
                         c.service.current_year() - 1),
        html.Div(id="rank-count", className="count"),
        ranking_table(lang),
    ])


def filters(region: Any, category: Any, year: Any, indicator: Any, search: Any, sort_by: Any) -> tuple:
    """The ranking's filter values, type-checked (`dashboard.inputs`); the indicator
    defaults to DEFAULT_INDICATOR."""
    region, category, indicator, search = (inputs.text(v) for v in (region, category, indicator, search))
    return (region, category, inputs.integer(year, lo=1, hi=9999), indicator or DEFAULT_INDICATOR, search,
            inputs.sort_by(sort_by))


def register(app: dash.Dash, c: Context) -> None:
    pages = RankedPages(c.service.ranking_table)

    def ranking_callback(user: User | None, region: str | None, category: str | None, year: Any,
                         indicator: str | None, search: str | None, page: int | None, page_size: int | None,
                         sort_by: list | None, lang: str | None, trigger: Any = None) -> tuple:
        """The table's outputs for these inputs (what the callback returns)."""
        lang = norm_lang(lang)
        region, category, year, indicator, search, sort_by = filters(region, category, year, indicator, search,
                                                                     sort_by)
        page, page_size = inputs.integer(page, lo=0), inputs.integer(page_size, lo=1, hi=inputs.MAX_PAGE_SIZE)
        if user is None:
            raise PreventUpdate
        if trigger not in (None, "rank-table"):
            page = 0  # a new filter starts at the first page
        try:
            q, year_i = user_query(user, c.registry, year, region, category, indicator, search or "", sort_by,
                                   int(page or 0), int(page_size or PAGE_SIZE), c.service.current_year())
        except (Forbidden, ValueError):
            return [], ranking_columns(lang, indicator), 1, 0, t("forbidden", lang), "#"
        rows, total = pages.page(year_i, q)
        params = {"year": year_i, "indicator": indicator, "search": search or ""}
        if region:
            params["region"] = region
        if category:
            params["category"] = category
        return (ranking_rows(rows, c.registry, lang), ranking_columns(lang, indicator),
                max(1, -(-total // q.page_size)), q.page, f"{total} {t('rows_found', lang)}",
                "/download/ranking.csv?" + urlencode(params))

    @app.callback(
        Output("rank-table", "data"), Output("rank-table", "columns"), Output("rank-table", "page_count"),
        Output("rank-table", "page_current"), Output("rank-count", "children"), Output("rank-export", "href"),
        Input("rank-region", "value"), Input("rank-category", "value"), Input("rank-year", "value"),
        Input("rank-indicator", "value"), Input("rank-search", "value"), Input("rank-table", "page_current"),
        Input("rank-table", "page_size"), Input("rank-table", "sort_by"), State("lang", "data"))
    def update_ranking(region: str | None, category: str | None, year: int | None, indicator: str | None,
                       search: str | None, page: int | None, page_size: int | None, sort_by: list | None,
                       lang: str | None) -> tuple:
        return ranking_callback(c.current_user(), region, category, year, indicator, search, page, page_size,
                                sort_by, lang, ctx.triggered_id if ctx else None)

    @app.callback(Output("rank-xlsx-file", "data"), Input("rank-xlsx-button", "n_clicks"),
                  State("rank-region", "value"), State("rank-category", "value"), State("rank-year", "value"),
                  State("rank-indicator", "value"), State("rank-search", "value"), State("rank-table", "sort_by"),
                  State("lang", "data"), prevent_initial_call=True)
    def ranking_xlsx(clicks: int | None, region: str | None, category: str | None, year: int | None,
                     indicator: str | None, search: str | None, sort_by: list | None, lang: str | None) -> Any:
        """The filtered, sorted ranking (every page) as a workbook."""
        lang = norm_lang(lang)
        region, category, year, indicator, search, sort_by = filters(region, category, year, indicator, search,
                                                                     sort_by)
        user = c.current_user()
        if not inputs.integer(clicks, lo=0) or user is None:
            raise PreventUpdate
        try:
            q, year_i = user_query(user, c.registry, year, region, category, indicator, search or "", sort_by, 0,
                                   10**9, c.service.current_year())
        except (Forbidden, ValueError):
            raise PreventUpdate from None
        rows = ranked(c.service.ranking_table(year_i), q)
        frame = rows.assign(region_name=rows["region"].map(c.region_name),
                            category_name=[t(f"cat_{x}", lang) for x in rows["category"]],
                            level_name=[t(f"lvl_{x}", lang) for x in rows["level"]],
                            estimated_share=rows["estimated_share"] * 100,
                            source=rows["institution_id"].map(c.registry.source_by_id).fillna(t("source_own", lang)))
        cols = [(col["id"], col["name"]) for col in ranking_columns(lang, indicator)]
        data = integrations.frames_xlsx([("ranking", frame, cols, [f"{year_i} · {t(f'ind_{indicator}', lang)}"])])
        return dcc.send_bytes(data, f"ranking-{year_i}-{indicator}.xlsx")

    app.ranking_callback = ranking_callback  # the benchmark times this without HTTP
    app.ranked_cache = pages.cache


def ranking_controls(lang: str, regions: list[tuple[str, str]], categories: list[str], years: list[int],
                     year: int) -> html.Div:
    return html.Div(className="controls", children=[
        html.Label([t("region", lang), dcc.Dropdown(id="rank-region", **KEEP, options=[
            {"label": name, "value": rid} for rid, name in regions], value=None, placeholder=t("all", lang))]),
        html.Label([t("category", lang), dcc.Dropdown(id="rank-category", **KEEP, options=[
            {"label": t(f"cat_{c}", lang), "value": c} for c in categories], value=None,
            placeholder=t("all", lang))]),
        year_picker("rank-year", years, year, lang),
        html.Label([t("indicator", lang), dcc.Dropdown(id="rank-indicator", **KEEP, options=[
            {"label": t(f"ind_{i}", lang), "value": i} for i in INDICATORS], value=DEFAULT_INDICATOR,
            clearable=False)]),
        html.Label([t("search_name", lang), dcc.Input(id="rank-search", **KEEP, type="search", debounce=True,
                                                      placeholder=t("search_name", lang))]),
        html.A(t("export_csv", lang), id="rank-export", href="/download/ranking.csv", className="button"),
        export_button("rank-xlsx", lang),
    ])


def ranking_columns(lang: str, indicator: str) -> list[dict]:
    return [
        {"name": t("col_rank", lang), "id": "rank", "type": "numeric"},
        {"name": t("col_peers", lang), "id": "peers", "type": "numeric"},
        {"name": t("col_id", lang), "id": "institution_id"},
        {"name": t("col_name", lang), "id": "name", "presentation": "markdown"},
        {"name": t("region", lang), "id": "region_name"},
        {"name": t("category", lang), "id": "category_name"},
        {"name": t(f"ind_{indicator}", lang), "id": "value", "type": "numeric"},
        {"name": t("col_yoy", lang), "id": "yoy", "type": "numeric"},
        {"name": t("col_yoy_note", lang), "id": "yoy_note"},
        {"name": t("col_level", lang), "id": "level_name"},
        {"name": t("col_estimated", lang), "id": "estimated_share", "type": "numeric"},
        {"name": t("col_source", lang), "id": "source"},  # the lower-level instance (纵向直报), or this level
    ]


def ranking_table(lang: str) -> dash_table.DataTable:
    return dash_table.DataTable(
        id="rank-table", **KEEP, persisted_props=["sort_by"],
        columns=ranking_columns(lang, DEFAULT_INDICATOR), data=[],
        page_action="custom", page_current=0, page_size=PAGE_SIZE, page_count=1,
        sort_action="custom", sort_mode="single", sort_by=[],
        markdown_options={"link_target": "_self"},
        style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "inherit", "padding": "4px 8px", "textAlign": "left"},
        style_data_conditional=[
            {"if": {"filter_query": f'{{level}} = "{lvl}"'}, "backgroundColor": colour}
            for lvl, colour in LEVEL_COLOURS.items()
        ],
    )


def ranking_rows(page: pd.DataFrame, registry: Registry, lang: str) -> list[dict]:
    """Table rows of one page (names link to the institution page)."""
    region_name = {r.id: r.name for r in registry.regions}
    own = t("source_own", lang)
    return [{
        "rank": int(r.rank), "peers": int(r.peers), "institution_id": r.institution_id,
        "name": f"[{r.name}](/institution/{r.institution_id})",
        "region_name": region_name.get(r.region, r.region),
        "category_name": t(f"cat_{r.category}", lang),
        "value": None if np.isnan(r.value) else round(float(r.value), 2),
        "yoy": None if np.isnan(r.yoy) else round(float(r.yoy), 1),
        "yoy_note": t(f"yoy_{r.yoy_reason}", lang) if r.yoy_reason else "",
        "level": r.level, "level_name": t(f"lvl_{r.level}", lang),
        "estimated_share": None if np.isnan(r.estimated_share) else round(float(r.estimated_share) * 100, 1),
        "source": registry.source_by_id.get(r.institution_id) or own,
    } for r in page.itertuples(index=False)]  # one page: at most page_size rows


PAGE = Page("/ranking", "nav_ranking", render, register)
