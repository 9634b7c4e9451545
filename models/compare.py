"""Year-on-year change: the one formula, as a fraction (percent only where it is displayed)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def yoy_change(current: np.ndarray | pd.Series, previous: np.ndarray | pd.Series) -> np.ndarray:
    """(current - previous) / previous as a fraction (-0.05 = 5 % lower); NaN where the
    previous value is missing, zero or negative (no base to compare with)."""
    c = np.asarray(current, dtype=float)
    p = np.asarray(previous, dtype=float)
    return np.divide(c - p, p, out=np.full(np.broadcast(c, p).shape, np.nan), where=p > 0)
