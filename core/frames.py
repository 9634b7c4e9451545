"""Lookups on a province's columns, once per distinct value rather than once per row.

A use frame of a province year has millions of rows but a few hundred thousand meters,
tens of thousands of institutions and a handful of energies. `isin`, `map` and
`np.where` with strings on such columns cost a Python object per row (pandas' Arrow
strings box each value); these encode the column first (`pd.factorize`, which reads Arrow
strings natively, or a Categorical's own codes) and do the lookup on the distinct values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def positions_in(values: pd.Series | np.ndarray | pd.Index, index: pd.Index) -> np.ndarray:
    """Position of each value in `index` (unique; -1 where absent or missing)."""
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(values)
        codes, uniques = cat.codes, cat.categories
    else:
        codes, uniques = pd.factorize(values)
    pos = np.r_[index.get_indexer(uniques), -1]
    return pos[codes]  # code -1 (missing) maps to the appended -1


def mapped(values: pd.Series, mapping: Mapping) -> pd.Series:
    """`values.map(mapping)` (missing where the mapping has no entry), looked up once
    per distinct value; same index and dtype as `map` gives."""
    codes, uniques = pd.factorize(values)
    table = pd.Series(uniques).map(mapping)
    return pd.Series(table.array.take(codes, allow_fill=True), index=values.index, name=values.name)


def labels(names: Sequence[str], codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The string column `names[codes]` (codes: ints in range), built as one Arrow take
    instead of a NumPy string array converted row by row."""
    return pd.array(list(names), dtype="str").take(np.asarray(codes, np.int64))
