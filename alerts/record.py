"""The alert record (interfaces.md, "Alerts") shared by the rules, the outbox and the UI.

One JSON object per alert: rule, severity, institution_id or scope, indicator, period,
actual, limit, projected, message_zh, message_en, first_seen, key.

* `scope` names what the alert is about: ``institution:HB-0001``, ``meter:HB-0001-E0``,
  ``region:hebei`` or ``region:hebei/category:school``; `institution_id` is set whenever
  the scope lies inside one institution (institution and meter scopes), else None.
* `key` is stable across evaluations: ``rule/scope/indicator/period``. Two evaluations
  that find the same condition produce the same key, which is what the outbox
  de-duplicates on; values (actual, projected) may change between them.
* `first_seen` is the ISO 8601 time the condition was first reported; the outbox keeps
  the first one it saw for a key, whatever later evaluations say.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
SEVERITY_RANK: dict[str, int] = {s: n for n, s in enumerate(SEVERITIES)}

ALERT_FIELDS: tuple[str, ...] = (
    "rule", "severity", "institution_id", "scope", "indicator", "period", "actual", "limit",
    "projected", "unit", "message_zh", "message_en", "first_seen", "key",
)


def make_key(rule: str, scope: str, indicator: str, period: str) -> str:
    """The stable de-duplication key of an alert."""
    return f"{rule}/{scope}/{indicator}/{period}"


def _clean_number(value: Any) -> float | None:
    if value is None:
        return None
    x = float(value)
    return None if math.isnan(x) else x


@dataclass(frozen=True)
class Alert:
    """One detected condition. Build with `Alert.new(...)` so the key is derived."""

    rule: str
    severity: str
    scope: str
    indicator: str
    period: str
    message_zh: str
    message_en: str
    first_seen: str
    key: str
    institution_id: str | None = None
    actual: float | None = None
    limit: float | None = None
    projected: float | None = None
    unit: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    @classmethod
    def new(cls, rule: str, severity: str, scope: str, indicator: str, period: str, *,
            message_zh: str, message_en: str, first_seen: str, institution_id: str | None = None,
            actual: float | None = None, limit: float | None = None, projected: float | None = None,
            unit: str = "", extra: dict[str, Any] | None = None, key_period: str | None = None) -> Alert:
        """`key_period` replaces `period` in the key for conditions that persist from one
        period to the next (a meter offline, data incomplete day after day): the alert
        stays one open alert while `period` shows the latest day."""
        return cls(rule=rule, severity=severity, scope=scope, indicator=indicator, period=period,
                   message_zh=message_zh, message_en=message_en, first_seen=first_seen,
                   key=make_key(rule, scope, indicator, period if key_period is None else key_period),
                   institution_id=institution_id,
                   actual=_clean_number(actual), limit=_clean_number(limit),
                   projected=_clean_number(projected), unit=unit, extra=dict(extra or {}))

    @property
    def group(self) -> str:
        """scope/indicator/period of the key: alerts of one group describe the same
        quantity, so a more severe rule (an actual breach) supersedes a milder one (a
        projected breach)."""
        return self.key.split("/", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        """The interfaces.md JSON object (plus `unit`, and `extra` when not empty)."""
        d = asdict(self)
        extra = d.pop("extra")
        out = {k: d[k] for k in ALERT_FIELDS}
        if extra:
            out["extra"] = extra
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        known = {k: d.get(k) for k in ALERT_FIELDS if k in d}
        known.setdefault("unit", "")
        return cls(**known, extra=dict(d.get("extra") or {}))

    def with_first_seen(self, first_seen: str) -> Alert:
        return replace(self, first_seen=first_seen)
