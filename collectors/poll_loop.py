"""The asyncio loop that polls every gateway of a collector, in a thread of its own.

`build_pollers` groups the meters by gateway into `collectors.poller.GatewayPoller`s;
`PollLoop.submit(at_s)` polls the slot containing `at_s` on every gateway (at most
`max_in_flight` gateways at a time) and hands each gateway's results, as they come, to
`sink` (a callable taking a list of (row, slot t, raw index, instantaneous, error)).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from collectors.decode import INSTANT_REGISTERS, profile_plan
from collectors.meter_state import slot_s
from collectors.poller import GatewayPoller, Target
from core.schemas.gateways import GatewayOptions, options_for

GatewayKey = tuple[str, int]


def build_pollers(meters: Sequence[Any], options: Mapping[str, GatewayOptions], profiles: Mapping[str, Any]
                  ) -> dict[GatewayKey, GatewayPoller]:
    """One poller per gateway (host, port) of `meters` (registry meters with `modbus`;
    meter i is row i). `options` by "host:port", "*" for the default."""
    groups: dict[GatewayKey, list[Target]] = {}
    plans: dict[tuple[str, int], Any] = {}
    for row, m in enumerate(meters):
        key = (m.modbus.host, m.modbus.port)
        opts = options_for(options, *key)
        plan_key = (m.modbus.profile, opts.max_registers)
        if plan_key not in plans:
            plans[plan_key] = profile_plan(*plan_key)
        groups.setdefault(key, []).append(_target(row, m, plans[plan_key], profiles[m.modbus.profile]))
    return {key: GatewayPoller(key[0], key[1], targets, options_for(options, *key))
            for key, targets in groups.items()}


def _target(row: int, meter: Any, plan: Any, profile: dict[str, Any]) -> Target:
    registers = profile["registers"]
    inst = next((x for x in INSTANT_REGISTERS if x in registers), None)
    ispec = registers.get(inst, {}) if inst else {}
    return Target(row=row, meter_id=meter.id, unit=meter.modbus.unit, plan=plan, multiplier=float(meter.multiplier),
                  energy_ct_pt=bool(registers["energy"].get("ct_pt")), instant_name=inst,
                  instant_ct_pt=bool(ispec.get("ct_pt")), instant_per_kilo=0.001 if ispec.get("unit") == "W" else 1.0)


class PollLoop:
    """The poll loop's thread, its event loop, and the cycles in flight."""

    def __init__(self, pollers: Mapping[GatewayKey, GatewayPoller], interval_s: np.ndarray,
                 sink: Callable[[list[tuple]], None], max_in_flight: int = 256):
        self.pollers = pollers
        self.interval_s = interval_s  # per row
        self.sink = sink
        self.max_in_flight = max_in_flight
        self.cycles = 0  # gateway cycles done
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sem: asyncio.Semaphore | None = None
        self._inflight: set[concurrent.futures.Future] = set()
        self._inflight_lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start the loop's thread (returns once the loop runs)."""
        if self._thread is not None:
            return
        ready = threading.Event()
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # timeouts are ours to report
        self._thread = threading.Thread(target=self._main, args=(ready,), name="civicwatt-poll", daemon=True)
        self._thread.start()
        ready.wait()

    def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._sem = asyncio.Semaphore(self.max_in_flight)
        ready.set()
        self._loop.run_forever()
        for poller in self.pollers.values():
            self._loop.run_until_complete(poller.close())
        self._loop.close()

    def submit(self, at_s: float, only_interval_s: int | None = None) -> concurrent.futures.Future:
        """Poll the slot containing `at_s` (epoch s) on every gateway, only the meters
        polled every `only_interval_s` if given; the future is done when all have been."""
        assert self._loop is not None, "start() first"
        fut = asyncio.run_coroutine_threadsafe(self._poll_all(at_s, only_interval_s), self._loop)
        with self._inflight_lock:
            self._inflight.add(fut)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut: concurrent.futures.Future) -> None:
        with self._inflight_lock:
            self._inflight.discard(fut)

    async def _poll_all(self, at_s: float, only_interval_s: int | None) -> None:
        tasks = []
        for poller in self.pollers.values():
            rows = np.array([t.row for t in poller.targets if only_interval_s is None
                             or self.interval_s[t.row] == only_interval_s], dtype=np.int64)
            if not len(rows):
                continue
            slots = slot_s(at_s, self.interval_s[rows])
            deadline_s = max(1.0, float(self.interval_s[rows].min()) * poller.options.cycle_fraction)
            tasks.append(self._poll_gateway(poller, dict(zip(rows.tolist(), slots.tolist(), strict=True)), deadline_s))
        await asyncio.gather(*tasks)

    async def _poll_gateway(self, poller: GatewayPoller, slot_of: dict[int, int], deadline_s: float) -> None:
        assert self._sem is not None
        async with self._sem:
            out: list[tuple] = []
            try:
                await poller.poll(slot_of, deadline_s, out)
            finally:
                self.cycles += 1
                if out:
                    self.sink(out)

    def wait_inflight(self, timeout_s: float) -> None:
        """Wait (up to `timeout_s` in all) for the cycles submitted so far."""
        deadline = time.monotonic() + timeout_s
        with self._inflight_lock:
            inflight = list(self._inflight)
        for fut in inflight:
            with contextlib.suppress(Exception):
                fut.result(timeout=max(0.1, deadline - time.monotonic()))

    def stop(self) -> None:
        """Stop the loop (closing every gateway connection) and join its thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = self._loop = None
