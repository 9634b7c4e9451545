"""A /query that InfluxDB is slow to answer fails once with a clear error, after the
query timeout, and is not sent again (a busy server, not a gone one)."""

from __future__ import annotations

import json
import re
import socket
import threading

import pytest

from storage import influx
from storage.base import StoreError


def fake_influx(answer_after_s: float | None, slow: bytes = b"meter_event") -> tuple[socket.socket, list[bytes]]:
    """A server answering JSON at once (`SHOW DATABASES`: the database; else no rows), but
    a request mentioning `slow` after `answer_after_s` (None: never); returns the listener
    and the requests seen."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    seen: list[bytes] = []
    databases = json.dumps({"results": [{"statement_id": 0, "series": [
        {"name": "databases", "columns": ["name"], "values": [["db"]]}]}]}).encode()
    empty = json.dumps({"results": [{"statement_id": 0}]}).encode()

    def read_request(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            if not (chunk := conn.recv(65536)):
                return b""
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1)) if b"ength:" in head else 0
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def handle(conn: socket.socket) -> None:
        while request := read_request(conn):
            seen.append(request)
            if slow in request:
                if answer_after_s is None:
                    return  # held, never answered
                threading.Event().wait(answer_after_s)
            answer = databases if b"SHOW" in request else empty
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(answer)).encode() + b"\r\n\r\n" + answer)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener, seen


def test_a_query_that_times_out_is_sent_once_and_named(monkeypatch):
    """A CSV /query (a read of samples) that is never answered."""
    monkeypatch.setattr(influx, "QUERY_TIMEOUT_S", 0.3)
    monkeypatch.setattr(influx, "BACKOFF_S", 0.0)
    listener, seen = fake_influx(answer_after_s=None, slow=b"application/csv")
    store = influx.InfluxStore(f"influxdb://127.0.0.1:{listener.getsockname()[1]}/db", create_database=False)
    try:
        with pytest.raises(StoreError, match=r"did not answer a query within 0.3 s"):
            store.read_samples(meter_ids=["M1"])
    finally:
        store.close()
        listener.close()
    assert sum(b"application/csv" in r for r in seen) == 1  # not retried: with retries 1 + influx.RETRIES


def test_a_json_query_may_take_longer_than_a_write(monkeypatch):
    """A JSON /query (events, bills, settings) waits QUERY_TIMEOUT_S like a CSV one, not
    the TIMEOUT_S of a write: an answer after 1 s reaches the caller, sent once."""
    monkeypatch.setattr(influx, "TIMEOUT_S", 0.2)
    monkeypatch.setattr(influx, "QUERY_TIMEOUT_S", 10.0)
    monkeypatch.setattr(influx, "BACKOFF_S", 0.0)
    listener, seen = fake_influx(answer_after_s=1.0)
    store = influx.InfluxStore(f"influxdb://127.0.0.1:{listener.getsockname()[1]}/db", create_database=False)
    try:
        assert store.read_events(meter_ids=["M1"]).empty
    finally:
        store.close()
        listener.close()
    assert sum(b"meter_event" in r for r in seen) == 1


def test_a_json_query_that_times_out_is_sent_once_and_named(monkeypatch):
    monkeypatch.setattr(influx, "TIMEOUT_S", 0.1)
    monkeypatch.setattr(influx, "QUERY_TIMEOUT_S", 0.3)
    monkeypatch.setattr(influx, "BACKOFF_S", 0.0)
    listener, seen = fake_influx(answer_after_s=None)
    store = influx.InfluxStore(f"influxdb://127.0.0.1:{listener.getsockname()[1]}/db", create_database=False)
    try:
        with pytest.raises(StoreError, match=r"did not answer a query within 0.3 s"):
            store.read_events(meter_ids=["M1"])
    finally:
        store.close()
        listener.close()
    assert sum(b"meter_event" in r for r in seen) == 1  # not retried: with retries 1 + influx.RETRIES
