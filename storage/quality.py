"""Quality flags stored with every sample (a bit set; 0 = good).

Set at ingestion (domain.md section 5): samples are flagged, never silently dropped.
"""

from __future__ import annotations

GOOD = 0
ESTIMATED = 1  # filled by interpolation or attributed after an offline gap
DECREASE = 2  # cumulative index fell with no rollover or replacement recorded
SPIKE = 4  # increase above ~1.5 x rated power x interval
NEGATIVE = 8  # negative value
OUT_OF_RANGE = 16  # instantaneous value outside the meter's range
IMPORTED = 32  # came from a CSV import rather than a live poll
BACKFILL = 64  # generated history (demo) or re-read from a meter's memory

NAMES = {
    ESTIMATED: "estimated",
    DECREASE: "decrease",
    SPIKE: "spike",
    NEGATIVE: "negative",
    OUT_OF_RANGE: "out_of_range",
    IMPORTED: "imported",
    BACKFILL: "backfill",
}


def describe(flags: int) -> list[str]:
    """Names of the flags set in `flags`."""
    return [name for bit, name in NAMES.items() if flags & bit]
