"""SQL values never leave the host: what a database error carries is masked
before a message is sent.

SQLAlchemy's `[parameters: ...]` becomes `[parameters: ***]`, string
literals inside its `[SQL: ...]` become `'***'`, and the values PostgreSQL
and MySQL echo in their messages (`Key (email)=(a@b.c) already exists`,
`Failing row contains (...)`, `Duplicate entry '...'`) are masked; the
statement and the constraint stay. The console scrubs every message again
(secrets by name and shape) before it stores or shows it. Linear-time
patterns only: the text comes from outside.
"""
from __future__ import annotations

import re

MASK = "***"
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
_SQL_STATEMENT = re.compile(r"(?P<head>\[SQL: )(?P<sql>.*?)(?=\]\n|\]\Z|\Z)", re.S)
# One way to match at each position ([^'] or ''), so no backtracking blow-up.
_SQL_STRING = re.compile(r"'(?:[^']|'')*'")
_SQL_ECHOES = (")=(", "Failing row contains (")  # PostgreSQL's DETAIL lines
_SQL_DUPLICATE = re.compile(r"(?P<head>Duplicate entry ')(?P<v>(?:[^'\\\n]|\\.)*)'")


def _mask_echoed(line: str, mask: str) -> str:
    """`Key (email)=(a@b.c) already exists.` -> `Key (email)=(***) already
    exists.`: from the first echo to the line's last parenthesis."""
    for head in _SQL_ECHOES:
        start = line.find(head)
        if start >= 0:
            start += len(head)
            end = line.rfind(")")
            if end >= start:
                return line[:start] + mask + line[end:]
    return line


def strip_sql_values(text: str, mask: str = MASK) -> str:
    """A database error without the values it carries; the statement stays."""
    if "[parameters: " in text:
        text = _SQL_PARAMETERS.sub(f"[parameters: {mask}]", text)
    if "[SQL: " in text:
        text = _SQL_STATEMENT.sub(
            lambda m: m.group("head") + _SQL_STRING.sub(f"'{mask}'", m.group("sql")), text)
    if ")=(" in text or "Failing row contains (" in text:
        text = "\n".join(_mask_echoed(line, mask) for line in text.split("\n"))
    if "Duplicate entry '" in text:
        text = _SQL_DUPLICATE.sub(lambda m: m.group("head") + mask + "'", text)
    return text
