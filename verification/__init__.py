"""Savings verification for energy-performance contracts (IPMVP options B and C,
ASHRAE Guideline 14): baseline models, fit statistics, savings uncertainty,
normalized savings, contract payments and the report workbook.

    project = load_project("emc-001.yaml", registry)   # or load_project(path)
    result = verify(project, store)                    # -> MVResult
    write_report(result, "emc-001.xlsx")
"""

from verification.project import Adjustment, Contract, MVProject, load_project
from verification.report import chart_frame, write_report
from verification.verify import MVResult, verify, verify_file

__all__ = ["Adjustment", "Contract", "MVProject", "MVResult", "chart_frame", "load_project", "verify", "verify_file",
           "write_report"]
