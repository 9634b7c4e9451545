"""Real loopback servers for the alert tests: an HTTP webhook receiver and an SMTP server.

The SMTP server is aiosmtpd with STARTTLS and AUTH. No tests live here."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers import free_port


class WebhookServer:
    """Records every POST (path, headers, JSON body); answers `status` and `reply`.
    `start()` may be called late to model a receiver that is down at first; the first
    `fail_first` requests get HTTP 503; with `hold` set, each request is recorded and then
    left unanswered until `release` is set (a sender can be killed meanwhile)."""

    def __init__(self, port: int | None = None, status: int = 200, reply: dict | None = None, delay_s: float = 0.0,
                 fail_first: int = 0, hold: bool = False):
        self.port = port or free_port()
        self.delay_s = delay_s
        self.status = status
        self.fail_first = fail_first
        self.hold = hold
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.reply = reply if reply is not None else {"ok": True}
        self.received: list[dict] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if owner.delay_s:
                    time.sleep(owner.delay_s)
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                owner.received.append({"path": self.path, "headers": dict(self.headers),
                                       "body": json.loads(body.decode("utf-8"))})
                owner.arrived.set()
                if owner.hold:
                    owner.release.wait(30)
                data = json.dumps(owner.reply).encode()
                failing = len(owner.received) <= owner.fail_first
                try:
                    self.send_response(503 if failing else owner.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the sender is gone (killed, or it timed out)
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.received]


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI), as (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class _Handler:
    def __init__(self, sink: list):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.sink.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": msg,
                          "tls": session.ssl is not None, "user": getattr(session, "login_data", None)})
        return "250 OK"


class SmtpServer:
    """aiosmtpd on loopback requiring STARTTLS before AUTH (user/password)."""

    def __init__(self, cert: Path, key: Path, user: str = "alerts", password: str = "s3cret",
                 port: int | None = None, implicit_tls: bool = False):
        import ssl

        self.port = port or free_port()
        self.messages: list[dict] = []
        self.user, self.password = user, password
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))

        def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)

        # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; an implicit-TLS
        # listener is encrypted from the first byte, so AUTH may be offered at once.
        tls = ({"ssl_context": ctx, "auth_require_tls": False} if implicit_tls else
               {"tls_context": ctx, "require_starttls": True, "auth_require_tls": True})
        self.controller = Controller(_Handler(self.messages), hostname="127.0.0.1", port=self.port,
                                     auth_required=True, authenticator=authenticator,
                                     server_hostname="127.0.0.1", **tls)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
