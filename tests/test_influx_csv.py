"""The streamed CSV reader of InfluxDB answers: any split of the body into chunks and
blocks gives the same rows as parsing each statement whole."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
from hypothesis import given
from hypothesis import strategies as st

from storage.influx import csv_batches

TYPES = {"name": pa.string(), "tags": pa.string(), "time": pa.int64(), "value": pa.float64(), "quality": pa.int64()}
CONVERT = pacsv.ConvertOptions(column_types=TYPES, strings_can_be_null=False)


def answer(statements: list[list[tuple[str, int, float, int]]]) -> bytes:
    """An InfluxDB CSV answer: per statement with rows, its header, the rows, an empty line."""
    parts = []
    for rows in statements:
        if rows:
            lines = ["name,tags,time,value,quality", *(f'sample,"meter={m}",{t},{v!r},{q}' for m, t, v, q in rows)]
            parts.append("\n".join(lines) + "\n")
    return "\n".join(parts).encode()


rows = st.lists(st.tuples(st.sampled_from(["a", "b\\,c", "HB-0001-E0"]), st.integers(0, 2**40),
                          st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(0, 127)),
                max_size=40)


@given(st.lists(rows, min_size=1, max_size=5), st.lists(st.integers(1, 97), min_size=1, max_size=30),
       st.integers(16, 400))
def test_any_chunking_reads_the_same_rows(statements, cuts, block):
    body = answer(statements)
    chunks, i, k = [], 0, 0
    while i < len(body):
        n = cuts[k % len(cuts)]
        chunks.append(body[i:i + n])
        i, k = i + n, k + 1
    got = [b for b in csv_batches(iter(chunks), CONVERT, block_bytes=block)]
    table = pa.Table.from_batches(got, schema=pa.schema(list(TYPES.items()))) if got else None
    want = [r for s in statements for r in s]
    if not want:
        assert table is None or table.num_rows == 0
        return
    assert table["tags"].to_pylist() == [f"meter={m}" for m, _, _, _ in want]
    assert table["time"].to_pylist() == [t for _, t, _, _ in want]
    assert table["value"].to_pylist() == [v for _, _, v, _ in want]
    assert table["quality"].to_pylist() == [q for _, _, _, q in want]
    # and parsing the whole body at once agrees
    whole = [pacsv.read_csv(io.BytesIO(p + b"\n"), convert_options=CONVERT) for p in body.split(b"\n\n") if p.strip()]
    assert sum(t.num_rows for t in whole) == table.num_rows
