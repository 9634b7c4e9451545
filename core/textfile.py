"""Reading input text files as UTF-8 with clean FILE:LINE errors, and echoing bad values safely in messages."""

from __future__ import annotations

import re
from pathlib import Path

from core.yamlfile import ConfigError, Problem

#: Values echoed in a problem message are cut to this many characters.
MAX_ECHO = 80
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def echo(value: object) -> str:
    """`value` as text for a problem message: control characters escaped (a newline in a
    value cannot break the FILE:LINE: FIELD: message layout) and cut to MAX_ECHO characters."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    return text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "…"


def decode_utf8(data: bytes, file: str) -> str:
    """`data` decoded as UTF-8 (a BOM is dropped), line endings made `\\n` (a lone `\\r` ends a
    line too, as editors count them). Raises ConfigError naming the line of the first byte that
    is not UTF-8, or of a NUL character (UTF-16 text without a BOM decodes to NULs)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        hint = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ConfigError([Problem(file, line, "-", f"not UTF-8{hint}: byte 0x{data[exc.start]:02x} at column "
                                                    f"{column}; save the file as UTF-8")]) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    nul = text.find("\x00")
    if nul >= 0:
        raise ConfigError([Problem(file, text.count("\n", 0, nul) + 1, "-",
                                   "contains a NUL character: not a UTF-8 text file (UTF-16?); save it as UTF-8")])
    return text


def read_utf8(path: str | Path) -> str:
    """The text of `path` as `decode_utf8` gives it; an unreadable file is a ConfigError too."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(str(path), 0, "-", f"cannot read file: {exc.strerror}")]) from None
    return decode_utf8(data, str(path))
