"""The Modbus TCP simulator: every meter of a registry behind its gateway.

One pymodbus `ModbusTcpServer` per gateway (host, port), one unit id per meter, as real
sites are wired (a TCP gateway in front of an RS-485 bus). Register values are computed
at the moment of each request from the load model (`device_sim.load`), so a reader sees
indices that grow exactly as the integral of the power it reads.

Design: the pymodbus server does the protocol (framing, transactions, exception
responses); its datastore is replaced by `GatewayDatastore`, which answers
`async_getValues` from the meter state. A SimDevice block would hold every register
from the lowest to the highest address (16k registers per DTSU666) and need a write per
change; computing on read costs nothing between requests and scales to 10,000 meters.

Faults are injected per meter at run time (`inject`), or per gateway (`inject_gateway`):

| kind        | effect |
| ----------- | ------ |
| offline     | the unit does not answer (the request times out) |
| slow        | answers after `delay_s` |
| exception   | answers with Modbus exception `code` (e.g. 4 device failure, 6 busy, 11 gateway target) |
| reset       | the index restarts from 0 (persistent) |
| replacement | a new meter: the index continues from `new_index` (persistent) |
| rollover    | the index jumps to `margin` below the register's maximum and wraps (persistent) |
| spike       | `amount` is added to the index while the fault lasts (a glitch) |
| hang (gw)   | the whole gateway stops answering |

Gateway options (`gateway_options={port: {...}}`): `max_registers` (longer reads get
exception 3, illegal data value, as small devices do), `min_pause_s` (a request sooner
than this after the previous answer gets exception 6, busy).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from core.profiles import load_profiles
from core.schemas.faults import FAULT_KINDS, GATEWAY_FAULT_KINDS
from device_sim import codec
from device_sim.history import rollover_of
from device_sim.load import STEP_S, MeterModel

log = logging.getLogger("civicwatt.simulate")

NOMINAL_VOLTAGE_V = 220.0  # phase voltage of a 380/220 V supply
PT_REGISTER_ONE = 10  # DTSU666 UrAt is the PT ratio x 10 (domain.md section 6)
_fault_ids = itertools.count(1)


@dataclass
class Fault:
    kind: str
    start: float
    end: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    offset: float | None = None  # persistent kinds: index offset fixed at activation
    id: int = field(default_factory=lambda: next(_fault_ids))

    def active(self, now: float) -> bool:
        return self.start <= now and (self.end is None or now < self.end)


def _register_map(profile: dict[str, Any]) -> dict[int, tuple[str, int, dict[str, Any]]]:
    """address -> (register name, word offset inside the value, spec)."""
    out: dict[int, tuple[str, int, dict[str, Any]]] = {}
    regs = dict(profile["registers"])
    if profile.get("ct_register"):
        regs["ct"] = profile["ct_register"]
    if profile.get("pt_register"):
        regs["pt"] = profile["pt_register"]
    for name, spec in regs.items():
        for k in range(codec.words_of(spec.get("type", "uint16"))):
            out[int(spec["address"]) + k] = (name, k, spec)
    return out


class GatewayDatastore:
    """What pymodbus's server calls for every request to one gateway."""

    def __init__(self, sim: Simulator, port: int, units: dict[int, int], options: dict[str, Any]):
        self.sim = sim
        self.port = port
        self.units = units  # unit id -> meter row
        self.max_registers = int(options.get("max_registers") or 125)
        self.min_pause_s = float(options.get("min_pause_s") or 0.0)
        self.last_answer = 0.0
        self.requests = 0

    def device_ids(self) -> list[int]:
        return sorted(self.units)

    async def async_setValues(self, device_id: int, func_code: int, address: int, values: list) -> ExcCodes | None:
        return ExcCodes.ILLEGAL_FUNCTION  # meters are read-only here

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1
                              ) -> list[int] | ExcCodes:
        sim = self.sim
        now = sim.clock()
        self.requests += 1
        if sim.gateway_hung(self.port, now):
            raise NoSuchIdException(f"gateway {self.port} hung")
        row = self.units.get(device_id)
        if row is None:
            raise NoSuchIdException(f"no unit {device_id} behind gateway {self.port}")
        if self.min_pause_s and time.monotonic() - self.last_answer < self.min_pause_s:
            self.last_answer = time.monotonic()
            return ExcCodes.DEVICE_BUSY
        if count > self.max_registers:
            return ExcCodes.ILLEGAL_VALUE
        for fault in sim.faults_of(row, now):
            if fault.kind == "offline":
                raise NoSuchIdException(f"unit {device_id} offline")
            if fault.kind == "exception":
                return ExcCodes(int(fault.params.get("code", 4)))
            if fault.kind == "slow":
                await asyncio.sleep(float(fault.params.get("delay_s", 2.0)))
                now = sim.clock()
        profile = sim.profile_of(row)
        if int(profile.get("function_code", 3)) != func_code:
            return ExcCodes.ILLEGAL_FUNCTION
        regmap = sim.regmap_of(row)
        out = [0] * count
        cache: dict[str, list[int]] = {}
        for i in range(count):
            hit = regmap.get(address + i)
            if hit is None:
                return ExcCodes.ILLEGAL_ADDRESS
            name, k, spec = hit
            if name not in cache:
                cache[name] = codec.encode(sim.register_value(row, name, now), spec)
            out[i] = cache[name][k]
        self.last_answer = time.monotonic()
        return out


