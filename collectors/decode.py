"""Decoding register values per meter profile, and planning the reads.

A profile (core/profiles.yaml) says, per register: address (0-based), type
(int16/uint16/int32/uint32/float32/float64), word_order (big = ABCD, little = CDAB),
byte_order (little swaps the bytes of each word: BADC, DCBA), scale and ct_pt (the
value is secondary-side: multiply by the CT and PT ratios read from the meter).

`plan_reads` turns the registers a poll needs into as few requests as possible:
contiguous registers in one request, never longer than the gateway's or the device's
`max_registers`, never across an undefined address (meters answer those with
exception 2).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from core.profiles import MODBUS_MAX_READ, REGISTER_WORDS, load_profiles

_STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f", "float64": ">d"}
INSTANT_REGISTERS = ("power", "flow")  # the instantaneous value read with the index, for range checks


def decode(regs: list[int] | tuple[int, ...], spec: dict[str, Any]) -> float:
    """Engineering value (raw x scale) of one register value; `regs` in wire order."""
    dtype = spec.get("type", "uint16")
    words = list(regs[:REGISTER_WORDS[dtype]])
    if spec.get("word_order", "big") == "little":
        words.reverse()
    data = b"".join(w.to_bytes(2, "big") for w in words)
    if spec.get("byte_order", "big") == "little":
        data = b"".join(data[i + 1:i + 2] + data[i:i + 1] for i in range(0, len(data), 2))
    return struct.unpack(_STRUCT[dtype], data)[0] * float(spec.get("scale", 1.0))


@dataclass(frozen=True)
class Read:
    """One request: function code, first address, register count."""

    function_code: int
    address: int
    count: int


@dataclass(frozen=True)
class ProfilePlan:
    """What one poll of a meter model reads and how to decode it."""

    profile: str
    function_code: int
    reads: tuple[Read, ...]
    fields: tuple[tuple[str, int, dict[str, Any]], ...]  # (name, address, spec)
    ratio_reads: tuple[Read, ...]  # CT/PT registers, read once per connection
    ratio_fields: tuple[tuple[str, int, dict[str, Any]], ...]


def plan_reads(spans: list[tuple[int, int]], function_code: int, max_registers: int) -> list[Read]:
    """Requests covering every (address, words) span: contiguous spans merged, each
    request at most `max_registers` long (a value longer than that is read in pieces)."""
    limit = max(1, min(int(max_registers), MODBUS_MAX_READ))
    words = sorted({a + k for a, n in spans for k in range(n)})
    reads: list[Read] = []
    start = prev = None
    for w in words:
        if start is None:
            start = prev = w
            continue
        if w == prev + 1 and w - start + 1 <= limit:
            prev = w
            continue
        reads.append(Read(function_code, start, prev - start + 1))
        start = prev = w
    if start is not None:
        reads.append(Read(function_code, start, prev - start + 1))
    return reads


def profile_plan(name: str, max_registers: int = MODBUS_MAX_READ, with_instant: bool = True) -> ProfilePlan:
    """The read plan of a profile for a device/gateway that accepts `max_registers`."""
    profile = load_profiles()[name]
    fc = int(profile.get("function_code", 3))
    limit = min(int(max_registers), int(profile.get("max_registers", MODBUS_MAX_READ)))
    regs = profile["registers"]
    wanted = ["energy"] + ([next((r for r in INSTANT_REGISTERS if r in regs), None)] if with_instant else [])
    fields = tuple((n, int(regs[n]["address"]), regs[n]) for n in wanted if n)
    spans = [(a, REGISTER_WORDS[s.get("type", "uint16")]) for _, a, s in fields]
    ratio_fields = tuple((n, int(profile[key]["address"]), profile[key])
                         for n, key in (("ct", "ct_register"), ("pt", "pt_register")) if profile.get(key))
    ratio_spans = [(a, REGISTER_WORDS[s.get("type", "uint16")]) for _, a, s in ratio_fields]
    return ProfilePlan(name, fc, tuple(plan_reads(spans, fc, limit)), fields,
                       tuple(plan_reads(ratio_spans, fc, limit)), ratio_fields)


def extract(plan_fields: tuple[tuple[str, int, dict[str, Any]], ...], blocks: dict[int, int]) -> dict[str, float]:
    """Decode named fields from {address: register} gathered by the reads."""
    out = {}
    for name, addr, spec in plan_fields:
        n = REGISTER_WORDS[spec.get("type", "uint16")]
        out[name] = decode([blocks[addr + k] for k in range(n)], spec)
    return out
