"""Components and formats several pages share.

Components and formats several pages share: number format, the chart frame (title
with its one unit, language-aware dates and 万/亿 ticks, partial periods marked), the
"no data" / "no access" / "not found" messages, level colours, pickers and the xlsx
export button.

Nothing here checks access: pages pass only what the signed-in user may see.
Formats themselves (numbers, units, percentages, local times) live in `dashboard.i18n`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from dash import dcc, html

from dashboard.i18n import compact, norm_lang, num, t, unit

# a control keeps the user's choice while the page re-renders (language switch) and
# for the browser session
KEEP = {"persistence": True, "persistence_type": "session"}
LEVEL_COLOURS = {  # quota level (quotas.evaluate) -> colour: green guide .. red above the constraint
    "guide": "#b2f2bb",
    "advanced": "#b2f2bb",
    "baseline": "#fff3bf",
    "general": "#fff3bf",
    "constraint": "#ffd8a8",
    "exceeds": "#ffc9c9",
}
ENERGY_COLOURS = {"electricity": "#1c7ed6", "water": "#15aabf", "natural_gas": "#f59f00", "heat": "#e8590c",
                  "gasoline": "#845ef7", "diesel": "#5f3dc4", "lpg": "#d6336c", "coal": "#495057", "pv": "#37b24d"}
PARTIAL_PATTERN = "/"  # hatching of a period that is not over yet
GRAPH_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
# A chart on the wall screen: no mode bar (Plotly adds its buttons when the pointer
# passes over a chart) and no zoom, pan or hover: nothing on the wall is a control.
STATIC_GRAPH_CONFIG = {"staticPlot": True, "displayModeBar": False}
TRACES_DRAWN = ("bar", "scatter", "pie")  # the trace types of the dashboard's charts
LAYOUT_UNUSED = ("polar", "ternary", "scene", "geo", "coloraxis", "colorscale", "mapbox", "map")


def chart_template(name: str) -> go.layout.Template:
    """Plotly's template `name` cut to what the dashboard's charts use (their trace types,
    the 2-D layout): the same look, and a template is copied and validated into every
    figure, which for the whole one (colour scales, 3-D scenes, maps) is about 60 ms a
    chart. Built once at import."""
    full = pio.templates[name].to_plotly_json()
    data = {k: v for k, v in full.get("data", {}).items() if k in TRACES_DRAWN}
    layout = {k: v for k, v in full.get("layout", {}).items() if k not in LAYOUT_UNUSED}
    return go.layout.Template(data=data, layout=layout)


TEMPLATE = chart_template("plotly_white")
DARK_TEMPLATE = chart_template("plotly_dark")  # the wall screen's


def _warm_plotly() -> None:
    """Build one figure of each kind the pages draw, with the layout properties they
    set: plotly imports its validators on first use (about a second in all), at import
    time of the dashboard rather than on the first page."""
    fig = go.Figure([go.Bar(x=[0], y=[0], marker={"pattern": {"shape": [""]}, "opacity": [1.0]}, customdata=["0"]),
                     go.Scatter(x=[0], y=[0], line={"dash": "dash"}), go.Pie(labels=["a"], values=[1], hole=0.4)])
    fig.update_layout(title={"text": "", "x": 0}, margin={"l": 0}, height=100, template=TEMPLATE,
                      legend={"orientation": "h"}, separators=".,", hovermode="x unified", barmode="stack",
                      xaxis={"tickformat": "%b", "hoverformat": "%b", "nticks": 5},
                      yaxis={"tickmode": "array", "tickvals": [0], "ticktext": ["0"]}, paper_bgcolor="white")
    fig.add_hline(y=0, annotation_text="")
    fig.to_plotly_json()


_warm_plotly()
DATE_FORMATS = {  # d3 time formats of a date axis and its hover, per period and language
    ("month", "zh"): ("%-m月\n%Y年", "%Y年%-m月"), ("month", "en"): ("%b\n%Y", "%b %Y"),
    ("day", "zh"): ("%-m月%-d日", "%Y年%-m月%-d日"), ("day", "en"): ("%b %-d", "%b %-d, %Y"),
    ("hour", "zh"): ("%H:%M", "%-m月%-d日 %H:%M"), ("hour", "en"): ("%H:%M", "%b %-d %H:%M"),
}


def fmt(v: Any, digits: int = 1) -> str:
    """`v` with separators and `digits` decimals ("—" when missing): `dashboard.i18n.num`."""
    return num(v, digits)


def chart_title(label: str, u: str | None, lang: str) -> str:
    """A chart's title with its one unit: "综合能耗（tce）" / "Total energy (tce)"."""
    if not u:
        return label
    return f"{label}（{unit(u, lang)}）" if norm_lang(lang) == "zh" else f"{label} ({unit(u, lang)})"


def fig_layout(fig: go.Figure, title: str, lang: str | None = None, height: int = 340) -> go.Figure:
    """The dashboard's chart frame: title, margins, height, horizontal legend, the
    number separators of the language."""
    fig.update_layout(title={"text": title, "x": 0.01, "xanchor": "left"},
                      margin={"l": 50, "r": 16, "t": 50, "b": 40}, height=height, template=TEMPLATE,
                      legend={"orientation": "h", "y": -0.15}, separators=".,", hovermode="x unified")
    return fig


