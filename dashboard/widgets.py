"""Components and formats several pages share: number format, figure layout, the
"no data" / "no access" / "not found" messages, level colours and pickers.

Nothing here checks access: pages pass only what the signed-in user may see.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import dcc, html

from dashboard.i18n import t

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


def fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    return f"{float(v):,.{digits}f}"


def fig_layout(fig: go.Figure, title: str) -> go.Figure:
    """The dashboard's chart frame: title, margins, height, horizontal legend."""
    fig.update_layout(title=title, margin={"l": 40, "r": 20, "t": 50, "b": 40}, height=340,
                      template="plotly_white", legend={"orientation": "h"})
    return fig


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
