"""core.frames: the lookups once per distinct value equal pandas' per-row ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from core.frames import labels, mapped, positions_in

NAMES = st.text(alphabet="ab-1é", min_size=0, max_size=3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(NAMES, st.none()), max_size=40), st.lists(NAMES, max_size=12, unique=True),
       st.sampled_from(["str", "object", "category"]))
def test_positions_in_equals_get_indexer_row_by_row(values, index_values, dtype):
    index = pd.Index(index_values, dtype=object)
    col = pd.Series(values, dtype=dtype)
    expected = np.array([index_values.index(v) if v in index_values else -1 for v in values], np.int64)
    assert positions_in(col, index).tolist() == expected.tolist()
    assert positions_in(col.to_numpy(object), index).tolist() == expected.tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(NAMES, st.none()), max_size=40), st.dictionaries(NAMES, NAMES, max_size=6))
def test_mapped_equals_map(values, mapping):
    col = pd.Series(values, dtype="str", index=np.arange(len(values)) * 3, name="energy")
    got = mapped(col, mapping)
    pd.testing.assert_series_equal(got, col.map(mapping), check_dtype=False)
    assert got.index.equals(col.index) and got.name == "energy"


@given(st.lists(NAMES, min_size=1, max_size=5, unique=True), st.data())
def test_labels_are_the_names_at_the_codes(names, data):
    codes = data.draw(st.lists(st.integers(0, len(names) - 1), max_size=30))
    got = labels(names, np.asarray(codes, np.int64))
    assert list(got) == [names[c] for c in codes]
    assert got.dtype == pd.Series(names, dtype="str").dtype