def nice_ticks(top: float, n: int = 5) -> np.ndarray:
    """0 and round steps (1, 2, 2.5 or 5 x 10^k) up to at least `top`, about `n` of them."""
    if not np.isfinite(top) or top <= 0:
        return np.array([0.0, 1.0])
    raw = top / n
    mag = 10 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return np.arange(0, top + step * 0.999, step)


def value_axis(fig: go.Figure, values: Sequence[float] | np.ndarray, lang: str, axis: str = "yaxis",
               bottom: float | None = None) -> go.Figure:
    """Tick labels of a value axis written for the language (1.5万, 3亿 / 15k, 3M):
    plotly's own ticks would say 15k and 3G in both."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    top = float(v.max()) if len(v) else 1.0
    low = float(min(0.0, v.min())) if len(v) and bottom is None else (bottom or 0.0)
    ticks = nice_ticks(top)
    if low < 0:
        neg = -nice_ticks(-low)[1:][::-1]
        ticks = np.concatenate([neg, ticks])
    fig.update_layout({axis: {"tickmode": "array", "tickvals": ticks.tolist(),
                              "ticktext": [compact(x, lang) if x else "0" for x in ticks]}})
    return fig


def date_axis(fig: go.Figure, lang: str, period: str, axis: str = "xaxis") -> go.Figure:
    """A date axis in the language's format for `period` ('month' | 'day' | 'hour')."""
    tick, hover = DATE_FORMATS[(period, norm_lang(lang))]
    # at most a tick a month (12 on a wide screen; plotly thins them out on a phone)
    fig.update_layout({axis: {"tickformat": tick, "hoverformat": hover, "nticks": 13 if period == "month" else 10}})
    return fig


def hover_values(values: Sequence[float] | np.ndarray, u: str | None, lang: str) -> list[str]:
    """Hover texts of a trace's values: "1.25万 tce" / "12.5k tce"."""
    return [f"{compact(x, lang)} {unit(u, lang)}".strip() for x in np.asarray(values, dtype=float)]


def partial_style(x: Sequence[Any], partial_from: pd.Timestamp | None) -> dict[str, Any]:
    """Marker settings of a bar trace whose bars at or after `partial_from` (a period
    that is not over) are hatched and lighter, so a running month or day is not read
    as a drop."""
    xs = pd.DatetimeIndex(pd.to_datetime(list(x))) if len(x) else pd.DatetimeIndex([])
    if partial_from is None or not len(xs):
        return {}
    part = np.asarray(xs >= pd.Timestamp(partial_from).tz_localize(None)
                      if xs.tz is None else xs >= pd.Timestamp(partial_from))
    return {"pattern": {"shape": [PARTIAL_PATTERN if p else "" for p in part], "solidity": 0.3},
            "opacity": [0.55 if p else 1.0 for p in part]}


def partial_legend(fig: go.Figure, note: str) -> go.Figure:
    """A legend entry explaining the hatched bars."""
    fig.add_trace(go.Bar(x=[None], y=[None], name=note, marker={"color": "#adb5bd",
                                                                  "pattern": {"shape": PARTIAL_PATTERN}},
                         hoverinfo="skip", showlegend=True))
    return fig


def on_dark(fig: go.Figure) -> go.Figure:
    """A chart for the dark wall screen: light text on a transparent background."""
    fig.update_layout(template=DARK_TEMPLATE, paper_bgcolor="rgba(0,0,0,0)",
                      plot_bgcolor="rgba(0,0,0,0)")
    return fig


def graph(component_id: str, figure: go.Figure, class_name: str | None = None, static: bool = False) -> dcc.Graph:
    """A chart with the dashboard's mode bar (`static`: none, and no interaction), the
    figure's height and the width of its box."""
    height = figure.layout.height
    return dcc.Graph(id=component_id, figure=figure, config=STATIC_GRAPH_CONFIG if static else GRAPH_CONFIG,
                     className=class_name,
                     responsive=True, style={"height": f"{height}px"} if height else None)


def no_data(lang: str) -> html.Div:
    return html.Div(t("no_data", lang), className="empty")


def forbidden(lang: str) -> html.Div:
    return html.Div(t("forbidden", lang), className="forbidden", id="forbidden")


def not_found(lang: str) -> html.Div:
    return html.Div(t("not_found", lang), className="empty")


def year_picker(component_id: str, years: list[int], value: int, lang: str) -> html.Label:
    """A labelled year dropdown (kept across re-renders)."""
    return html.Label([t("year", lang), dcc.Dropdown(
        id=component_id, **KEEP, options=[{"label": str(y), "value": y} for y in years], value=value,
        clearable=False)])


def export_button(component_id: str, lang: str, label_key: str = "export_xlsx") -> html.Div:
    """A button that builds a file in a callback and hands it to the browser
    (`dcc.Download`), with a spinner while it is being built: the page stays usable
    and shows that something is happening (`{component_id}-button` is the button,
    `{component_id}-file` the download)."""
    return html.Div(className="export", children=[
        html.Button(t(label_key, lang), id=f"{component_id}-button", className="button"),
        dcc.Loading(dcc.Download(id=f"{component_id}-file"), type="dot", parent_className="export-loading"),
    ])


def scrolling(table: Any) -> html.Div:
    """A table that scrolls sideways on a narrow screen instead of overflowing it."""
    return html.Div(table, className="table-scroll")
