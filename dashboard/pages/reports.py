"""Reports `/reports`: links to the monthly statistical report of the last 24 months
and to the annual carbon ledger (the files are built by `dashboard.downloads`)."""

from __future__ import annotations

from urllib.parse import urlencode

import dash
from dash import Input, Output, dcc, html

from core.users import User
from dashboard import inputs
from dashboard.context import Context, Page
from dashboard.i18n import t
from dashboard.widgets import KEEP

REPORT_MONTHS = 24  # months offered for the monthly report


def render(c: Context, _user: User, lang: str, _rest: str | None) -> html.Div:
    last_month = (c.service.today().tz_localize(None).to_period("M") - 1)
    months = [str(last_month - k) for k in range(REPORT_MONTHS)]
    years = c.years()
    return html.Div(id="reports", children=[
        html.H2(t("monthly_report", lang)),
        html.Div(className="controls", children=[
            html.Label([t("month", lang), dcc.Dropdown(id="rep-month", **KEEP, options=months, value=months[0],
                                                       clearable=False)]),
            html.A(t("download", lang), id="rep-download", href=f"/download/report?month={months[0]}",
                   className="button"),
        ]),
        html.H2(t("carbon_ledger", lang)),
        html.Div(className="controls", children=[
            html.Label([t("year", lang), dcc.Dropdown(id="ledger-year", **KEEP, options=years, value=years[1],
                                                      clearable=False)]),
            html.A(f"{t('download', lang)} (xlsx)", id="ledger-xlsx", href=f"/download/ledger?year={years[1]}",
                   className="button"),
            html.A(f"{t('download', lang)} (csv)", id="ledger-csv",
                   href=f"/download/ledger?year={years[1]}&format=csv", className="button"),
        ]),
    ])


def register(app: dash.Dash, _c: Context) -> None:
    @app.callback(Output("rep-download", "href"), Input("rep-month", "value"))
    def report_link(month: str | None) -> str:
        return "/download/report?" + urlencode({"month": inputs.text(month) or ""})

    @app.callback(Output("ledger-xlsx", "href"), Output("ledger-csv", "href"), Input("ledger-year", "value"))
    def ledger_links(year: int | None) -> tuple[str, str]:
        year = inputs.integer(year, lo=1, hi=9999)
        return f"/download/ledger?year={year}", f"/download/ledger?year={year}&format=csv"


PAGE = Page("/reports", "nav_reports", render, register)
