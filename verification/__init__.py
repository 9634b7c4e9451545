"""Savings verification for energy-performance contracts (IPMVP options B and C, ASHRAE Guideline 14).

Baseline models, fit statistics, savings uncertainty, normalized savings, contract
payments and the report workbook. Two layers: a pure model layer on data frames
(frames, sufficiency, model, baseline, stats, savings, contract, result) and a thin
layer that reads the store (verify).

    project = load_project("emc-001.yaml", registry)   # or load_project(path)
    result = verify(project, store)                    # -> MVResult; InsufficientData if the data do not allow it
    write_report(result, "emc-001.xlsx")
"""

from verification.findings import Finding, InsufficientData
from verification.project import Adjustment, Contract, MVProject, load_project
from verification.report import chart_frame, write_report
from verification.result import MVResult
from verification.verify import verify, verify_file

__all__ = ["Adjustment", "Contract", "Finding", "InsufficientData", "MVProject", "MVResult", "chart_frame",
           "load_project", "verify", "verify_file", "write_report"]
