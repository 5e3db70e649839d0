"""SQL fingerprints: one id for every statement that differs only in values.

Literals and placeholders become `?`, and lists of them collapse, so
`WHERE id IN (1, 2, 3)` and `WHERE id IN (4, 5)` are one query. The
normalised text is also what the store keeps as the query's SQL: values the
application bound or inlined are never stored.

This runs in the monitor's writer thread, never on the request path.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_STRINGS = re.compile(r"'(?:[^']|'')*'|E'(?:[^'\\]|\\.|'')*'", re.S)
_DOLLAR_QUOTED = re.compile(r"\$(\w*)\$.*?\$\1\$", re.S)
_PLACEHOLDERS = re.compile(r"%\(\w+\)s|%s|(?<![:\w]):\w+|\$\d+|\?")
_NUMBERS = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\bX'[0-9a-fA-F]*'")
_BOOLEANS = re.compile(r"\b(?:TRUE|FALSE|NULL)\b", re.I)
_SPACES = re.compile(r"\s+")
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_IN_ONE = re.compile(r"\bIN\s*\(\s*\?\s*\)", re.I)
_ROWS = re.compile(r"(\(\?\+\)|\(\?\))(?:\s*,\s*(?:\(\?\+\)|\(\?\)))+")


def normalise(sql: str) -> str:
    """The statement with comments gone, values replaced and lists folded."""
    text = _COMMENTS.sub(" ", sql)
    text = _DOLLAR_QUOTED.sub("?", text)
    text = _STRINGS.sub("?", text)
    text = _HEX.sub("?", text)
    text = _PLACEHOLDERS.sub("?", text)
    text = _NUMBERS.sub("?", text)
    text = _SPACES.sub(" ", text).strip().rstrip(";").strip()
    text = _LIST.sub("(?+)", text)  # IN (?, ?, ?) -> IN (?+)
    text = _IN_ONE.sub("IN (?+)", text)  # a one-element IN list is still a list
    text = _ROWS.sub(r"\1", text)  # VALUES (?+), (?+) -> VALUES (?+): rows fold too
    return text


@lru_cache(maxsize=20_000)
def fingerprint(sql: str) -> tuple[str, str]:
    """(16-hex-digit fingerprint, normalised SQL). Cached: an application
    runs the same few hundred statement texts over and over."""
    text = normalise(sql)
    key = _BOOLEANS.sub("?", text).lower()
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest(), text
