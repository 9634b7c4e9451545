"""Open data-quality alerts per institution: what the year-end assessment's data-quality criterion counts."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

#: The meter-data rules that say the data are wrong or missing (not that use is abnormal):
#: a silent meter, incomplete days, sub-meters adding up to more than their parent.
DATA_QUALITY_RULES: tuple[str, ...] = ("meter_offline", "data_completeness", "submeter_imbalance")


def open_quality_alerts(alerts: Iterable[dict], year: int, tz: str = "Asia/Shanghai") -> pd.DataFrame:
    """institution_id, open_quality_alerts: per institution, how many of `alerts` (e.g.
    `alerts.outbox.Outbox.list_alerts(open_only=True)`) are open alerts of the
    DATA_QUALITY_RULES first seen before the end of `year` (local time `tz`): an alert
    that opened later is not about that year."""
    df = pd.DataFrame.from_records(list(alerts)).reindex(columns=["institution_id", "rule", "status", "first_seen"])
    df["status"] = df["status"].fillna("open")
    end = pd.Timestamp(year=year + 1, month=1, day=1, tz=tz)
    seen = pd.to_datetime(df["first_seen"], utc=True, errors="coerce", format="ISO8601")
    keep = (df["institution_id"].notna() & df["rule"].isin(DATA_QUALITY_RULES) & (df["status"] == "open")
            & (seen < end).to_numpy(bool))
    counts = df[keep.to_numpy(bool)].groupby("institution_id").size()
    return pd.DataFrame({"institution_id": counts.index.astype(object).to_numpy(),
                         "open_quality_alerts": counts.to_numpy(int)})
