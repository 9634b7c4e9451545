"""The YAML loader refuses what could crash or hang a command, and the one pydantic mapper
locates every schema error at FILE:LINE: FIELD."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.schemas.base import Positive, Strict
from core.yamlfile import MAX_ALIAS_NODES, MAX_BYTES, MAX_DEPTH, ConfigError, load_yaml, validate_node


def _problem(path, text: str | bytes):
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert len(err.value.problems) == 1
    return err.value.problems[0]


def test_duplicate_keys_name_both_lines(tmp_path):
    f = tmp_path / "d.yaml"
    p = _problem(f, "a: 1\nmeters:\n  - id: M1\n    parent: X\n    multiplier: 2\n    parent: Y\n")
    assert (p.file, p.line, p.field) == (str(f), 6, "parent") and "also at line 4" in p.message
    p = _problem(f, "x: {k: 1, k: 2}\n")
    assert (p.line, p.field) == (1, "k")
    # a merge key's value may be overridden: that is YAML, not a duplicate
    f.write_text("base: &b {port: 502, unit: 1}\nm: {<<: *b, unit: 2}\n")
    assert load_yaml(f)["m"] == {"port": 502, "unit": 2}


def test_text_that_is_not_utf8_is_refused_with_its_line(tmp_path):
    f = tmp_path / "e.yaml"
    p = _problem(f, "a: 1\nb: 2\nname: Zürich\n".encode("latin-1"))
    assert p.line == 3 and p.field == "-" and p.message.startswith("not UTF-8 text (byte 0xfc")
    p = _problem(f, "name: 河北\n".encode("utf-16"))
    assert p.line == 1 and "not UTF-8" in p.message
    f.write_bytes("\ufeffname: 河北\n".encode())  # UTF-8 with BOM is fine
    assert load_yaml(f) == {"name": "河北"}


@pytest.mark.parametrize("flow", [False, True])
def test_nesting_deeper_than_the_limit_is_refused(tmp_path, flow):
    f = tmp_path / "n.yaml"

    def nested(depth: int) -> str:
        if flow:
            return "[" * (depth - 1) + "1" + "]" * (depth - 1) + "\n"
        return "".join(" " * i + "- \n" for i in range(depth - 2)) + " " * (depth - 2) + "- 1\n"

    f.write_text(nested(MAX_DEPTH))
    value = load_yaml(f)
    for _ in range(MAX_DEPTH - 2):
        value = value[0]
    assert value == [1]
    p = _problem(f, nested(MAX_DEPTH + 1))
    assert f"nested deeper than {MAX_DEPTH} levels" in p.message and p.line >= 1
    p = _problem(f, nested(5000 if flow else 1000))  # 5,000 was a RecursionError
    assert "nested deeper" in p.message


def test_files_over_the_size_limit_are_refused(tmp_path):
    f = tmp_path / "big.yaml"
    line = "# " + "x" * 1021 + "\n"
    f.write_text(line * (MAX_BYTES // len(line) - 1) + "a: 1\n")
    assert f.stat().st_size <= MAX_BYTES and load_yaml(f) == {"a": 1}
    f.write_text(line * (MAX_BYTES // len(line) + 1))
    p = _problem(f, f.read_text())
    assert p.message.startswith("file too large") and f"{MAX_BYTES:,}" in p.message


def test_alias_bombs_are_refused_and_small_anchors_kept(tmp_path):
    f = tmp_path / "lol.yaml"
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    p = _problem(f, "\n".join(lines) + "\n")  # 10**9 nodes when expanded
    assert "anchors and aliases expand to" in p.message and f"{MAX_ALIAS_NODES:,}" in p.message
    # just under the limit: accepted (1 + 10 nodes per copy of a0)
    copies = MAX_ALIAS_NODES // 11
    f.write_text("a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nall: [" + ", ".join(["*a0"] * copies) + "]\n")
    assert len(load_yaml(f)["all"]) == copies
    f.write_text("a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nall: [" + ", ".join(["*a0"] * (copies + 1)) + "]\n")
    assert "anchors and aliases" in _problem(f, f.read_text()).message


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=80),
                 st.text(alphabet="ab:-[]{}&*!|>'\"#\n ,?<\t1.e%", max_size=120)))
def test_any_input_loads_or_is_refused_cleanly(tmp_path_factory, content):
    f = tmp_path_factory.mktemp("fuzz") / "x.yaml"
    (f.write_bytes if isinstance(content, bytes) else f.write_text)(content)
    try:
        load_yaml(f)
    except ConfigError as exc:
        assert exc.problems and all(p.file == str(f) and p.line >= 0 and p.message for p in exc.problems)


class _Item(Strict):
    value: Positive
    name: str = ""


class _Doc(Strict):
    items: tuple[_Item, ...] = ()


def test_mapper_locates_list_items_echoes_values_and_lists_known_keys(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("items:\n  - {value: 1}\n  - value: -2\n  - 7\n  - {value: 1, colour: " + "x" * 200 + "}\n"
                 "  - value: '" + "9" * 100 + "x'\n")
    problems: list = []
    assert validate_node(_Doc, load_yaml(f), str(f), "", problems) is None
    got = {(p.line, p.field): p.message for p in problems}
    assert got[(3, "items[1].value")] == "Input should be greater than 0, not -2"
    assert got[(4, "items[2]")] == "must be a mapping"
    assert got[(5, "items[3].colour")] == "unknown key (known: value, name)"
    long = got[(6, "items[4].value")]
    assert long.endswith("...") and len(long.split(", not ", 1)[1]) == 80
