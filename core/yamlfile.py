"""YAML loading that remembers where every value came from, and the one pydantic-error mapper.

Configuration errors must name the file, the line and the field, so the loader keeps
the line number of every mapping, of every key inside it and of every list item.
`load_yaml` is the one entry for every config file and holds the limits (size, nesting,
alias expansion, duplicate keys, UTF-8); `validate_node` / `pydantic_problems` turn a
schema's errors into FILE:LINE: FIELD problems.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, RootModel, ValidationError
from yaml.composer import Composer

#: Limits of every YAML file read through `load_yaml` (issue 15: no input may crash or hang a command).
MAX_BYTES = 10 * 1024 * 1024  # a config file larger than this is refused (the registry allows more)
MAX_DEPTH = 50  # nesting levels
MAX_ALIAS_NODES = 10_000  # nodes that anchors/aliases may add when expanded ("billion laughs")


class LineDict(dict):
    """A dict that knows the 1-based line of itself (`line`) and of each key (`key_lines`)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A list that knows the 1-based line of itself (`line`) and of each item (`item_lines`)."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _Refused(Exception):
    """Composition stopped at `line` for `message` (a limit, or a duplicate key)."""

    def __init__(self, line: int, message: str, field: str = "-"):
        super().__init__(message)
        self.line, self.message, self.field = line, message, field


#: libyaml's scanner and parser when PyYAML is built with it (3-4x faster on a province's
#: registry of tens of MB), else PyYAML's own.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SAFE_LOADER):  # type: ignore[valid-type, misc]
    """SafeLoader that records lines, refuses deep nesting and counts aliases.

    The nodes are composed in Python (`yaml.composer.Composer`) over the parser's events
    also with libyaml, so the depth and alias checks see every node before it is built.
    Control characters are refused up front with PyYAML's reader's own rule and error."""

    get_single_node = Composer.get_single_node
    compose_document = Composer.compose_document
    compose_scalar_node = Composer.compose_scalar_node
    compose_sequence_node = Composer.compose_sequence_node
    compose_mapping_node = Composer.compose_mapping_node

    def __init__(self, stream: str):
        bad = yaml.reader.Reader.NON_PRINTABLE.search(stream)
        if bad:
            raise yaml.reader.ReaderError("<unicode string>", bad.start(), ord(bad.group()), "unicode",
                                          "special characters are not allowed")
        super().__init__(stream)
        Composer.__init__(self)
        self.scalar_tags: dict[str, str] = {}
        self.depth = 0
        self.aliases = 0

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        """The tag of a node; a plain scalar's depends on its text only (no path
        resolvers here), so each distinct text is resolved once per file."""
        if kind is yaml.ScalarNode and implicit[0]:
            tag = self.scalar_tags.get(value)
            if tag is None:
                tag = self.scalar_tags[value] = super().resolve(kind, value, implicit)
            return tag
        return super().resolve(kind, value, implicit)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(self.peek_event().start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels")
            return Composer.compose_node(self, parent, index)
        finally:
            self.depth -= 1


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    first: dict[Any, int] = {}
    for key_node, _ in node.value:  # explicit keys only: a merged (`<<`) key may be overridden
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):
            raise _Refused(line, "a key must be text or a number")
        if key in first:
            raise _Refused(line, f"duplicate key '{key}' (also at line {first[key]})", str(key))
        first[key] = line
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[str(key)] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


