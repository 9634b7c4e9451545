"""Delivery channels for alert notifications, configured in a YAML file (`channels.yaml`).

    reminder_hours: 24          # re-notify an open, unacknowledged alert after this long
    retry: {base_s: 30, max_s: 3600}   # back-off of a failing channel: 30 s, 60 s, ... capped
    channels:
      - name: ops                # unique; the outbox tracks every delivery per channel
        type: webhook
        format: json             # json (the alert object) | wecom | dingtalk (group robots)
        url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...
        secret: SEC...           # dingtalk only: the robot's signing secret
        headers: {Authorization: Bearer xyz}
        timeout_s: 10
        min_severity: warning    # info | warning | critical (default info)
        language: both           # zh | en | both (text formats and e-mail)
      - name: mail
        type: email
        host: smtp.example.cn
        port: 587
        security: starttls       # starttls | ssl | none
        username: alerts@example.cn
        password_env: CIVICWATT_SMTP_PASSWORD   # or password: ... (not recommended)
        ca_file: /etc/ssl/private-ca.pem        # optional: trust this CA (self-signed servers)
        sender: alerts@example.cn
        to: [energy@example.cn]
      - name: log
        type: jsonl
        path: ./alerts.jsonl     # one JSON object per line, relative to the file's directory

A channel's `send(payload)` raises `DeliveryError` when the message was not accepted
(connection refused, non-2xx status, a robot's non-zero errcode, an SMTP error); the
outbox then retries it with back-off. Delivery is at least once: every attempt of one
notification carries the same `idempotency_key` (in the JSON body, the `Idempotency-Key`
webhook header, the e-mail `Message-ID`; see `delivery_headers`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import smtplib
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from alerts.record import SEVERITY_RANK
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml

DEFAULT_REMINDER_HOURS = 24.0
DEFAULT_RETRY_BASE_S = 30.0
DEFAULT_RETRY_MAX_S = 3600.0
DEFAULT_TIMEOUT_S = 10.0
LANGUAGES = ("zh", "en", "both")

KIND_TITLE = {
    "open": ("【能耗告警】", "[CivicWatt alert]"),
    "reminder": ("【告警提醒】", "[CivicWatt reminder]"),
    "resolved": ("【告警解除】", "[CivicWatt resolved]"),
}
SEVERITY_ZH = {"info": "提示", "warning": "警告", "critical": "严重"}


class DeliveryError(Exception):
    """A channel did not accept a notification; it will be retried."""


# -- message text -----------------------------------------------------------------

def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.2f}"
    return str(x)


def render_text(payload: dict[str, Any], language: str = "both") -> tuple[str, str]:
    """(title, body) of a notification in Chinese, English or both (Chinese first)."""
    kind = payload.get("notification", "open")
    zh_title, en_title = KIND_TITLE.get(kind, KIND_TITLE["open"])
    sev = payload.get("severity", "warning")
    unit = payload.get("unit") or ""
    zh_lines = [f"{zh_title}{SEVERITY_ZH.get(sev, sev)}：{payload.get('message_zh', '')}"]
    en_lines = [f"{en_title} {sev}: {payload.get('message_en', '')}"]
    if kind == "resolved":
        zh_lines.append(f"已于 {payload.get('resolved_at', '-')} 恢复正常（{payload.get('resolution_zh', '条件已消除')}）。")
        en_lines.append(f"Cleared at {payload.get('resolved_at', '-')} ({payload.get('resolution', 'condition cleared')}).")
    elif kind == "reminder":
        zh_lines.append(f"自 {payload.get('first_seen')} 起仍未解除（第 {payload.get('reminder', 1)} 次提醒）。")
        en_lines.append(f"Still open since {payload.get('first_seen')} (reminder {payload.get('reminder', 1)}).")
    zh_lines.append(f"对象 {payload.get('scope')}，指标 {payload.get('indicator')}，期间 {payload.get('period')}："
                    f"实际 {_fmt(payload.get('actual'))}，限值 {_fmt(payload.get('limit'))}，"
                    f"预测 {_fmt(payload.get('projected'))} {unit}")
    en_lines.append(f"Scope {payload.get('scope')}, indicator {payload.get('indicator')}, period "
                    f"{payload.get('period')}: actual {_fmt(payload.get('actual'))}, limit "
                    f"{_fmt(payload.get('limit'))}, projected {_fmt(payload.get('projected'))} {unit}")
    zh_lines.append(f"告警编号 {payload.get('key')}")
    en_lines.append(f"Alert key {payload.get('key')}")
    if payload.get("idempotency_key"):  # robots and mail readers see it too: the same on a resend
        zh_lines.append(f"投递编号 {payload['idempotency_key']}")
        en_lines.append(f"Delivery {payload['idempotency_key']}")
    if language == "zh":
        return zh_title + str(payload.get("message_zh", "")), "\n".join(zh_lines)
    if language == "en":
        return en_title + " " + str(payload.get("message_en", "")), "\n".join(en_lines)
    title = f"{zh_title}{payload.get('message_zh', '')} / {en_title} {payload.get('message_en', '')}"
    return title, "\n".join(zh_lines) + "\n\n" + "\n".join(en_lines)


def delivery_headers(payload: dict[str, Any]) -> dict[str, str]:
    """Headers that identify one delivery for the receiver (webhook and e-mail alike):
    `Idempotency-Key` (the same on every attempt of one notification: drop a replay),
    `X-CivicWatt-Delivery` (the outbox's delivery id) and `X-CivicWatt-Attempt`."""
    names = {"idempotency_key": "Idempotency-Key", "delivery_id": "X-CivicWatt-Delivery",
             "attempt": "X-CivicWatt-Attempt"}
    return {header: str(payload[k]) for k, header in names.items() if payload.get(k) is not None}


# -- channels ---------------------------------------------------------------------

@dataclass
class Channel:
    name: str
    min_severity: str = "info"
    language: str = "both"

    def accepts(self, payload: dict[str, Any]) -> bool:
        return SEVERITY_RANK.get(payload.get("severity", "info"), 0) >= SEVERITY_RANK[self.min_severity]

    def send(self, payload: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class WebhookChannel(Channel):
    """HTTP POST of JSON. `format`: json (the alert object itself, plus `notification`),
    wecom (企业微信群机器人 markdown message) or dingtalk (钉钉自定义机器人 markdown message,
    signed with `secret` when given)."""

    url: str = ""
    format: str = "json"
    secret: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S

    def body(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.format == "json":
            return payload
        title, text = render_text(payload, self.language)
        if self.format == "wecom":
            return {"msgtype": "markdown", "markdown": {"content": f"**{title}**\n" + text}}
        return {"msgtype": "markdown", "markdown": {"title": title[:64], "text": f"#### {title}\n\n" + text.replace("\n", "\n\n")}}

    def target_url(self, now_ms: int | None = None) -> str:
        if self.format != "dingtalk" or not self.secret:
            return self.url
        # DingTalk signing: HMAC-SHA256 of "timestamp\nsecret" keyed by the secret, base64, URL-encoded.
        stamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
        digest = hmac.new(self.secret.encode(), f"{stamp}\n{self.secret}".encode(), hashlib.sha256).digest()
        sign = urllib.parse.quote_plus(base64.b64encode(digest))
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}timestamp={stamp}&sign={sign}"

    def send(self, payload: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", **self.headers, **delivery_headers(payload)}
        data = json.dumps(self.body(payload), ensure_ascii=False).encode("utf-8")
        try:
            resp = httpx.post(self.target_url(), content=data, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= resp.status_code < 300:
            raise DeliveryError(f"{self.name}: HTTP {resp.status_code}: {resp.text[:200]}")
        if self.format in ("wecom", "dingtalk"):
            try:
                answer = resp.json()
            except ValueError as exc:
                raise DeliveryError(f"{self.name}: robot answered non-JSON: {resp.text[:200]}") from exc
            if answer.get("errcode", 0) != 0:
                raise DeliveryError(f"{self.name}: robot errcode {answer.get('errcode')}: {answer.get('errmsg')}")


@dataclass
class EmailChannel(Channel):
    """E-mail over SMTP (smtplib), STARTTLS or implicit TLS, optional login. The body is
    the bilingual text; the alert object is attached as `alert.json`."""

    host: str = "127.0.0.1"
    port: int = 25
    security: str = "starttls"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    sender: str = "civicwatt@localhost"
    to: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S

    def _tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        return ctx

    def message(self, payload: dict[str, Any]) -> EmailMessage:
        title, text = render_text(payload, self.language)
        msg = EmailMessage()
        msg["Subject"] = title
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        for name, value in delivery_headers(payload).items():
            if name == "Idempotency-Key":  # in mail, the Message-ID is the idempotency key
                domain = self.sender.rpartition("@")[2] or "localhost"
                msg["Message-ID"] = f"<{value}@{domain}>"
            msg[name] = value
        msg.set_content(text)
        msg.add_attachment(json.dumps(payload, ensure_ascii=False, indent=2).encode("utf-8"),
                           maintype="application", subtype="json", filename="alert.json")
        return msg

    def send(self, payload: dict[str, Any]) -> None:
        msg = self.message(payload)
        try:
            if self.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=self._tls())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                smtp.ehlo()
                if self.security == "starttls":
                    smtp.starttls(context=self._tls())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {exc}") from exc


_LOG_LOCK = threading.Lock()


@dataclass
class JsonlChannel(Channel):
    """Appends one JSON object per line (UTF-8) to `path`, flushed and fsync'ed."""

    path: str = "alerts.jsonl"

    def send(self, payload: dict[str, Any]) -> None:
        line = json.dumps(payload, ensure_ascii=False, sort_keys=True) + "\n"
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            with _LOG_LOCK, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise DeliveryError(f"{self.name}: {exc}") from exc


# -- configuration ----------------------------------------------------------------

@dataclass
class ChannelsConfig:
    channels: list[Channel] = field(default_factory=list)
    reminder_hours: float = DEFAULT_REMINDER_HOURS
    retry_base_s: float = DEFAULT_RETRY_BASE_S
    retry_max_s: float = DEFAULT_RETRY_MAX_S


_COMMON = {"name", "type", "min_severity", "language"}
_KEYS = {
    "webhook": _COMMON | {"url", "format", "secret", "headers", "timeout_s"},
    "email": _COMMON | {"host", "port", "security", "username", "password", "password_env", "ca_file",
                        "sender", "to", "timeout_s"},
    "jsonl": _COMMON | {"path"},
}


def _number(file: str, d: LineDict, key: str, default: float, problems: list[Problem], where: str,
            minimum: float = 0.0) -> float:
    if key not in d:
        return default
    try:
        value = float(d[key])
    except (TypeError, ValueError):
        problems.append(Problem(file, d.line_of(key), f"{where}{key}", f"must be a number, not {d[key]!r}"))
        return default
    if value < minimum:
        problems.append(Problem(file, d.line_of(key), f"{where}{key}", f"must be at least {minimum:g}"))
    return value


def _channel(file: str, base: Path, n: int, raw: Any, problems: list[Problem]) -> Channel | None:
    where = f"channels[{n}]"
    if not isinstance(raw, LineDict):
        problems.append(Problem(file, 0, where, "must be a mapping"))
        return None
    before = len(problems)
    kind = raw.get("type")
    if kind not in _KEYS:
        problems.append(Problem(file, raw.line_of("type"), f"{where}.type",
                                f"must be one of {', '.join(_KEYS)}, not {kind!r}"))
        return None
    for key in raw:
        if key not in _KEYS[kind]:
            problems.append(Problem(file, raw.line_of(key), f"{where}.{key}", f"unknown key for a {kind} channel"))
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(Problem(file, raw.line_of("name"), f"{where}.name", "a channel needs a non-empty name"))
    sev = raw.get("min_severity", "info")
    if sev not in SEVERITY_RANK:
        problems.append(Problem(file, raw.line_of("min_severity"), f"{where}.min_severity",
                                f"must be one of {', '.join(SEVERITY_RANK)}, not {sev!r}"))
    lang = raw.get("language", "both")
    if lang not in LANGUAGES:
        problems.append(Problem(file, raw.line_of("language"), f"{where}.language",
                                f"must be one of {', '.join(LANGUAGES)}, not {lang!r}"))
    common = {"name": str(name), "min_severity": sev, "language": lang}
    timeout = _number(file, raw, "timeout_s", DEFAULT_TIMEOUT_S, problems, f"{where}.", 0.1)
    ch: Channel | None = None
    if kind == "webhook":
        url, fmt = raw.get("url"), raw.get("format", "json")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            problems.append(Problem(file, raw.line_of("url"), f"{where}.url", "needs an http:// or https:// URL"))
        if fmt not in ("json", "wecom", "dingtalk"):
            problems.append(Problem(file, raw.line_of("format"), f"{where}.format",
                                    f"must be json, wecom or dingtalk, not {fmt!r}"))
        headers = raw.get("headers") or {}
        if not isinstance(headers, dict):
            problems.append(Problem(file, raw.line_of("headers"), f"{where}.headers", "must be a mapping"))
            headers = {}
        ch = WebhookChannel(**common, url=str(url), format=str(fmt), secret=raw.get("secret"),
                            headers={str(k): str(v) for k, v in headers.items()}, timeout_s=timeout)
    elif kind == "email":
        security = raw.get("security", "starttls")
        if security not in ("starttls", "ssl", "none"):
            problems.append(Problem(file, raw.line_of("security"), f"{where}.security",
                                    f"must be starttls, ssl or none, not {security!r}"))
        to = raw.get("to")
        to = [to] if isinstance(to, str) else to
        if not to or not isinstance(to, list) or not all(isinstance(t, str) and "@" in t for t in to):
            problems.append(Problem(file, raw.line_of("to"), f"{where}.to", "needs one or more e-mail addresses"))
            to = []
        if not raw.get("host"):
            problems.append(Problem(file, raw.line_of("host"), f"{where}.host", "an SMTP host is required"))
        password = raw.get("password")
        if raw.get("password_env"):
            password = os.environ.get(str(raw["password_env"]))
            if password is None:
                problems.append(Problem(file, raw.line_of("password_env"), f"{where}.password_env",
                                        f"environment variable {raw['password_env']} is not set"))
        ca_file = raw.get("ca_file")
        if ca_file is not None:
            ca_path = (base / str(ca_file)).resolve()
            if not ca_path.exists():
                problems.append(Problem(file, raw.line_of("ca_file"), f"{where}.ca_file", f"no such file {ca_path}"))
            ca_file = str(ca_path)
        port = int(_number(file, raw, "port", 587 if security == "starttls" else 465 if security == "ssl" else 25,
                           problems, f"{where}.", 1))
        ch = EmailChannel(**common, host=str(raw.get("host", "")), port=port, security=str(security),
                          username=raw.get("username"), password=password, ca_file=ca_file,
                          sender=str(raw.get("sender", raw.get("username") or "civicwatt@localhost")),
                          to=tuple(to), timeout_s=timeout)
    else:
        ch = JsonlChannel(**common, path=str((base / str(raw.get("path", "alerts.jsonl"))).resolve()))
    return ch if len(problems) == before else None


def parse_channels(doc: Any, file: str = "<memory>", base: Path | None = None) -> ChannelsConfig:
    """Validate a loaded channels document; raise ConfigError with every problem."""
    base = base or Path(".")
    problems: list[Problem] = []
    if doc is None:
        return ChannelsConfig()
    if not isinstance(doc, LineDict):
        raise ConfigError([Problem(file, 1, "-", "the channels file must be a YAML mapping")])
    for key in doc:
        if key not in ("channels", "reminder_hours", "retry"):
            problems.append(Problem(file, doc.line_of(key), str(key), "unknown key"))
    reminder = _number(file, doc, "reminder_hours", DEFAULT_REMINDER_HOURS, problems, "")
    retry = doc.get("retry") or LineDict()
    if not isinstance(retry, LineDict):
        problems.append(Problem(file, doc.line_of("retry"), "retry", "must be a mapping with base_s and max_s"))
        retry = LineDict()
    retry.key_lines = getattr(retry, "key_lines", {})
    base_s = _number(file, retry, "base_s", DEFAULT_RETRY_BASE_S, problems, "retry.", 0.0)
    max_s = _number(file, retry, "max_s", DEFAULT_RETRY_MAX_S, problems, "retry.", 0.0)
    raw_channels = doc.get("channels") or []
    if not isinstance(raw_channels, list):
        problems.append(Problem(file, doc.line_of("channels"), "channels", "must be a list"))
        raw_channels = []
    parsed = [(n, ch) for n, raw in enumerate(raw_channels) if (ch := _channel(file, base, n, raw, problems))]
    seen: set[str] = set()
    for n, ch in parsed:
        if ch.name in seen:
            problems.append(Problem(file, raw_channels[n].line_of("name"), f"channels[{n}].name",
                                    f"duplicate channel name '{ch.name}'"))
        seen.add(ch.name)
    channels = [ch for _, ch in parsed]
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.line, p.field)))
    return ChannelsConfig(channels=channels, reminder_hours=reminder, retry_base_s=base_s, retry_max_s=max_s)


def load_channels(path: str | Path) -> ChannelsConfig:
    """Load `channels.yaml`; relative paths inside it are relative to its directory."""
    path = Path(path)
    return parse_channels(load_yaml(path), str(path), path.parent)
