"""Files only their owner may read: directories 0700 and files 0600 for secrets, users and queues."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import yaml

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | Path) -> Path:
    """`path` created as a directory (with its parents) of mode 0700. A directory that
    exists already keeps its mode: it may be shared on purpose (an embedded store's
    directory holds other files); what we put in it is private by `private_file`."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        path.chmod(DIR_MODE)  # mkdir's mode is cut by the umask only, but be explicit
    return path


def private_file(path: str | Path) -> Path:
    """`path` exists (empty if new) with mode 0600; an existing file is narrowed to 0600.
    Call it before SQLite opens a database: SQLite gives its -wal and -shm files the
    database file's mode."""
    path = Path(path)
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, FILE_MODE)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(FILE_MODE)
    return path


def write_private(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (a temporary file in the same directory,
    fsync'ed, renamed), mode 0600 from the first byte."""
    path = Path(path)
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_private_yaml(path: str | Path, doc: object, comment: str) -> None:
    """Write `doc` as YAML to `path` atomically (a temporary file in the same directory,
    then a rename), mode 0600, under a `# comment` line (the users and tokens files)."""
    path = Path(path)
    private_dir(path.parent)  # a new directory is 0700; an existing one keeps its mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"# {comment}\n")
            yaml.safe_dump(doc, fh, allow_unicode=True, sort_keys=False)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

