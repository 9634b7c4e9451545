"""Sharding the gateways over N collector processes: `--shard I/N`.

A gateway (host:port) belongs to shard `1 + H(host:port) mod N`, H a stable hash
(BLAKE2b, not Python's per-process `hash`). Every process computes the same split from
the same registry, so N processes cover every gateway exactly once; adding or removing
a gateway moves no other gateway.
"""

from __future__ import annotations

import hashlib


def gateway_shard(host: str, port: int, n: int) -> int:
    """The 1-based shard of a gateway among `n`."""
    digest = hashlib.blake2b(f"{host}:{int(port)}".encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "big") % n


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 1 <= I <= N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        i = n = 0
    if not (n >= 1 and 1 <= i <= n):
        raise ValueError(f"expected I/N with 1 <= I <= N, not {text!r}")
    return i, n
