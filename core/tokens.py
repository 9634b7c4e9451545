"""API tokens: created for a user, shown once, stored hashed, revocable.

A token is `cw_<id>_<secret>`: `id` (8 hex digits) names it in `civicwatt users tokens`
and `--revoke`; `secret` (32 random bytes, URL-safe) is never stored, only its SHA-256
(a token is random and long, so a fast hash is as good as a slow one and keeps every
API request cheap). The tokens live in `tokens_file(users_file)`, `api-tokens.yaml`
next to the users file, mode 0600, written atomically::

    tokens:
      3f9c01aa: {user: hb0001, hash: "sha256:...", created: "2026-12-02T01:00:00+00:00"}

A token has no role of its own: each request looks its user up in the users file, so
the token carries the user's current role and scope (`core.access`), and removing the
user (or revoking the token) refuses it at the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.filecache import WatchedFile
from core.private import write_private_yaml
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml

TOKENS_FILE = "api-tokens.yaml"
SECRET_BYTES = 32
_TOKEN = re.compile(r"^cw_([0-9a-f]{8})_([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True)
class Token:
    """A stored token: its id, its user, the hash of its secret and when it was made."""

    id: str
    user: str
    hash: str
    created: str


def tokens_file(users_file: str | Path) -> Path:
    """Where the tokens of a users file are kept: `api-tokens.yaml` beside it."""
    return Path(users_file).parent / TOKENS_FILE


def _digest(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def load_tokens(path: str | Path) -> dict[str, Token]:
    """Tokens by id; an absent file means none."""
    path = Path(path)
    if not path.exists():
        return {}
    doc = load_yaml(path)
    if doc is None:
        return {}
    raw = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(doc, LineDict) or not isinstance(raw or {}, dict):
        raise ConfigError([Problem(str(path), 1, "tokens", "must be a mapping of token id to {user, hash, created}")])
    problems: list[Problem] = []
    out: dict[str, Token] = {}
    for tid, entry in (raw or {}).items():
        line = raw.line_of(tid) if isinstance(raw, LineDict) else 0
        if not isinstance(entry, dict) or not isinstance(entry.get("user"), str) \
                or not str(entry.get("hash", "")).startswith("sha256:"):
            problems.append(Problem(str(path), line, f"tokens.{tid}", "must be {user, hash: sha256:..., created}"))
            continue
        out[str(tid)] = Token(str(tid), entry["user"], str(entry["hash"]), str(entry.get("created", "")))
    if problems:
        raise ConfigError(problems)
    return out


def save_tokens(path: str | Path, tokens: dict[str, Token]) -> None:
    """Write atomically, readable by the owner only."""
    doc = {"tokens": {t.id: {"user": t.user, "hash": t.hash, "created": t.created}
                      for t in sorted(tokens.values(), key=lambda t: (t.user, t.created, t.id))}}
    write_private_yaml(path, doc, "CivicWatt API tokens: manage with `civicwatt users token` (only hashes are kept)")


def create_token(path: str | Path, user: str) -> tuple[Token, str]:
    """A new token for `user`: the stored record and the token text (shown once)."""
    tokens = load_tokens(path)
    tid = secrets.token_hex(4)
    while tid in tokens:
        tid = secrets.token_hex(4)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    token = Token(tid, user, _digest(secret), datetime.now(UTC).isoformat(timespec="seconds"))
    tokens[tid] = token
    save_tokens(path, tokens)
    return token, f"cw_{tid}_{secret}"


def revoke_token(path: str | Path, token_id: str, user: str | None = None) -> bool:
    """Delete token `token_id` (of `user`, when given); False when there is none."""
    tokens = load_tokens(path)
    found = tokens.get(token_id)
    if found is None or (user is not None and found.user != user):
        return False
    del tokens[token_id]
    save_tokens(path, tokens)
    return True


def revoke_user_tokens(path: str | Path, user: str) -> int:
    """Delete every token of `user`; how many there were."""
    tokens = load_tokens(path)
    keep = {k: t for k, t in tokens.items() if t.user != user}
    if len(keep) != len(tokens):
        save_tokens(path, keep)
    return len(tokens) - len(keep)


def verify_token(tokens: dict[str, Token], text: str) -> Token | None:
    """The stored token `text` is (constant-time comparison of the hashes), else None."""
    m = _TOKEN.match(text or "")
    if m is None:
        return None
    found = tokens.get(m.group(1))
    if found is None:
        return None
    return found if hmac.compare_digest(found.hash, _digest(m.group(2))) else None


class TokenDirectory(WatchedFile):
    """The tokens file, re-read when it changes."""

    def __init__(self, path: str | Path):
        super().__init__(path, load_tokens)

    def tokens(self) -> dict[str, Token]:
        return self.get()
