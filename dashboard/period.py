"""The period view: a free date range with a year-on-year overlay.

The period view of the overview and institution pages: a free date range next to
the same dates one year earlier (energy, water, CO₂ and cost), and its daily (or, for
a long range, monthly) chart with last year's curve laid over it.

Every number comes from the data service (`models.api` sums, indicators, aggregates
and costs); this module only chooses the dates and draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from core.csvio import EARLIEST
from dashboard.context import Context
from dashboard.data import KG_PER_T
from dashboard.i18n import MISSING, norm_lang, pct, quantity, t
from dashboard.widgets import (
    KEEP,
    chart_title,
    date_axis,
    fig_layout,
    graph,
    hover_values,
    partial_legend,
    partial_style,
    scrolling,
    value_axis,
)
from models import api as models_api

DEFAULT_DAYS = 30  # the range a page opens on: the last 30 days to today
MAX_DAILY_DAYS = 92  # a longer range is drawn by month
MAX_RANGE_DAYS = 3 * 366  # a wider range is cut to this many days from its start
ROWS = (("energy_tce", "energy_tce_chart", "tce"), ("water_m3", "water_chart", "m3"), ("co2_t", "co2_chart", "tCO2"),
        ("cost_cny", "cost", "CNY"))  # total, label (without unit: the values carry it), unit


@dataclass(frozen=True)
class Period:
    """[start, end) as local midnights; `end` may lie after now (the running day)."""

    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def days(self) -> int:
        return int((self.end - self.start) / pd.Timedelta(days=1))

    def year_before(self) -> Period:
        return Period(self.start - pd.DateOffset(years=1), self.end - pd.DateOffset(years=1))

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d} ~ {self.end - pd.Timedelta(days=1):%Y-%m-%d}"


def default_dates(c: Context) -> tuple[str, str]:
    """The date picker's first range: the last `DEFAULT_DAYS` days to today, inclusive."""
    today = c.service.today()
    return (today - pd.Timedelta(days=DEFAULT_DAYS - 1)).date().isoformat(), today.date().isoformat()


def parse(c: Context, start: str | None, end: str | None) -> Period:
    """The picker's dates (inclusive, local) as a Period; bad or missing dates fall back
    to the default range, an inverted one is swapped, dates before EARLIEST (no data is
    older) or after today are moved to them, a too long range is cut."""
    d0, d1 = default_dates(c)
    try:
        s = pd.Timestamp(start or d0).tz_localize(None).normalize()
        e = pd.Timestamp(end or d1).tz_localize(None).normalize()
    except (ValueError, TypeError, OverflowError):
        s, e = pd.Timestamp(d0), pd.Timestamp(d1)
    lo, hi = pd.Timestamp(EARLIEST), pd.Timestamp(d1)
    s, e = (min(max(x, lo), hi) for x in (min(s, e), max(s, e)))
    e = min(e, s + pd.Timedelta(days=MAX_RANGE_DAYS - 1))
    tz = c.service.tz
    return Period(s.tz_localize(tz), (e + pd.Timedelta(days=1)).tz_localize(tz))


def controls(prefix: str, lang: str, dates: tuple[str, str]) -> html.Div:
    """The date range picker and the "overlay last year" switch."""
    zh = norm_lang(lang) == "zh"
    return html.Div(className="controls", children=[
        html.Label(className="wide", children=[t("date_range", lang), dcc.DatePickerRange(
            id=f"{prefix}-range", **KEEP, start_date=dates[0], end_date=dates[1], display_format="YYYY-MM-DD",
            first_day_of_week=1, month_format="YYYY年M月" if zh else "MMMM YYYY", minimum_nights=0)]),
        dcc.Checklist(id=f"{prefix}-yoy", **KEEP, options=[{"label": t("yoy_overlay", lang), "value": "yoy"}],
                      value=["yoy"], className="check", inputClassName="check-input"),
    ])


