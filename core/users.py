"""Dashboard and API users: a YAML file of hashed passwords, roles and scopes.

File format (written by `civicwatt users`; never edit hashes by hand)::

    users:
      admin: {role: admin, scope: null, password: "scrypt:32768:8:1$..."}
      sjz-manager: {role: region, scope: sjz, password: "..."}
      hb0001: {role: institution, scope: HB-0001, password: "..."}

Roles (`core.access`, where every role check lives): `admin` sees everything;
`region` sees the institutions of its region and every region below it;
`institution` sees only its own institution. Passwords are
hashed with scrypt (werkzeug.security); there is no default password: `ensure_admin`
creates `admin` with a random one and returns it once so it can be printed.
The file is written atomically with mode 0600.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from core import access
from core.access import ROLES
from core.filecache import WatchedFile
from core.private import write_private_yaml
from core.registry import Registry
from core.yamlfile import ConfigError, LineDict, Problem, load_yaml

HASH_METHOD = "scrypt"  # werkzeug's scrypt (N=2**15, r=8, p=1): memory-hard, stdlib hashlib
GENERATED_PASSWORD_BYTES = 12  # token_urlsafe(12) -> 16 characters, 96 bits
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class User:
    """A dashboard user: `role` in ROLES; `scope` a region id (region) or an
    institution id (institution), None for admin."""

    name: str
    role: str
    scope: str | None
    password_hash: str = ""

    def institution_ids(self, registry: Registry) -> set[str]:
        """The institutions this user may see (`core.access.institution_ids`)."""
        return access.institution_ids(self, registry)

    def region_ids(self, registry: Registry) -> set[str]:
        """Regions this user may choose as a whole (`core.access.region_ids`)."""
        return access.region_ids(self, registry)

    def can_see(self, registry: Registry, institution_id: str) -> bool:
        return access.can_see(self, registry, institution_id)


def _validate(path: Path, doc: object) -> dict[str, User]:
    problems: list[Problem] = []
    if doc is None:
        return {}
    if not isinstance(doc, LineDict) or not isinstance(doc.get("users", {}) or {}, dict):
        raise ConfigError([Problem(str(path), 1, "users", "must be a mapping of user name to {role, scope, password}")])
    users: dict[str, User] = {}
    raw_users = doc.get("users") or {}
    for name, entry in raw_users.items():
        line = raw_users.line_of(name) if isinstance(raw_users, LineDict) else 0
        if not isinstance(entry, dict):
            problems.append(Problem(str(path), line, f"users.{name}", "must be a mapping"))
            continue
        role = entry.get("role")
        scope = entry.get("scope")
        pw = entry.get("password")
        if role not in ROLES:
            problems.append(Problem(str(path), line, f"users.{name}.role", f"must be one of {', '.join(ROLES)}"))
        elif role != "admin" and not scope:
            problems.append(Problem(str(path), line, f"users.{name}.scope", f"a {role} user needs a scope"))
        if not isinstance(pw, str) or "$" not in pw:
            problems.append(Problem(str(path), line, f"users.{name}.password", "must be a password hash"))
        users[str(name)] = User(str(name), str(role), None if role == "admin" else str(scope), str(pw))
    if problems:
        raise ConfigError(problems)
    return users


def load_users(path: str | Path) -> dict[str, User]:
    """Users by name; an absent file means no users."""
    path = Path(path)
    if not path.exists():
        return {}
    return _validate(path, load_yaml(path))


def save_users(path: str | Path, users: dict[str, User]) -> None:
    """Write atomically, readable by the owner only."""
    doc = {"users": {u.name: {"role": u.role, "scope": u.scope, "password": u.password_hash}
                     for u in sorted(users.values(), key=lambda u: u.name)}}
    write_private_yaml(path, doc, "CivicWatt dashboard users: manage with `civicwatt users` (passwords are scrypt hashes)")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=HASH_METHOD)


def generate_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def set_user(path: str | Path, name: str, role: str, scope: str | None, password: str) -> User:
    """Add or replace a user (the password is hashed here)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if role != "admin" and not scope:
        raise ValueError(f"a {role} user needs --scope")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    users = load_users(path)
    user = User(name, role, None if role == "admin" else scope, hash_password(password))
    users[name] = user
    save_users(path, users)
    return user


def remove_user(path: str | Path, name: str) -> bool:
    users = load_users(path)
    if name not in users:
        return False
    del users[name]
    save_users(path, users)
    return True


def authenticate(users: dict[str, User], name: str, password: str) -> User | None:
    """The user when the password matches, else None (same work either way)."""
    user = users.get(name)
    if user is None:
        # Hash anyway so a missing user takes as long as a wrong password.
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


_DUMMY_HASH = generate_password_hash(secrets.token_hex(8), method=HASH_METHOD)


def ensure_admin(users_file: str | Path) -> str | None:
    """Create user `admin` with a random password if the file has no administrator;
    return that password (to print once), or None when an administrator exists."""
    users = load_users(users_file)
    if any(u.role == "admin" for u in users.values()):
        return None
    password = generate_password()
    set_user(users_file, "admin", "admin", None, password)
    return password


class UserDirectory(WatchedFile):
    """The users file, re-read when its modification time changes."""

    def __init__(self, path: str | Path):
        super().__init__(path, load_users)

    def users(self) -> dict[str, User]:
        return self.get()