class Simulator:
    """Serve `meters` (dicts, see device_sim.history) over Modbus TCP.

    `start_values`: a frame meter_id, time, value (e.g. the last rows of
    `generate_history`; the index continues from there by the same load model), or a
    dict meter_id -> index at start. `clock`: epoch seconds (tests freeze it).
    """

    def __init__(self, meters: list[dict[str, Any]], seed: int = 1, start_values: Any = None,
                 clock: Callable[[], float] = time.time, gateway_options: dict[int, dict[str, Any]] | None = None,
                 bind_host: str | None = None):
        self.meters = [m for m in meters if m.get("port") and m.get("profile")]
        self.clock = clock
        self.model = MeterModel(self.meters, seed=seed)
        self.row_of = {str(m["id"]): i for i, m in enumerate(self.meters)}
        self.gateway_options = gateway_options or {}
        self.bind_host = bind_host
        self._lock = threading.Lock()
        self._faults: dict[int, list[Fault]] = {}
        self._gw_faults: dict[int, list[Fault]] = {}
        profiles = load_profiles()
        self._profiles = [profiles[m["profile"]] for m in self.meters]
        self._regmaps = {name: _register_map(p) for name, p in profiles.items()}
        self._rollover = np.array([rollover_of(m) for m in self.meters])
        self._mult = self.model.multiplier
        self._init_state(start_values)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[ModbusTcpServer] = []
        self.datastores: dict[int, GatewayDatastore] = {}
        self._stop_event: asyncio.Event | None = None

    # -- state ------------------------------------------------------------------
    def _init_state(self, start_values: Any) -> None:
        now = self.clock()
        n = len(self.meters)
        self._step = int(now // STEP_S)
        step_start = float(self._step * STEP_S)
        base = self.model.initial_index.astype(float).copy()
        t_from = np.full(n, step_start)
        if isinstance(start_values, pd.DataFrame) and len(start_values):
            last = start_values.sort_values("time").groupby("meter_id").tail(1)
            for mid, t, v in zip(last["meter_id"], pd.DatetimeIndex(last["time"]).as_unit("s").asi8, last["value"],
                                 strict=True):
                if mid in self.row_of:
                    base[self.row_of[mid]] = float(v)
                    t_from[self.row_of[mid]] = float(t)
        elif isinstance(start_values, dict):
            for mid, v in start_values.items():
                if mid in self.row_of:
                    base[self.row_of[mid]] = float(v)
                    t_from[self.row_of[mid]] = now
        if n:
            base = base + self.model.integrate(t_from, step_start)
        # the index without faults is unbounded; wrapping happens when serving
        self._anchor = base  # raw index at the start of the current step
        self._rate = self._rates(np.array([self._step]))[:, 0] if n else np.zeros(0)
        self._power = self._rate * 3600.0 * self._mult  # primary units per hour

    def _rates(self, steps: np.ndarray) -> np.ndarray:
        return self.model.power(steps) / self._mult[:, None] / 3600.0

    def _advance(self, now: float) -> None:
        step = int(now // STEP_S)
        if step <= self._step:
            return
        steps = np.arange(self._step, step + 1)
        rates = self._rates(steps)
        self._anchor = self._anchor + rates[:, :-1].sum(axis=1) * STEP_S
        self._rate = rates[:, -1]
        self._power = self._rate * 3600.0 * self._mult
        self._step = step

    def true_index(self, row: int, now: float) -> float:
        """Index before faults and wrapping (raw units)."""
        with self._lock:
            self._advance(now)
            start = self._step * STEP_S
            if now >= start:
                return float(self._anchor[row] + self._rate[row] * (now - start))
            # a moment before the current step (tests looking back): integrate backwards
            back = self.model.integrate(np.full(len(self.meters), float(now)), float(start))
            return float(self._anchor[row] - back[row])

    def index(self, meter_id: str, now: float | None = None) -> float:
        """The index the meter's energy register holds now (engineering value, before
        the register's own rounding)."""
        row = self.row_of[meter_id]
        return self._served_index(row, self.clock() if now is None else now)

    def _served_index(self, row: int, now: float) -> float:
        value = self.true_index(row, now)
        for fault in self._faults.get(row, ()):
            if fault.kind in ("reset", "replacement", "rollover") and fault.start <= now:
                if fault.offset is None:
                    at_start = value - self._rate[row] * max(0.0, now - fault.start)
                    if fault.kind == "reset":
                        target = 0.0
                    elif fault.kind == "replacement":
                        target = float(fault.params.get("new_index", 0.0))
                    else:
                        target = float(self._rollover[row]) - float(fault.params.get("margin", 1.0))
                    fault.offset = target - at_start
                value += fault.offset
        roll = self._rollover[row]
        if np.isfinite(roll):
            value = value % roll
        for fault in self._faults.get(row, ()):
            if fault.kind == "spike" and fault.active(now):
                value += float(fault.params.get("amount", 1e6))
        return value

    def power(self, meter_id: str, now: float | None = None) -> float:
        """Primary power (kW) or flow (unit/h) now."""
        row = self.row_of[meter_id]
        with self._lock:
            self._advance(self.clock() if now is None else now)
            return float(self._power[row])

    def register_value(self, row: int, name: str, now: float) -> float:
        """Engineering value of a register (as the profile's `unit`, before CT/PT)."""
        mult = float(self._mult[row])
        if name in ("energy", "energy_total"):
            return self._served_index(row, now)
        if name == "energy_export":
            return 0.0
        if name == "power":
            with self._lock:
                self._advance(now)
                kw = float(self._power[row])
            return kw * 1000.0 / mult  # W, secondary side when the meter has CTs
        if name == "flow":
            with self._lock:
                self._advance(now)
                return float(self._power[row]) / mult
        if name == "ct":
            return float(max(1, round(mult)))
        if name == "pt":
            return PT_REGISTER_ONE * 0.1
        if name.startswith("voltage"):
            return NOMINAL_VOLTAGE_V
        return 0.0

    def profile_of(self, row: int) -> dict[str, Any]:
        return self._profiles[row]

    def regmap_of(self, row: int) -> dict[int, tuple[str, int, dict[str, Any]]]:
        return self._regmaps[self.meters[row]["profile"]]

    # -- faults -----------------------------------------------------------------
    def inject(self, meter_id: str, kind: str, duration_s: float | None = None, start_in_s: float = 0.0,
               **params: Any) -> Fault:
        """Inject a fault into one meter, from now (+ start_in_s) for duration_s (None:
        until cleared). Returns the fault (see the module docstring for kinds and params)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        row = self.row_of[meter_id]
        start = self.clock() + start_in_s
        fault = Fault(kind, start, None if duration_s is None else start + duration_s, dict(params))
        with self._lock:
            self._faults.setdefault(row, []).append(fault)
        return fault

    def inject_gateway(self, port: int, kind: str = "hang", duration_s: float | None = None,
                       start_in_s: float = 0.0) -> Fault:
        if kind not in GATEWAY_FAULT_KINDS:
            raise ValueError(f"unknown gateway fault kind {kind!r} (known: {', '.join(GATEWAY_FAULT_KINDS)})")
        start = self.clock() + start_in_s
        fault = Fault(kind, start, None if duration_s is None else start + duration_s)
        with self._lock:
            self._gw_faults.setdefault(int(port), []).append(fault)
        return fault

    def clear(self, meter_id: str | None = None, kinds: tuple[str, ...] = ("offline", "slow", "exception", "spike")
              ) -> None:
        """End transient faults (persistent index changes stay: a reset meter stays reset)."""
        with self._lock:
            rows = self._faults if meter_id is None else {self.row_of[meter_id]: None}
            for row in list(rows):
                self._faults[row] = [f for f in self._faults.get(row, []) if f.kind not in kinds]
            if meter_id is None:
                self._gw_faults.clear()

    def faults_of(self, row: int, now: float) -> list[Fault]:
        faults = self._faults.get(row)
        return [f for f in faults if f.active(now)] if faults else []

    def gateway_hung(self, port: int, now: float) -> bool:
        faults = self._gw_faults.get(port)
        return bool(faults) and any(f.active(now) for f in faults)

    # -- serving ----------------------------------------------------------------
    def gateways(self) -> dict[tuple[str, int], dict[int, int]]:
        """(host, port) -> {unit id: meter row}."""
        out: dict[tuple[str, int], dict[int, int]] = {}
        for row, m in enumerate(self.meters):
            key = (self.bind_host or str(m.get("host") or "127.0.0.1"), int(m["port"]))
            out.setdefault(key, {})[int(m.get("unit") or 1)] = row
        return out

    async def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        self._stop_event = asyncio.Event()
        try:
            for (host, port), units in self.gateways().items():
                placeholder = SimDevice(id=0, simdata=SimData(0, datatype=DataType.REGISTERS))
                server = ModbusTcpServer(placeholder, address=(host, port), ignore_missing_devices=True)
                store = GatewayDatastore(self, port, units, self.gateway_options.get(port, {}))
                server.context = store  # type: ignore[assignment]  # duck-typed datastore, see module doc
                self.datastores[port] = store
                await server.serve_forever(background=True)
                self._servers.append(server)
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            await self._shutdown()
            return
        ready.set()
        await self._stop_event.wait()
        await self._shutdown()

    async def _shutdown(self) -> None:
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.shutdown()
        self._servers.clear()

    def start(self, timeout_s: float = 30.0) -> Simulator:
        """Start serving in a background thread; return when every port listens."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve(ready, errors))
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=main, name="civicwatt-simulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError("the simulator did not start in time")
        if errors:
            self._thread.join(5)
            raise RuntimeError(f"the simulator could not listen: {errors[0]}") from errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop_event.set)
            self._thread.join(10)
        self._thread = None

    def run_forever(self) -> None:
        """Serve until Ctrl-C (for `civicwatt simulate`)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
