"""CivicWatt quotas: dual-control targets (双控) and quota standards (能耗定额).

Public API: `load_quotas`, `validate_quotas_file` (quotas.config), `quota_levels`,
`quota_levels_wide`, `evaluate_targets` (quotas.evaluate).
"""

from quotas.config import QuotaConfig, Standard, Target, load_quotas, validate_quotas_file
from quotas.evaluate import evaluate_targets, quota_levels, quota_levels_wide

__all__ = ["QuotaConfig", "Standard", "Target", "evaluate_targets", "load_quotas", "quota_levels",
           "quota_levels_wide", "validate_quotas_file"]
