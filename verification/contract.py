"""Settlement of energy-performance contracts (合同能源管理), pure arithmetic.

`payment_cny` is what the owner pays the contractor for the reporting period
(negative: the contractor pays the owner).

Contracts settled on measured savings (shared and guaranteed savings) pay nothing
when the savings cannot be verified (`unverified_because`: the baseline fails ASHRAE
Guideline 14 for its granularity, or the fractional savings uncertainty at 68 % is not
below 50 %; verification.savings.verdict): the payment is 0 and `payment_basis` says why.

* shared_savings (节能效益分享): verified avoided energy x tariff x contractor_share.
  With `require_significance` (the default) nothing is paid when the savings are not
  distinguishable from zero at 90 % confidence (the lower 90 % bound is not above 0):
  ASHRAE Guideline 14 asks that savings exceed their uncertainty before they are
  claimed. A month of negative savings offsets positive months; the total is never
  negative.
* guaranteed_savings (节能量保证): the owner pays `fee_cny`; the contractor refunds the
  shortfall (guarantee - verified savings, valued at the tariff) and, if
  `excess_share` is set, earns that share of savings above the guarantee. The
  guarantee is `guaranteed_quantity` (energy units) or `guaranteed_cny`.
* energy_cost_trusteeship (能源费用托管): the owner pays a trusteeship fee equal to the
  baseline energy cost, pro rata for the reporting days plus non-routine adjustments;
  the baseline follows JS/T 301-2024 (see `trusteeship_baseline`). The contractor's
  margin is the fee minus the actual energy cost. It does not depend on measured
  savings, so their verification does not gate it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from verification.findings import Finding
from verification.sufficiency import MIN_COVERAGE

# JS/T 301-2024 (domain.md section 7): years "within ±10 %" use the three-year average.
TRUSTEESHIP_BAND = 0.10
TRUSTEESHIP_YEARS = 3
DAYS_PER_YEAR = 365  # a contract year; the fee is pro rata per day


def trusteeship_baseline(annual: dict[int, float]) -> tuple[float, str, bool]:
    """Annual baseline quantity of an energy-cost trusteeship from the last three
    years of use (JS/T 301-2024): if use fell every year, the latest year; if the years
    are within ±10 % of their average, the three-year average. Returns (quantity, rule,
    rule_applies). When neither rule applies the three-year average is returned with
    rule_applies False: the parties must agree the baseline (give `baseline_quantity`).
    """
    years = sorted(annual)[-TRUSTEESHIP_YEARS:]
    q = np.array([annual[y] for y in years], float)
    span = f"{years[0]}-{years[-1]}" if len(years) > 1 else str(years[0])
    if len(q) >= 2 and np.all(np.diff(q) < 0):
        return float(q[-1]), f"use fell every year {span}: latest year {years[-1]}", True
    mean = float(q.mean())
    if len(q) == TRUSTEESHIP_YEARS and np.all(np.abs(q / mean - 1.0) <= TRUSTEESHIP_BAND + 1e-12):
        return mean, f"years {span} within ±{TRUSTEESHIP_BAND:.0%} of their average: three-year average", True
    return mean, (f"neither rule of JS/T 301-2024 applies to {span} ({len(q)} year(s)); average used, "
                  f"agree the baseline in the contract (baseline_quantity)"), False


def settle(contract, avoided: np.ndarray, low90_total: float, actual_total: float,
           reporting_days: int, adjustments_total: float = 0.0,
           trusteeship_annual: float | None = None, unverified_because: str = "") -> tuple[dict, np.ndarray]:
    """Payment due under `contract` (a verification.project.Contract).

    avoided: verified avoided energy per reporting period (energy units);
    unverified_because: why the savings cannot be paid on ("" when they can).
    Returns (summary items, payment per period in CNY).
    """
    avoided = np.asarray(avoided, float)
    tariff = contract.tariff_cny_per_unit
    total = float(avoided.sum())
    significant = low90_total > 0
    out: dict = {"contract_type": contract.type, "tariff_cny_per_unit": tariff,
                 "avoided_value_cny": total * tariff}
    per_period = np.zeros(len(avoided))
    if unverified_because and contract.type != "energy_cost_trusteeship":
        out["payment_cny"] = 0.0
        out["payment_basis"] = f"no payment: savings not verified ({unverified_because})"
        return out, per_period
    if contract.type == "shared_savings":
        share = float(contract.contractor_share)
        paid = significant or not contract.require_significance
        per_period = avoided * tariff * share if paid else per_period
        out["contractor_share"] = share
        out["payment_basis"] = ("verified savings" if paid else
                                "no payment: savings not significant at 90 % confidence")
        out["payment_cny"] = max(float(per_period.sum()), 0.0)
    elif contract.type == "guaranteed_savings":
        guarantee_q = (contract.guaranteed_quantity if contract.guaranteed_quantity is not None
                       else contract.guaranteed_cny / tariff if tariff > 0 else 0.0)
        shortfall_q = max(guarantee_q - total, 0.0)
        excess_q = max(total - guarantee_q, 0.0)
        out.update({"guaranteed_quantity": guarantee_q, "guarantee_met": shortfall_q == 0.0,
                    "shortfall_quantity": shortfall_q, "shortfall_cny": shortfall_q * tariff,
                    "fee_cny": contract.fee_cny, "excess_share": contract.excess_share,
                    "excess_cny": excess_q * tariff * contract.excess_share})
        out["payment_cny"] = contract.fee_cny - shortfall_q * tariff + excess_q * tariff * contract.excess_share
        per_period = avoided * tariff
        out["payment_basis"] = "fee - shortfall + excess share"
    else:
        annual = float(trusteeship_annual if trusteeship_annual is not None else 0.0)
        fee_q = annual * reporting_days / DAYS_PER_YEAR + adjustments_total
        out.update({"trusteeship_baseline_annual": annual, "trusteeship_fee_quantity": fee_q,
                    "actual_cost_cny": actual_total * tariff,
                    "contractor_margin_cny": (fee_q - actual_total) * tariff})
        out["payment_cny"] = fee_q * tariff
        out["payment_basis"] = "baseline energy cost (JS/T 301-2024), pro rata, plus non-routine adjustments"
        per_period = np.full(len(avoided), out["payment_cny"] / max(len(avoided), 1))
    return out, per_period


def uses_history(contract) -> bool:
    """An energy-cost trusteeship whose baseline comes from past years' use (no agreed
    `baseline_quantity`): `annual_history`, else the store (see `history_years`)."""
    return contract is not None and contract.type == "energy_cost_trusteeship" and contract.baseline_quantity is None


def history_years(reporting_start: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day of the TRUSTEESHIP_YEARS calendar years before the reporting start year."""
    year = reporting_start.year
    return dt.date(year - TRUSTEESHIP_YEARS, 1, 1), dt.date(year - 1, 12, 31)