def _read(c: Context, insts: set[str], period: Period, own: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The period's daily sums and costs: of every institution (one cached read shared
    by every scope of the overview) or, `own`, of `insts` only (an institution's page)."""
    return c.service.range_sums(period.start, period.end, insts if own else None)


def totals(c: Context, insts: set[str], period: Period, own: bool = False) -> dict[str, float]:
    """energy_tce, water_m3, co2_t (`models.api.aggregate` of the period's indicators
    over `insts`), cost_cny (`models.api.energy_cost`, summed) and priced_share."""
    sums, costs = _read(c, insts, period, own)
    ind = c.service.indicators_of(sums)
    ind = ind[ind["institution_id"].isin(insts)]
    out = {"energy_tce": np.nan, "water_m3": np.nan, "co2_t": np.nan}
    if len(ind) and ind["has_data"].any():
        agg = models_api.aggregate(ind.assign(scope="all"), by=["scope"]).iloc[0]
        out = {"energy_tce": float(agg["tce"]), "water_m3": float(agg["water_m3"]), "co2_t": float(agg["t_co2"])}
    mine = costs[costs["institution_id"].isin(insts)] if len(costs) else costs
    out["cost_cny"] = float(mine["cost_cny"].sum(min_count=1)) if len(mine) else np.nan
    out["priced_share"] = float(mine["priced_share"].mean()) if len(mine) else np.nan
    return out


def series(c: Context, insts: set[str], period: Period, by_month: bool, own: bool = False) -> pd.DataFrame:
    """Total energy (tce) of `insts` per day (or month) of the period: period_start
    (naive local), tce."""
    sums, _costs = _read(c, insts, period, own)
    mine = sums[sums["institution_id"].isin(insts)] if len(sums) else sums
    priced = c.service.priced(mine)
    if priced.empty:
        return pd.DataFrame({"period_start": pd.Series(dtype="datetime64[s]"), "tce": pd.Series(dtype=float)})
    start = pd.DatetimeIndex(priced["period_start"]).tz_convert(c.service.tz).tz_localize(None)
    if by_month:
        start = start.to_period("M").to_timestamp()
    s = (priced.assign(period_start=start).groupby("period_start")["kgce"].sum() / KG_PER_T).sort_index()
    return pd.DataFrame({"period_start": s.index, "tce": s.to_numpy(float)})


def frames(c: Context, insts: set[str], period: Period, own: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The period's table (one row per total: this period, the same dates last year,
    change as a fraction) and its chart series (this year and last, on this year's dates)."""
    cur, prev = totals(c, insts, period, own), totals(c, insts, period.year_before(), own)
    table = pd.DataFrame({"indicator": [k for k, _l, _u in ROWS], "unit": [u for _k, _l, u in ROWS],
                          "this_period": [cur[k] for k, _l, _u in ROWS],
                          "last_year": [prev[k] for k, _l, _u in ROWS]})
    table["change"] = models_api.yoy_change(table["this_period"], table["last_year"])
    by_month = period.days > MAX_DAILY_DAYS
    now = series(c, insts, period, by_month, own)
    before = series(c, insts, period.year_before(), by_month, own)
    before = before.assign(period_start=before["period_start"] + pd.DateOffset(years=1))
    chart = now.merge(before, on="period_start", how="outer", suffixes=("", "_last_year")).sort_values("period_start")
    return table, chart.reset_index(drop=True)


def view(c: Context, insts: set[str], period: Period, yoy: bool, lang: str, prefix: str,
         own: bool = False) -> html.Div:
    """The period's table and chart (`own`: read only `insts`, see `_read`)."""
    table, chart = frames(c, insts, period, own)
    by_month = period.days > MAX_DAILY_DAYS
    return html.Div(className="period", children=[
        html.P(f"{t('this_period', lang)}: {period.label()} · {t('last_year_period', lang)}: "
               f"{period.year_before().label()}", className="note"),
        scrolling(period_table(table, lang, f"{prefix}-period-table")),
        graph(f"{prefix}-period-chart", period_figure(chart, c.service.today(), by_month, yoy, lang)),
    ])


def period_table(table: pd.DataFrame, lang: str, table_id: str) -> html.Table:
    head = html.Tr([html.Th(t("indicator", lang)), html.Th(t("this_period", lang), className="num"),
                    html.Th(t("last_year_period", lang), className="num"), html.Th(t("change", lang), className="num")])
    body = []
    for r in table.itertuples(index=False):  # four rows
        label = dict((k, lab) for k, lab, _u in ROWS)[r.indicator]
        change = r.change  # a fraction (models.api.yoy_change)
        cls = "num up" if pd.notna(change) and change > 0 else "num down" if pd.notna(change) else "num"
        body.append(html.Tr([
            html.Td(t(label, lang)), html.Td(quantity(r.this_period, r.unit, lang, 1), className="num"),
            html.Td(quantity(r.last_year, r.unit, lang, 1), className="num"),
            html.Td(MISSING if pd.isna(change) else ("+" if change > 0 else "") + pct(change, lang), className=cls),
        ], id={"type": "period-row", "key": r.indicator}))
    return html.Table([html.Thead(head), html.Tbody(body)], className="grid", id=table_id)


def period_figure(chart: pd.DataFrame, today: pd.Timestamp, by_month: bool, yoy: bool, lang: str) -> go.Figure:
    """This period's bars (the running day or month hatched) with last year's line."""
    fig = go.Figure()
    title = chart_title(t("monthly_tce" if by_month else "daily_tce", lang), "tce", lang)
    if chart.empty:
        return fig_layout(fig, title, lang)
    running = today.tz_localize(None)
    running = running.to_period("M").to_timestamp() if by_month else running
    x = chart["period_start"]
    fig.add_trace(go.Bar(x=x, y=chart["tce"], name=t("this_period", lang), marker={"color": "#1c7ed6",
                                                                                  **partial_style(x, running)},
                         customdata=hover_values(chart["tce"], "tce", lang), hovertemplate="%{customdata}"))
    values = list(chart["tce"])
    if yoy and "tce_last_year" in chart:
        fig.add_trace(go.Scatter(x=x, y=chart["tce_last_year"], name=t("last_year_period", lang), mode="lines",
                                 line={"dash": "dash", "color": "#868e96"},
                                 customdata=hover_values(chart["tce_last_year"], "tce", lang),
                                 hovertemplate="%{customdata}"))
        values += list(chart["tce_last_year"])
    if (pd.DatetimeIndex(x) >= running).any():
        partial_legend(fig, t("partial_period", lang))
    fig = fig_layout(fig, title, lang)
    date_axis(fig, lang, "month" if by_month else "day")
    return value_axis(fig, values, lang)
