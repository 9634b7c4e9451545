"""Every product module says in its first docstring line what it is for (issue 10 item 6)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("api", "alerts", "civicwatt", "collectors", "core", "dashboard", "device_sim", "models", "national",
           "quotas", "reports", "storage", "verification", "benchmarks", "scripts")


def product_modules() -> list[Path]:
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "*.py"], capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / f for f in files if f.split("/")[0] in PRODUCT]


def first_line_problem(source: str) -> str | None:
    """Why a module's docstring does not open with a one-line summary, or None."""
    doc = ast.get_docstring(ast.parse(source), clean=False)
    if not doc or not doc.strip():
        return "no module docstring"
    lines = doc.strip().splitlines()
    if not lines[0].rstrip().endswith((".", ")", ":", "。")):
        return f"first line is not a complete summary: {lines[0][:80]!r}"
    if len(lines) > 1 and lines[1].strip():
        return "the summary line is not followed by a blank line"
    return None


def test_the_rule_tells_a_summary_from_a_wrapped_sentence():
    assert first_line_problem('"""Readings CSV files."""') is None
    assert first_line_problem('"""Readings CSV files.\n\nMore."""') is None
    assert first_line_problem('"""Readings and bills CSV files: parsing with every\nproblem."""') is not None
    assert first_line_problem('"""Readings.\nMore on the next line."""') is not None
    assert first_line_problem("x = 1\n") == "no module docstring"


def test_every_product_module_opens_with_a_one_line_summary():
    modules = product_modules()
    assert len(modules) > 100
    bad = {str(p.relative_to(ROOT)): why for p in modules if (why := first_line_problem(p.read_text())) is not None}
    assert bad == {}
