"""The registry's validated snapshot (`load_registry` through `core.filecache.FileCache` on disk)."""

from __future__ import annotations

import os
import pickle

import pytest

import core.registry
from civicwatt.sample import write_sample
from core.filecache import CACHE_DIR_ENV, FileCache
from core.registry import load_registry
from core.yamlfile import ConfigError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "registry"


@pytest.fixture
def registry_path(tmp_path):
    write_sample(tmp_path / "p", n_institutions=3)
    return tmp_path / "p" / "civicwatt.yaml"


def _no_parse(monkeypatch):
    """Parsing the YAML now fails the test: the registry must come from the snapshot."""
    def refuse(*args, **kwargs):
        raise AssertionError("the registry was parsed, not served from its snapshot")
    monkeypatch.setattr(core.registry, "load_yaml", refuse)


def _entry(cache):
    [entry] = cache.glob("*.pickle")
    return entry


def test_a_valid_registry_is_served_from_its_snapshot(cache, registry_path, monkeypatch):
    parsed = load_registry(registry_path)
    assert oct(cache.stat().st_mode & 0o777) == "0o700" and oct(_entry(cache).stat().st_mode & 0o777) == "0o600"
    with monkeypatch.context() as m:
        _no_parse(m)
        served = load_registry(registry_path)
    assert served.model_dump() == parsed.model_dump() and served.source == str(registry_path)
    assert served.meters_frame().equals(parsed.meters_frame())
    assert served.institutions_frame().equals(parsed.institutions_frame())
    relative = os.path.relpath(registry_path)
    with monkeypatch.context() as m:
        _no_parse(m)
        assert load_registry(relative).source == relative  # the same file: its snapshot, named as asked


def test_an_edit_keeping_size_and_mtime_is_seen(cache, registry_path):
    load_registry(registry_path)
    st = registry_path.stat()
    text = registry_path.read_text(encoding="utf-8")
    name = load_registry(registry_path).institutions[0].name
    assert len(name) >= 2 and text.count(f"name: {name}\n") == 1
    edited = name[:-2] + name[-1] + name[-2]  # same characters, same byte length, same line
    registry_path.write_text(text.replace(f"name: {name}\n", f"name: {edited}\n"), encoding="utf-8")
    os.utime(registry_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert registry_path.stat().st_size == st.st_size and registry_path.stat().st_mtime_ns == st.st_mtime_ns
    assert load_registry(registry_path).institutions[0].name == edited != name


def test_an_invalid_file_gets_no_snapshot_and_keeps_its_located_errors(cache, registry_path):
    load_registry(registry_path)
    entry = _entry(cache)
    before = entry.read_bytes()
    text = registry_path.read_text(encoding="utf-8")
    lines = text.splitlines()
    line = next(n for n, s in enumerate(lines, 1) if s.strip().startswith("floor_area_m2:"))
    lines[line - 1] = lines[line - 1].split(":")[0] + ": -5"
    registry_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for _ in range(2):  # never served from the last valid snapshot
        with pytest.raises(ConfigError) as info:
            load_registry(registry_path)
        assert [(p.file, p.line, p.field) for p in info.value.problems] == [
            (str(registry_path), line, "institutions[0].floor_area_m2")]
    assert entry.read_bytes() == before
    registry_path.write_text(text, encoding="utf-8")
    assert load_registry(registry_path).institutions[0].floor_area_m2 > 0


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other version", "other stamp"])
def test_an_unreadable_or_foreign_snapshot_is_ignored_and_rewritten(cache, registry_path, monkeypatch, damage):
    want = load_registry(registry_path).model_dump()
    entry = _entry(cache)
    data = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"not a pickle at all")
    else:
        with entry.open("rb") as f:
            version, key, stamp = pickle.load(f)
            value = pickle.load(f)
        if damage == "other version":
            version = "another build"
        else:
            stamp = (*stamp[:3], "0" * 64)
        with entry.open("wb") as f:
            pickle.dump((version, key, stamp), f)
            pickle.dump(value.model_copy(update={"timezone": "Europe/Paris"}), f)  # would show if served
    assert load_registry(registry_path).model_dump() == want
    with monkeypatch.context() as m:
        _no_parse(m)
        assert load_registry(registry_path).model_dump() == want  # rewritten


def test_a_snapshot_others_could_write_is_not_read(cache, registry_path, monkeypatch):
    load_registry(registry_path)
    cache.chmod(0o777)
    with monkeypatch.context() as m:
        _no_parse(m)
        with pytest.raises(AssertionError, match="was parsed"):
            load_registry(registry_path)
    assert load_registry(registry_path).institutions  # still loads, by parsing


def test_no_snapshot_when_the_cache_is_off(tmp_path, registry_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_registry(registry_path).institutions
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()


def test_disk_entries_outlive_the_process_and_never_fail_a_get(tmp_path):
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            return value
        return run

    FileCache(tmp_path / "c", version="1").get("k", (1, "h"), compute([1, 2]))
    assert FileCache(tmp_path / "c", version="1").get("k", (1, "h"), compute("x")) == [1, 2]  # another instance
    assert FileCache(tmp_path / "c", version="2").get("k", (1, "h"), compute("v2")) == "v2"  # another version
    assert FileCache(tmp_path / "c", version="2").get("k", (2, "h"), compute("s2")) == "s2"  # another stamp
    assert calls == [[1, 2], "v2", "s2"]
    unpicklable = FileCache(tmp_path / "c").get("lambda", 1, lambda: (lambda: 3))
    assert unpicklable() == 3 and not FileCache(tmp_path / "c").entry_path("lambda").exists()
    (tmp_path / "file").write_text("a file where the directory would go")
    assert FileCache(tmp_path / "file" / "sub").get("k", 1, compute("w")) == "w"  # cannot write: no failure
