"""`civicwatt users add|remove|list|passwd|token|tokens NAME`: the users file and the API tokens.

A region or institution user's `--scope` must name a region or institution of the
registry (`core.access.scope_problem`); anything else is refused and nothing is written.

Passwords are never stored in clear and there is no default: give `--password`,
`--generate` (printed once), or type it twice at the prompt. `token USER` prints a new
API token for USER once (only its hash is kept, `core.tokens`, in api-tokens.yaml
beside the users file); `token USER --revoke ID` deletes one; `tokens [USER]` lists
them. Removing a user deletes their tokens.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from civicwatt.context import registry_from_args
from core import tokens as api_tokens
from core import users as auth
from core.access import scope_problem
from core.textfile import echo


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    if args.generate:
        return auth.generate_password(), True
    if args.password:
        return args.password, False
    try:
        first = getpass.getpass("password: ")
        again = getpass.getpass("again: ")
    except EOFError:
        raise ValueError("no password typed (no terminal, input closed): give --password or --generate") from None
    if first != again:
        raise ValueError("the passwords differ")
    return first, False


def run(args: argparse.Namespace) -> int:
    path = args.users
    try:
        if args.action == "list":
            for u in sorted(auth.load_users(path).values(), key=lambda u: u.name):
                print(f"{u.name}\t{u.role}\t{u.scope or '-'}")
            return 0
        if args.action == "tokens":
            return _tokens(args, path)
        if not args.username:
            print(f"civicwatt users {args.action}: a user name is needed", file=sys.stderr)
            return 2
        if args.action == "remove":
            if not auth.remove_user(path, args.username):
                print(f"no user '{echo(args.username)}' in {path}", file=sys.stderr)
                return 1
            n = api_tokens.revoke_user_tokens(api_tokens.tokens_file(path), args.username)
            print(f"removed {args.username}" + (f" and {n} API token(s)" if n else ""))
            return 0
        if args.action == "token":
            return _tokens(args, path)
        users = auth.load_users(path)
        if args.action == "passwd":
            if args.username not in users:
                print(f"no user '{echo(args.username)}' in {path}", file=sys.stderr)
                return 1
            old = users[args.username]
            role, scope = args.role or old.role, args.scope if args.scope is not None else old.scope
        else:  # add
            if args.username in users:
                print(f"user '{echo(args.username)}' exists; use `civicwatt users passwd`", file=sys.stderr)
                return 1
            if not args.role:
                print("civicwatt users add: --role is needed (admin, region or institution)", file=sys.stderr)
                return 2
            role, scope = args.role, args.scope
        changes_scope = args.action == "add" or args.role is not None or args.scope is not None
        problem = scope_problem(role, scope, registry_from_args(args)) if changes_scope and role != "admin" else None
        if problem:
            print(f"civicwatt users {args.action}: {problem}; nothing was written", file=sys.stderr)
            return 2
        password, generated = _password(args)
        auth.set_user(path, args.username, role, scope, password)
    except ValueError as exc:
        print(f"civicwatt users: {exc}", file=sys.stderr)
        return 2
    print(f"{args.action}: {args.username} ({role}{', ' + scope if scope and role != 'admin' else ''}) in {path}")
    if generated:
        print(f"password: {password}")
    return 0


def _tokens(args: argparse.Namespace, path: str) -> int:
    """token USER [--revoke ID] and tokens [USER]."""
    file = api_tokens.tokens_file(path)
    if args.action == "tokens":
        for t in sorted(api_tokens.load_tokens(file).values(), key=lambda t: (t.user, t.created)):
            if args.username in (None, t.user):
                print(f"{t.id}\t{t.user}\t{t.created}")
        return 0
    if args.revoke:
        if not api_tokens.revoke_token(file, args.revoke, args.username):
            print(f"no token {args.revoke!r} of user {args.username!r} in {file}", file=sys.stderr)
            return 1
        print(f"revoked token {args.revoke} of {args.username}")
        return 0
    user = auth.load_users(path).get(args.username)
    if user is None:
        print(f"no user {args.username!r} in {path}: add it first (`civicwatt users add`)", file=sys.stderr)
        return 1
    token, text = api_tokens.create_token(file, user.name)
    print(f"token {token.id} for {user.name} ({user.role}{', ' + user.scope if user.scope else ''}); "
          f"shown once, keep it secret:", file=sys.stderr)
    print(text)
    return 0