@dataclass(frozen=True)
class Problem:
    """One configuration or input problem, located as precisely as we can."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem found, never just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def mapping_items(doc: LineDict, key: str, file: str, problems: list[Problem]) -> list[tuple[int, LineDict]]:
    """(index, item) for each mapping in the list `doc[key]` (a missing key: none).
    A value that is not a list, or an item that is not a mapping, becomes a problem."""
    raw = doc.get(key) or []
    if not isinstance(raw, list):
        problems.append(Problem(file, doc.line_of(key), key, "must be a list"))
        return []
    items = []
    for n, item in enumerate(raw):
        if isinstance(item, LineDict):
            items.append((n, item))
        else:
            problems.append(Problem(file, doc.line_of(key), f"{key}[{n}]", "must be a mapping"))
    return items


def _echo(value: Any) -> str:
    """`value` as quoted in a message, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _known_keys(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model that `loc` (a pydantic error location, the last part
    being the unknown key) sits in: walks models, root models, lists, tuples, dicts, optionals."""
    tp = model
    for part in (*loc[:-1], None):
        while True:
            if get_origin(tp) in (Union, UnionType, Annotated):
                args = [a for a in get_args(tp) if a is not type(None)]
                tp = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), args[0])
            elif isinstance(tp, type) and issubclass(tp, RootModel):
                tp = tp.model_fields["root"].annotation
            else:
                break
        if part is None:
            break
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            tp = field.annotation if field is not None else None
        elif get_origin(tp) in (list, tuple, dict):
            tp = get_args(tp)[-1 if get_origin(tp) is dict else 0]
        else:
            return []
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


_PLAIN = {"missing": "required", "model_type": "must be a mapping", "dict_type": "must be a mapping",
          "list_type": "must be a list", "tuple_type": "must be a list"}


def _message(err: Any, model: Any) -> str:
    """A pydantic error as a sentence: rule messages as written, the bad value echoed."""
    kind = err["type"]
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind == "extra_forbidden":
        known = _known_keys(model, err["loc"]) if model is not None else []
        return "unknown key" + (f" (known: {', '.join(known)})" if known else "")
    if kind in ("value_error", "assertion_error"):
        return str(err["ctx"]["error"])
    value = err.get("input")
    if isinstance(value, str | int | float | bool | type(None)):
        return f"{err['msg']}, not {_echo(value)}"
    return err["msg"]


def pydantic_problems(file: str, node: Any, where: str, exc: ValidationError,
                      model: Any = None) -> list[Problem]:
    """The one mapper from a pydantic ValidationError on `node` (a LineDict or list
    loaded by `load_yaml`) to problems located as FILE:LINE: FIELD, `where` being the
    field path of `node` itself ("" at the top of the file). List items read `key[0]`;
    `model` (the validated model) lets an unknown key's message list the known ones."""
    problems = []
    for err in exc.errors():
        cur: Any = node
        line = getattr(node, "line", 0)
        for part in err["loc"]:
            if isinstance(cur, LineDict) and part in cur:
                line = cur.line_of(part)
                cur = cur[part]
            elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
                line = cur.line_of(part) if isinstance(cur, LineList) else getattr(cur[part], "line", line)
                cur = cur[part]
            else:
                break
        field = where
        for part in err["loc"]:
            if isinstance(part, int):
                field += f"[{part}]"
            elif part != "[key]":
                field += f".{part}" if field else str(part)
        problems.append(Problem(file, line, field or "-", _message(err, model)))
    return problems


def validate_node(model: type[BaseModel], node: Any, file: str, where: str,
                  problems: list[Problem]) -> Any | None:
    """`model` validated from `node`, or None with its problems appended to `problems`."""
    try:
        return model.model_validate(node)
    except ValidationError as exc:
        problems.extend(pydantic_problems(file, node, where, exc, model))
        return None


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes under `node` with every alias expanded (counted, not built)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once here; the constructor refuses it
    if isinstance(node, yaml.SequenceNode):
        memo[id(node)] = 1 + sum(_expanded_size(c, memo) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        memo[id(node)] = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    return memo[id(node)]


def read_config_bytes(path: Path, max_bytes: int = MAX_BYTES) -> tuple[bytes, os.stat_result]:
    """The file's bytes and its `stat()` taken before the read; ConfigError when it is
    unreadable or larger than `max_bytes`."""
    file = str(path)
    try:
        st = path.stat()
        if st.st_size > max_bytes:
            raise ConfigError([Problem(file, 0, "-", f"file too large: {st.st_size:,} bytes (at most {max_bytes:,})")])
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(file, 0, "-", f"cannot read file: {exc.strerror}")]) from exc
    if len(data) > max_bytes:  # grew between the stat and the read
        raise ConfigError([Problem(file, 0, "-", f"file too large: {len(data):,} bytes (at most {max_bytes:,})")])
    return data, st


def _decode(data: bytes, file: str) -> str:
    """`data` as text (UTF-8, with or without BOM); ConfigError naming the line when it is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError([Problem(file, line, "-", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                                                    f"{exc.start}): save the file as UTF-8")]) from exc


def load_yaml(path: str | Path, max_bytes: int = MAX_BYTES, data: bytes | None = None) -> Any:
    """Load a YAML file; mappings come back as `LineDict`, lists as `LineList`.

    The one entry for every config file: syntax errors, duplicate keys, text that is not
    UTF-8, files over `max_bytes`, nesting deeper than MAX_DEPTH and aliases expanding to
    more than MAX_ALIAS_NODES extra nodes raise ConfigError (FILE:LINE: FIELD: reason).
    `data`: the file's bytes when the caller has read them (`read_config_bytes`), e.g.
    to hash exactly what is parsed."""
    path = Path(path)
    file = str(path)
    text = _decode(read_config_bytes(path, max_bytes)[0] if data is None else data, file)
    loader = None
    try:
        loader = _LineLoader(text)  # the reader refuses control characters here
        node = loader.get_single_node()
        if node is None:
            return None
        if loader.aliases:
            memo: dict[int, int] = {}
            extra = _expanded_size(node, memo) - len(memo)
            if extra > MAX_ALIAS_NODES:
                raise ConfigError([Problem(file, 1, "-", f"anchors and aliases expand to {extra:,} more nodes "
                                                         f"(at most {MAX_ALIAS_NODES:,})")])
        return loader.construct_document(node)
    except _Refused as exc:
        raise ConfigError([Problem(file, exc.line, exc.field, exc.message)]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if "exceeded maximum nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own limit (1,000)
            raise ConfigError([Problem(file, mark.line + 1 if mark is not None else 0, "-",
                                       f"nested deeper than {MAX_DEPTH} levels")]) from exc
        pos = getattr(exc, "position", None)  # a ReaderError (control character) has no mark
        line = mark.line + 1 if mark is not None else text.count("\n", 0, pos) + 1 if pos is not None else 0
        raise ConfigError([Problem(file, line, "-", f"YAML syntax error: {exc}")]) from exc
    except ValueError as exc:  # PyYAML builds dates itself: `2024-11-31` raises ValueError
        line, bad = _bad_date(text)
        message = f"not a valid date: {bad}" if bad else f"invalid value: {exc}"
        raise ConfigError([Problem(file, line, "-", message)]) from exc
    finally:
        if loader is not None:
            loader.dispose()


def _bad_date(text: str) -> tuple[int, str]:
    """The first line holding an impossible ISO date (what PyYAML rejects), and the date."""
    for n, line in enumerate(text.splitlines(), start=1):
        for y, m, d in re.findall(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", line):
            try:
                date(int(y), int(m), int(d))
            except ValueError:
                return n, f"{y}-{m}-{d}"
    return 0, ""