def annual_use(daily: pd.DataFrame, first_year: int, last_year: int, n_meters: int) -> dict[int, float]:
    """Use per complete calendar year (energy units) from daily consumption (period,
    quantity, n_meters): a year counts when at least MIN_COVERAGE of its days
    have data from every meter, and its use is scaled up to the whole year."""
    year_of = daily["period"].dt.year
    out: dict[int, float] = {}
    for year in range(first_year, last_year + 1):  # three years
        sel = daily[year_of == year]
        days = 366 if pd.Timestamp(year=year, month=12, day=31).day_of_year == 366 else 365
        if len(sel) >= MIN_COVERAGE * days and (sel["n_meters"] == n_meters).all():
            out[year] = float(sel["quantity"].sum()) * days / len(sel)
    return out


def settle_contract(contract, avoided: np.ndarray, low90_total: float, actual_total: float, reporting_days: int,
                    adjustments_total: float, history: dict[int, float] | None,
                    unverified_because: str = "") -> tuple[dict, np.ndarray, list[Finding]]:
    """Payment due under `contract` over the reporting periods.

    avoided: avoided energy per reporting period (NaN: no data); history: annual use
    by year, required (not empty) for a trusteeship without an agreed baseline (`uses_history`);
    unverified_because: see `settle`.
    Returns (summary items, payment per period in CNY, NaN where no data; findings)."""
    has = np.isfinite(avoided)
    items: dict = {}
    findings: list[Finding] = []
    annual = None
    if contract.type == "energy_cost_trusteeship":
        if contract.baseline_quantity is not None:
            annual, rule = contract.baseline_quantity, "agreed in the contract (baseline_quantity)"
        else:
            if not history:
                raise ValueError("an energy-cost trusteeship without baseline_quantity needs the annual history")
            annual, rule, applies = trusteeship_baseline(history)
            if not applies:
                findings.append(Finding("trusteeship_baseline_not_agreed", rule, {"annual_use": dict(history)}))
        items["trusteeship_rule"] = rule
    settled, pay = settle(contract, avoided[has], low90_total, actual_total, reporting_days, adjustments_total, annual,
                          unverified_because)
    items.update(settled)
    payment = np.zeros(len(avoided))
    payment[has] = pay
    return items, np.where(has, payment, np.nan), findings
