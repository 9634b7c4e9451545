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
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints

from alerts.record import SEVERITIES, SEVERITY_RANK
from core.schemas.base import Ident, NonNegative, Number, Strict
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml, mapping_items, validate_node

DEFAULT_REMINDER_HOURS = 24.0
DEFAULT_RETRY_BASE_S = 30.0
DEFAULT_RETRY_MAX_S = 3600.0
DEFAULT_TIMEOUT_S = 10.0
LANGUAGES = ("zh", "en", "both")

KIND_TITLE = {
    "open": ("【能耗告警】", "[CivicWatt alert]"),
    "reminder": ("【告警提醒】", "[CivicWatt reminder]"),
    "resolved": ("【告警解除】", "[CivicWatt resolved]"),
    "message": ("【填报提醒】", "[CivicWatt notice]"),  # a message that is not an alert (submission reminders)
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
        import httpx  # (here, not at the top: every verb imports this module, few send; ~0.5-1 s at import)

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


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError("needs an http:// or https:// URL")
    return url


def _addresses(to: Any) -> Any:
    to = [to] if isinstance(to, str) else to
    if not to or not isinstance(to, list) or not all(isinstance(t, str) and "@" in t for t in to):
        raise ValueError("needs one or more e-mail addresses")
    return to


Timeout = Annotated[Number, Field(ge=0.1)]


class _ChannelKind(BaseModel):
    """Just the `type` of a channel entry, to pick its schema."""

    type: Literal["webhook", "email", "jsonl"]


class _ChannelEntry(Strict):
    name: Annotated[str, StringConstraints(min_length=1)]
    type: str
    min_severity: Literal[SEVERITIES] = "info"  # type: ignore[valid-type]
    language: Literal[LANGUAGES] = "both"  # type: ignore[valid-type]


class WebhookEntry(_ChannelEntry):
    url: Annotated[str, AfterValidator(_http_url)]
    format: Literal["json", "wecom", "dingtalk"] = "json"
    secret: str | None = None
    headers: dict[str, Ident] = Field(default_factory=dict)
    timeout_s: Timeout = DEFAULT_TIMEOUT_S


class EmailEntry(_ChannelEntry):
    host: Annotated[str, StringConstraints(min_length=1)]
    port: Annotated[int, Field(strict=True, ge=1, le=65535)] | None = None  # default by `security`
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    password_env: str | None = None  # the password from this environment variable
    ca_file: str | None = None  # relative to the channels file's directory
    sender: str | None = None
    to: Annotated[tuple[str, ...], BeforeValidator(_addresses)]
    timeout_s: Timeout = DEFAULT_TIMEOUT_S


class JsonlEntry(_ChannelEntry):
    path: str = "alerts.jsonl"  # relative to the channels file's directory


class _Retry(Strict):
    base_s: NonNegative = DEFAULT_RETRY_BASE_S
    max_s: NonNegative = DEFAULT_RETRY_MAX_S


class ChannelsFile(Strict):
    """The channels file; each entry of `channels` is checked against the schema of its `type`."""

    reminder_hours: NonNegative = DEFAULT_REMINDER_HOURS
    retry: _Retry | None = None
    channels: list[Any] | None = None


_ENTRIES: dict[str, type[_ChannelEntry]] = {"webhook": WebhookEntry, "email": EmailEntry, "jsonl": JsonlEntry}
_DEFAULT_PORT = {"starttls": 587, "ssl": 465, "none": 25}


def _email_problems(raw: LineDict, where: str, file: str, base: Path) -> list[Problem]:
    """What the schema cannot see of an e-mail entry: its environment variable and CA file."""
    problems = []
    env = raw.get("password_env")
    if env and os.environ.get(str(env)) is None:
        problems.append(Problem(file, raw.line_of("password_env"), f"{where}.password_env",
                                f"environment variable {env} is not set"))
    ca_file = raw.get("ca_file")
    if ca_file is not None and not (base / str(ca_file)).resolve().exists():
        problems.append(Problem(file, raw.line_of("ca_file"), f"{where}.ca_file",
                                f"no such file {(base / str(ca_file)).resolve()}"))
    return problems


def _channel(e: _ChannelEntry, base: Path) -> Channel:
    """The channel of a valid entry (relative paths from `base`)."""
    common = {"name": e.name, "min_severity": e.min_severity, "language": e.language}
    if isinstance(e, WebhookEntry):
        return WebhookChannel(**common, url=e.url, format=e.format, secret=e.secret,
                              headers=dict(e.headers), timeout_s=e.timeout_s)
    if isinstance(e, JsonlEntry):
        return JsonlChannel(**common, path=str((base / e.path).resolve()))
    assert isinstance(e, EmailEntry)
    return EmailChannel(**common, host=e.host, port=e.port or _DEFAULT_PORT[e.security], security=e.security,
                        username=e.username, password=os.environ.get(e.password_env) if e.password_env else e.password,
                        ca_file=str((base / e.ca_file).resolve()) if e.ca_file is not None else None,
                        sender=e.sender or e.username or "civicwatt@localhost", to=e.to, timeout_s=e.timeout_s)


def parse_channels(doc: Any, file: str = "<memory>", base: Path | None = None) -> ChannelsConfig:
    """Validate a loaded channels document (schema: `ChannelsFile` and one entry schema
    per channel type); raise ConfigError with every problem."""
    base = base or Path(".")
    if doc is None:
        return ChannelsConfig()
    if not isinstance(doc, LineDict):
        raise ConfigError([Problem(file, 1, "-", "the channels file must be a YAML mapping")])
    problems: list[Problem] = []
    top = validate_node(ChannelsFile, doc, file, "", problems)
    channels: list[Channel] = []
    items = mapping_items(doc, "channels", file, problems) if isinstance(doc.get("channels"), list) else []
    names = Counter(str(item.get("name")) for _, item in items)
    for n, raw in items:
        where = f"channels[{n}]"
        kind = validate_node(_ChannelKind, raw, file, where, problems)
        entry = validate_node(_ENTRIES[kind.type], raw, file, where, problems) if kind is not None else None
        if kind is not None and kind.type == "email":
            problems += _email_problems(raw, where, file, base)
        if entry is not None:
            channels.append(_channel(entry, base))
        if "name" in raw and names[str(raw["name"])] > 1:
            problems.append(Problem(file, raw.line_of("name"), f"{where}.name", f"duplicate channel name '{raw['name']}'"))
    if problems or top is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.line, p.field)))
    retry = top.retry or _Retry()
    return ChannelsConfig(channels=channels, reminder_hours=top.reminder_hours, retry_base_s=retry.base_s,
                          retry_max_s=retry.max_s)


def load_channels(path: str | Path) -> ChannelsConfig:
    """Load `channels.yaml`; relative paths inside it are relative to its directory."""
    path = Path(path)
    return parse_channels(load_yaml(path), str(path), path.parent)
