"""Encoding engineering values into Modbus registers, as a meter does.

Kept separate from the collectors' decoder on purpose: the two are written
independently from the same profile data, so the tests over real TCP cross-check
each other (and `mbpoll` and pymodbus's own simulator check both).
"""

from __future__ import annotations

import struct
from typing import Any

# struct format and register count per data type (big-endian, ABCD)
_FORMATS: dict[str, tuple[str, int]] = {
    "int16": (">h", 1),
    "uint16": (">H", 1),
    "int32": (">i", 2),
    "uint32": (">I", 2),
    "float32": (">f", 2),
    "float64": (">d", 4),
}
_INT_RANGES: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


def words_of(dtype: str) -> int:
    """Registers (16-bit words) taken by one value of `dtype`."""
    return _FORMATS[dtype][1]


def encode(value: float, spec: dict[str, Any]) -> list[int]:
    """Registers holding `value` (engineering units) for a register `spec` of a profile:
    raw = value / scale, packed as `type` with `word_order` (big = ABCD, little = CDAB)
    and `byte_order` (little swaps the two bytes of each word: BADC / DCBA).

    Integer types truncate towards zero (as meters do) and wrap at their width."""
    dtype = spec.get("type", "uint16")
    fmt, _ = _FORMATS[dtype]
    raw = value / float(spec.get("scale", 1.0) or 1.0)
    if dtype in _INT_RANGES:
        lo, hi = _INT_RANGES[dtype]
        span = hi - lo + 1
        raw_int = int(raw)
        raw_int = (raw_int - lo) % span + lo
        data = struct.pack(fmt, raw_int)
    else:
        data = struct.pack(fmt, raw)
    if spec.get("byte_order", "big") == "little":
        data = b"".join(data[i + 1:i + 2] + data[i:i + 1] for i in range(0, len(data), 2))
    regs = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    if spec.get("word_order", "big") == "little":
        regs.reverse()
    return regs


def served_value(value: float, spec: dict[str, Any]) -> float:
    """The engineering value a reader gets back after `encode` (float32 rounding or
    integer truncation at the register's resolution)."""
    dtype = spec.get("type", "uint16")
    scale = float(spec.get("scale", 1.0) or 1.0)
    if dtype == "float32":
        return float(struct.unpack(">f", struct.pack(">f", value / scale))[0]) * scale
    if dtype == "float64":
        return value
    return int(value / scale) * scale
