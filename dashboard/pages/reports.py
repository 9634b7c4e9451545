"""Reports page `/reports`: monthly report and ledger downloads.

Reports `/reports`: the monthly statistical report of any of the last 24 months and
the annual carbon ledger (xlsx or csv), each built from what the user may see
(`dashboard.downloads`). A report of a province takes a while: the file is built in a
callback behind a spinner and handed to the browser when ready, so the page says that
it is working (the `/download/...` routes serve the same files to scripts)."""

from __future__ import annotations

import dash
from dash import Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from core.users import User
from dashboard import downloads, inputs
from dashboard.context import Context, Page
from dashboard.i18n import norm_lang, t
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
            html.Button(t("download", lang), id="rep-download", className="button", n_clicks=0),
        ]),
        html.H2(t("carbon_ledger", lang)),
        html.Div(className="controls", children=[
            html.Label([t("year", lang), dcc.Dropdown(id="ledger-year", **KEEP, options=years, value=years[1],
                                                      clearable=False)]),
            html.Button(f"{t('download', lang)} (xlsx)", id="ledger-xlsx", className="button", n_clicks=0),
            html.Button(f"{t('download', lang)} (csv)", id="ledger-csv", className="button", n_clicks=0),
        ]),
        dcc.Loading(html.Div([dcc.Download(id="rep-file"), html.Div(id="rep-status", className="note")]),
                    type="default", fullscreen=False),
    ])


def register(app: dash.Dash, c: Context) -> None:
    @app.callback(Output("rep-file", "data"), Output("rep-status", "children"),
                  Input("rep-download", "n_clicks"), Input("ledger-xlsx", "n_clicks"), Input("ledger-csv", "n_clicks"),
                  State("rep-month", "value"), State("ledger-year", "value"), State("lang", "data"),
                  prevent_initial_call=True)
    def build(_rep: int, _xlsx: int, _csv: int, month: str | None, year: int | None, lang: str | None) -> tuple:
        """Build the file asked for (the spinner turns meanwhile) and send it."""
        lang = norm_lang(lang)
        user = c.current_user()
        which = ctx.triggered_id
        month, year = inputs.text(month), inputs.integer(year, lo=1, hi=9999)
        if user is None or which is None or not inputs.integer(ctx.triggered[0].get("value"), lo=0):
            raise PreventUpdate
        if which == "rep-download":
            period = downloads.month_period(c, month or "")
            if period is None:
                raise PreventUpdate
            data, name = downloads.report_file(c, user, period)
        else:
            year = year or c.service.current_year() - 1
            if not downloads.valid_year(c, year):
                raise PreventUpdate
            data, name = downloads.ledger_file(c, user, year, "csv" if which == "ledger-csv" else "xlsx")
        return dcc.send_bytes(data, name), f"{t('download', lang)}: {name}"


PAGE = Page("/reports", "nav_reports", render, register)
