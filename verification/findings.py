"""Structured findings of a verification (code, message, values) and `InsufficientData`, its refusal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.yamlfile import ConfigError


@dataclass(frozen=True)
class Finding:
    """One thing a reader of the verification must know, or one reason it cannot be done.

    code: stable identifier (e.g. `baseline_short`, `extrapolation`) for programs;
    message: the sentence the report, the CLI and the dashboard show;
    values: the figures behind the message (plain numbers and strings, units in the keys);
    field: the field the finding is about: of the project file (`baseline.start`) or,
      for a driver CSV's finding, its column (`temp_c`, the file in `values["file"]`); "" when none.
    """

    code: str
    message: str
    values: Mapping[str, Any] = field(default_factory=dict)
    field: str = ""

    def __str__(self) -> str:
        return self.message


class InsufficientData(ConfigError):
    """The data (the store's consumption or bills, the driver CSVs) do not allow a
    verification: too short a baseline, too few or too patchy periods, missing drivers,
    meters without data or reading too coarsely, bills that cannot be used.

    `problems` are located in the project file (or the driver CSV), as for ConfigError,
    which this subclasses so that every caller that reports configuration problems
    (the CLI, the dashboard) reports these too; catch it first to tell them apart.
    `findings` are the same failures with their codes and values."""

    def __init__(self, problems: list, findings: list[Finding] | None = None):
        super().__init__(problems)
        self.findings = list(findings or [])
