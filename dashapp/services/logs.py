"""Log sources: configured log files and the records monitor() captured.

Files. Only files inside the configured folders (`Settings.log_folders`,
OPS_LOG_DIRS) are read: a source is resolved with `realpath` (so `..` and
symlinks pointing out are caught) and refused with `LogAccessError` when it
lands outside every folder. The listing shows what OPS_LOG_FILES' paths and
globs match (plus rotated siblings `name.1`, `name.2`, ...).

Costs. `tail()` seeks to the end and reads 64 KiB blocks backwards until it
has enough lines: its cost depends on the lines asked for, not on the file's
size. `filter_records()` scans newest-first in 8 MiB binary chunks with one
compiled bytes regex (`finditer` over the chunk) and parses only the lines
that match, so a regex search runs at a good fraction of `grep -E`'s speed.
`stream()` follows a file by polling its size and inode every 0.25 s and
handles rotation (new inode: the rest of the old file, then the new one from
its start) and truncation (size smaller than the position: from the start).

Parsing. A JSON object line gives its own fields (time/timestamp/ts/asctime,
level/levelname/severity, logger/name, message/msg, request_id/requestId),
the others become extras. A plain line is parsed as
``<date time> [<pid>] <LEVEL> [<pid>] <logger>: <message>`` in the common
Python formats (level before or after the logger); `request_id=<id>` or
`[req:<id>]` in a message gives its request id. A line that fits neither
(e.g. a traceback line) is a record with only a message.

Secrets. Messages and extras pass through `redact()` before they leave.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator

from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from dashapp.store.models import LogRecord, as_utc

logger = logging.getLogger(__name__)

CAPTURED = "captured"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "ERR": "ERROR",
                  "CRIT": "CRITICAL", "TRACE": "DEBUG", "NOTICE": "INFO",
                  "EXCEPTION": "ERROR"}
TAIL_BLOCK = 64 * 1024
SCAN_CHUNK = 8 * 1024 * 1024
MAX_LINE = 64 * 1024          # longer lines are cut (a record shows this much)
MAX_TAIL = 5_000
MAX_PAGE = 1_000
MAX_EXPORT = 10_000
STATS_MAX_BYTES = 32 * 1024 * 1024
POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 15.0
MAX_ROTATED = 9               # siblings name.1 .. name.9 are followed by filter
SINCE_SLACK = timedelta(minutes=5)  # how out of order a file's lines may be


class LogAccessError(ValueError):
    """The source is unknown or outside the configured log folders (400)."""

    def __init__(self, message: str, code: str = "invalid_source", field: str = "source"):
        super().__init__(message)
        self.code = code
        self.field = field


class BadFilter(ValueError):
    """A filter parameter is not usable, e.g. an invalid regex (400)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


class TooManyStreams(RuntimeError):
    """Every live-stream slot is taken (429)."""


# ----------------------------------------------------------------- secrets

_SECRET_WORDS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|authorization|cookie)"
_SECRET_KV = re.compile(
    r"(?i)(\b" + _SECRET_WORDS + r"\w*\"?\s*[=:]\s*\"?)(?:Bearer\s+|Basic\s+)?[^\s\"',;&]+")
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@/\s]+(@)")
_SECRET_KEY = re.compile(r"(?i)" + _SECRET_WORDS)
_SECRET_HINTS = ("pass", "pwd", "secret", "token", "key", "authorization", "cookie")


def redact(text: str) -> str:
    """`password=...`, `token: ...`, `Authorization: Bearer ...` and the
    password of a URL become `***`."""
    if not text:
        return text
    # Most lines hold none of the words: a few substring checks (C speed)
    # spare them the regexes, which would dominate the cost of a tail.
    low = text.lower()
    if any(word in low for word in _SECRET_HINTS):
        text = _SECRET_KV.sub(r"\1***", text)
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(r"\1***\2", text)
    return text


def redact_extras(extras: dict | None) -> dict | None:
    if not extras:
        return extras
    return {k: ("***" if _SECRET_KEY.search(str(k)) else
                redact(v) if isinstance(v, str) else v)
            for k, v in extras.items()}


# ----------------------------------------------------------------- parsing

_PLAIN = re.compile(
    r"^\[?(?P<time>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)\]?"
    r"\s+(?:(?P<pid1>\d+)\s+)?"
    r"(?:\[?(?P<level>[A-Za-z]+)\]?\s+(?:(?P<pid2>\d+)\s+)?(?P<logger>[\w.\-<>\[\]]+?):?\s+"
    r"|(?P<logger2>[\w.\-<>]+?):?\s+\[?(?P<level2>[A-Za-z]+)\]?:?\s+)"
    r"(?P<message>.*)$", re.S)
_REQUEST_ID = re.compile(r"(?:request[_-]?id[=:]\s*|\[req:)([A-Za-z0-9._:-]{1,64})")
_JSON_KEYS = {
    "time": ("time", "timestamp", "ts", "asctime", "@timestamp", "datetime", "created"),
    "level": ("level", "levelname", "severity", "lvl", "log.level"),
    "logger": ("logger", "name", "logger_name", "log.logger"),
    "message": ("message", "msg", "event"),
    "request_id": ("request_id", "requestId", "req_id", "request.id", "trace_id"),
}


def normalize_level(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        name = logging.getLevelName(int(value))
        return name if name in LEVELS else None
    text = str(value).strip().upper()
    text = _LEVEL_ALIASES.get(text, text)
    return text if text in LEVELS else None


def _parse_time(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    text = str(value).strip().replace(",", ".")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Plain log lines without an offset are taken as UTC (say so in the README).
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _pick(data: dict, names: tuple[str, ...]):
    for name in names:
        if name in data:
            return name, data[name]
    return None, None


def parse_line(line: str) -> dict:
    """One log line as {time, level, logger, message, request_id, extra}."""
    line = line.rstrip("\r\n")
    if len(line) > MAX_LINE:
        line = line[:MAX_LINE]
    record = {"time": None, "level": None, "logger": None, "message": line,
              "request_id": None, "extra": None}
    stripped = line.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict):
            used = set()
            for key, names in _JSON_KEYS.items():
                name, value = _pick(data, names)
                if name is not None:
                    used.add(name)
                    record[key] = value
            record["time"] = _parse_time(record["time"])
            record["level"] = normalize_level(record["level"])
            for key in ("logger", "message", "request_id"):
                if record[key] is not None and not isinstance(record[key], str):
                    record[key] = json.dumps(record[key]) if key == "message" \
                        else str(record[key])
            if record["message"] is None:
                record["message"] = ""
            extra = {k: v for k, v in data.items() if k not in used}
            record["extra"] = redact_extras(extra) or None
    else:
        match = _PLAIN.match(line)
        if match:
            level = normalize_level(match["level"] or match["level2"])
            if level is not None:
                record.update(time=_parse_time(match["time"]), level=level,
                              logger=match["logger"] or match["logger2"],
                              message=match["message"])
                pid = match["pid1"] or match["pid2"]
                if pid:
                    record["extra"] = {"process": int(pid)}
    if record["request_id"] is None and record["message"]:
        found = _REQUEST_ID.search(record["message"])
        if found:
            record["request_id"] = found.group(1)
    record["message"] = redact(record["message"])
    return record


def _public(record: dict, **more) -> dict:
    """A record as the API answers it (time as ISO text)."""
    out = dict(record)
    out["time"] = out["time"].isoformat() if out.get("time") else None
    out.update(more)
    return out


# ----------------------------------------------------------------- filters

_ANCHORS = re.compile(r"(?<!\\)(?:\^|\$)|\\[AZ]")


@dataclass
class Filters:
    """What a filter/stream keeps. Empty fields keep everything."""
    levels: tuple[str, ...] = ()
    text: str | None = None
    regex: bool = False
    case_sensitive: bool = False
    logger: str | None = None          # a logger name and its children
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    _compiled: re.Pattern | None = field(default=None, repr=False)

    def __post_init__(self):
        self.levels = tuple(dict.fromkeys(
            lvl for lvl in (normalize_level(v) for v in self.levels) if lvl))
        flags = 0 if self.case_sensitive else re.I
        if self.text:
            source = self.text if self.regex else re.escape(self.text)
            try:
                self._compiled = re.compile(source, flags)
                self._bytes = re.compile(source.encode("utf-8"), flags)
            except re.error as exc:
                raise BadFilter(f"not a valid regular expression: {exc}", "q") from None
        if self.since and self.until and self.since > self.until:
            raise BadFilter("since must be before until", "since")

    @property
    def active(self) -> bool:
        return bool(self.levels or self.text or self.logger or self.request_id
                    or self.since or self.until)

    def prefilter(self) -> re.Pattern | None:
        """The bytes regex a raw line must match to be worth parsing."""
        if self.request_id:
            return re.compile(re.escape(self.request_id.encode()))
        if self.text and not (self.regex and _ANCHORS.search(self.text)):
            # (an anchored regex means the message's start or end, not the
            # raw line's: such a search parses every line instead)
            return self._bytes
        if self.logger:
            return re.compile(re.escape(self.logger.encode()))
        if self.levels:
            words = set()
            for level in self.levels:
                words.add(level)
                words.update(a for a, b in _LEVEL_ALIASES.items() if b == level)
            return re.compile(("|".join(sorted(words))).encode(), re.I)
        return None

    def keeps(self, record: dict) -> bool:
        if self.levels and record.get("level") not in self.levels:
            return False
        if self.text and not self._compiled.search(record.get("message") or ""):
            # the raw line matched (e.g. in the logger or an extra field)
            if not self._compiled.search(json.dumps(record.get("extra") or "")) and \
                    not self._compiled.search(record.get("logger") or ""):
                return False
        if self.logger:
            name = record.get("logger") or ""
            if name != self.logger and not name.startswith(self.logger + "."):
                return False
        if self.request_id and record.get("request_id") != self.request_id:
            return False
        if self.since or self.until:
            when = record.get("time")
            if when is None:
                return False
            if self.since and when < self.since:
                return False
            if self.until and when > self.until:
                return False
        return True

    def highlight(self) -> dict | None:
        """What the page highlights: the pattern as the browser's RegExp takes it."""
        if not self.text:
            return None
        return {"pattern": self.text if self.regex else re.escape(self.text),
                "flags": "g" if self.case_sensitive else "gi"}


# ----------------------------------------------------------------- sources

def _inside(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def _real_folders(settings) -> list[str]:
    return [os.path.realpath(f) for f in settings.log_folders]


def list_sources(settings) -> list[dict]:
    """The configured files that exist (globs expanded, rotated siblings
    included, folders enforced) and the captured records."""
    folders = _real_folders(settings)
    seen: dict[str, dict] = {}
    for pattern in settings.log_file_patterns:
        for path in sorted(glob.glob(pattern)) or []:
            real = os.path.realpath(path)
            if real in seen or not os.path.isfile(real) or not _inside(real, folders):
                continue
            stat = os.stat(real)
            seen[real] = {"source": real, "kind": "file", "name": os.path.basename(real),
                          "size": stat.st_size,
                          "modified": datetime.fromtimestamp(stat.st_mtime,
                                                             timezone.utc).isoformat()}
    files = sorted(seen.values(), key=lambda s: (_rotation_base(s["source"]),
                                                 _rotation_index(s["source"])))
    return files + [{"source": CAPTURED, "kind": "captured",
                     "name": "Captured by monitor()", "size": None, "modified": None}]


def _rotation_index(path: str) -> int:
    match = re.search(r"\.(\d+)$", path)
    return int(match.group(1)) if match else 0


def _rotation_base(path: str) -> str:
    return re.sub(r"\.\d+$", "", path)


def resolve_source(settings, source: str | None) -> str:
    """`captured`, or the real path of a file inside the log folders.

    A relative name is looked up in each folder in turn. Raises
    LogAccessError for anything outside (`..`, a symlink out, an absolute path
    elsewhere) and for a file that does not exist."""
    if not source:
        files = [s for s in list_sources(settings) if s["kind"] == "file"]
        if files:
            return files[0]["source"]
        return CAPTURED
    if source == CAPTURED:
        return CAPTURED
    if "\x00" in source:
        raise LogAccessError("source: not a valid path")
    folders = _real_folders(settings)
    if not folders:
        raise LogAccessError("source: no log folders are configured (OPS_LOG_DIRS)",
                             code="no_log_folders")
    candidates = [source] if os.path.isabs(source) else \
        [os.path.join(f, source) for f in folders]
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if not _inside(real, folders):
            continue
        if os.path.isfile(real):
            return real
    if any(_inside(os.path.realpath(c), folders) for c in candidates):
        raise LogAccessError(f"source: no such log file: {os.path.basename(source)}",
                             code="not_found")
    raise LogAccessError("source: outside the configured log folders (OPS_LOG_DIRS)",
                         code="outside_log_folders")


# ----------------------------------------------------------------- tail

def _read_tail_lines(fh, end: int, count: int) -> tuple[list[bytes], int]:
    """The last `count` complete lines before byte `end`, and where the first
    of them starts. Reads TAIL_BLOCK blocks backwards."""
    pos = end
    data = b""
    while pos > 0 and data.count(b"\n") <= count:
        step = min(TAIL_BLOCK, pos)
        pos -= step
        fh.seek(pos)
        data = fh.read(step) + data
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()           # the file ends with a newline
    start = pos
    if pos > 0:
        start += len(lines[0]) + 1
        lines = lines[1:]     # the first one is partial
    if len(lines) > count:
        for skipped in lines[:len(lines) - count]:
            start += len(skipped) + 1
        lines = lines[-count:]
    return lines, start


def _decode(raw: bytes) -> str:
    return raw[:MAX_LINE].decode("utf-8", "replace")


def tail(settings, store, source: str | None, lines: int = 200,
         filters: Filters | None = None) -> dict:
    """The last `lines` lines of a file (or captured records), parsed. With
    filters, the matching records among those lines."""
    lines = max(1, min(int(lines), MAX_TAIL))
    path = resolve_source(settings, source)
    if path == CAPTURED:
        page = _captured_page(store, filters or Filters(), None, lines)
        return {"source": CAPTURED, "records": list(reversed(page["records"])),
                "position": page["last_id"]}
    with open(path, "rb") as fh:
        stat = os.fstat(fh.fileno())
        end = stat.st_size
        raw, start = _read_tail_lines(fh, end, lines)
    records = []
    offset = start
    for line in raw:
        record = parse_line(_decode(line))
        if filters is None or filters.keeps(record):
            records.append(_public(record, offset=offset))
        offset += len(line) + 1
    return {"source": path, "records": records, "size": end,
            "position": f"{stat.st_ino}:{end}"}


# ----------------------------------------------------------------- filter

def _rotation_chain(path: str) -> list[str]:
    """The file and its existing rotated siblings (name.1, name.2, ...), newest first."""
    if _rotation_index(path):
        return [path]
    chain = [path]
    for n in range(1, MAX_ROTATED + 1):
        sibling = f"{path}.{n}"
        if not os.path.isfile(sibling):
            break
        chain.append(sibling)
    return chain


def _scan_backwards(fh, end: int, prefilter: re.Pattern | None
                    ) -> Iterator[tuple[int, bytes]]:
    """(start offset, line) of the lines before `end` that match `prefilter`
    (all lines when None), newest first, in SCAN_CHUNK chunks."""
    while end > 0:
        pos = max(0, end - SCAN_CHUNK)
        fh.seek(pos)
        chunk = fh.read(end - pos)
        cut = chunk.find(b"\n") if pos > 0 else -1
        while pos > 0 and cut < 0:     # a line longer than a chunk: take it whole
            earlier = max(0, pos - SCAN_CHUNK)
            fh.seek(earlier)
            chunk = fh.read(pos - earlier) + chunk
            pos = earlier
            cut = chunk.find(b"\n") if pos > 0 else -1
        first = cut + 1 if pos > 0 else 0   # the chunk's first line may be partial
        found = []
        if prefilter is None:
            start = first
            for line in chunk[first:].split(b"\n"):
                found.append((start, line))
                start += len(line) + 1
            if found and found[-1][1] == b"":
                found.pop()
        else:
            # No slicing of the chunk: finditer and find take positions.
            last_start = -1
            for match in prefilter.finditer(chunk, first):
                newline = chunk.rfind(b"\n", first, match.start())
                start = newline + 1 if newline >= 0 else first
                if start == last_start:
                    continue
                stop = chunk.find(b"\n", match.end())
                if stop < 0:
                    stop = len(chunk)
                found.append((start, chunk[start:stop]))
                last_start = start
        for start, line in reversed(found):
            yield pos + start, line
        end = pos + first


def _parse_cursor(cursor: str | None) -> tuple[int, int | None]:
    if not cursor:
        return 0, None
    match = re.fullmatch(r"(\d{1,2}):(\d{1,19})", cursor)
    if not match:
        raise BadFilter("cursor: use the next_cursor of the previous page", "cursor")
    return int(match.group(1)), int(match.group(2))


def filter_records(settings, store, source: str | None, filters: Filters, *,
                   cursor: str | None = None, limit: int = 100,
                   rotated: bool = True) -> dict:
    """Matching records, newest first, one page at a time.

    Files: `cursor` is "<file index>:<byte offset>" (0 the file itself, 1 its
    `.1` sibling, ...); the next page starts just before the last record of
    this one. Captured: `cursor` is the last id seen."""
    limit = max(1, min(int(limit), MAX_EXPORT))
    path = resolve_source(settings, source)
    if path == CAPTURED:
        if cursor and not cursor.isdigit():
            raise BadFilter("cursor: use the next_cursor of the previous page", "cursor")
        page = _captured_page(store, filters, int(cursor) if cursor else None, limit)
        more = len(page["records"]) == limit
        return {"source": CAPTURED, "records": page["records"],
                "next_cursor": str(page["first_id"]) if more else None,
                "highlight": filters.highlight()}
    chain = _rotation_chain(path) if rotated else [path]
    index, end = _parse_cursor(cursor)
    if index >= len(chain):
        return {"source": path, "records": [], "next_cursor": None,
                "highlight": filters.highlight()}
    prefilter = filters.prefilter()
    # Lines of several processes may be a little out of order: stop scanning
    # only well before `since`.
    too_old = filters.since - SINCE_SLACK if filters.since else None
    stopped = False
    records: list[dict] = []
    next_cursor = None
    for i in range(index, len(chain)):
        with open(chain[i], "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            start_end = min(end, size) if (i == index and end is not None) else size
            for offset, raw in _scan_backwards(fh, start_end, prefilter):
                record = parse_line(_decode(raw))
                if too_old and record["time"] and record["time"] < too_old:
                    stopped = True   # files are written in time order: the rest is older
                    break
                if not filters.keeps(record):
                    continue
                records.append(_public(record, offset=offset,
                                       file=os.path.basename(chain[i])))
                if len(records) >= limit:
                    if offset > 0:
                        next_cursor = f"{i}:{offset}"
                    elif i + 1 < len(chain):
                        next_cursor = f"{i + 1}:{2 ** 62}"  # the next file from its end
                    break
        if len(records) >= limit or stopped:
            break
    return {"source": path, "records": records, "next_cursor": next_cursor,
            "files": [os.path.basename(p) for p in chain],
            "highlight": filters.highlight()}


# ----------------------------------------------------------------- captured

def _captured_query(filters: Filters):
    query = select(LogRecord)
    if filters.levels:
        query = query.where(LogRecord.level.in_(filters.levels))
    if filters.logger:
        query = query.where(or_(LogRecord.logger == filters.logger,
                                LogRecord.logger.like(_like_prefix(filters.logger))))
    if filters.request_id:
        query = query.where(LogRecord.request_id == filters.request_id)
    if filters.since:
        query = query.where(LogRecord.time >= filters.since)
    if filters.until:
        query = query.where(LogRecord.time <= filters.until)
    if filters.text and not filters.regex:
        query = query.where(LogRecord.message.ilike(
            "%" + _like_escape(filters.text) + "%", escape="\\"))
    return query


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(name: str):
    return _like_escape(name) + ".%"


def _row(row: LogRecord) -> dict:
    return {"id": row.id, "time": as_utc(row.time).isoformat(), "level": row.level,
            "logger": row.logger, "message": row.message, "request_id": row.request_id,
            "extra": {**(row.extras or {}), "process": row.process}}


def _captured_page(store, filters: Filters, before_id: int | None, limit: int,
                   max_scan: int = 50_000) -> dict:
    """Newest-first captured records below `before_id`. A regex (or a
    case-sensitive search) is applied here, over at most `max_scan` rows."""
    query = _captured_query(filters)
    exact = filters.text and (filters.regex or filters.case_sensitive)
    records: list[dict] = []
    first_id = before_id
    last_id = None
    scanned = 0
    with store.session() as session:
        while len(records) < limit and scanned < max_scan:
            page = query
            if first_id is not None:
                page = page.where(LogRecord.id < first_id)
            rows = list(session.scalars(page.order_by(LogRecord.id.desc()).limit(
                limit if not exact else 2_000)))
            if not rows:
                break
            scanned += len(rows)
            for row in rows:
                first_id = row.id
                if last_id is None:
                    last_id = row.id
                if exact and not filters._compiled.search(row.message):
                    continue
                records.append(_row(row))
                if len(records) >= limit:
                    break
            if not exact:
                break
    return {"records": records, "first_id": first_id, "last_id": last_id}


# ----------------------------------------------------------------- stats

def _bucket_seconds(minutes: int) -> int:
    for seconds in (60, 300, 900, 3600, 4 * 3600, 86400):
        if minutes * 60 / seconds <= 120:
            return seconds
    return 86400


def _error_key(message: str) -> str:
    first = (message or "").split("\n", 1)[0][:200]
    return re.sub(r"\d+", "#", first)


def stats(settings, store, source: str | None, minutes: int = 60,
          now: datetime | None = None, filters: Filters | None = None) -> dict:
    """Counts per level over time, top loggers and top error messages over
    the last `minutes`. A file is read backwards from its end, at most
    STATS_MAX_BYTES (`complete` says whether the window was fully covered)."""
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(minutes=minutes)
    bucket = _bucket_seconds(minutes)
    filters = filters or Filters()
    path = resolve_source(settings, source)
    records: list[dict] = []
    complete = True
    if path == CAPTURED:
        query = (_captured_query(filters).where(LogRecord.time >= since)
                 .with_only_columns(LogRecord.time, LogRecord.level, LogRecord.logger,
                                    LogRecord.message)
                 .order_by(LogRecord.id.desc()).limit(200_000))
        with store.session() as session:
            rows = session.execute(query).all()
        complete = len(rows) < 200_000
        records = [{"time": as_utc(t), "level": lv, "logger": lg, "message": m}
                   for t, lv, lg, m in rows]
    else:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            budget = STATS_MAX_BYTES
            stop = max(0, size - budget)
            for offset, raw in _scan_backwards(fh, size, None):
                if offset < stop:
                    complete = False
                    break
                record = parse_line(_decode(raw))
                when = record["time"]
                if when is not None and when < since:
                    break
                if when is None or when > now + timedelta(minutes=5):
                    continue
                if filters.keeps(record):
                    records.append(record)
    per_bucket: dict[tuple[int, str], int] = {}
    totals = {level: 0 for level in LEVELS}
    loggers: dict[str, int] = {}
    errors: dict[str, dict] = {}
    for record in records:
        level = record.get("level")
        if level is None:
            continue
        stamp = int(record["time"].timestamp()) // bucket * bucket
        per_bucket[(stamp, level)] = per_bucket.get((stamp, level), 0) + 1
        totals[level] += 1
        name = record.get("logger") or "?"
        loggers[name] = loggers.get(name, 0) + 1
        if level in ("ERROR", "CRITICAL"):
            key = _error_key(record.get("message"))
            entry = errors.setdefault(key, {"message": key, "count": 0, "last": None})
            entry["count"] += 1
            entry["last"] = max(entry["last"] or record["time"], record["time"])
    series = [{"time": datetime.fromtimestamp(stamp, timezone.utc).isoformat(),
               "level": level, "count": count}
              for (stamp, level), count in sorted(per_bucket.items())]
    top_errors = sorted(errors.values(), key=lambda e: -e["count"])[:10]
    for entry in top_errors:
        entry["last"] = entry["last"].isoformat() if entry["last"] else None
    return {"source": path, "since": since.isoformat(), "until": now.isoformat(),
            "bucket_seconds": bucket, "complete": complete, "totals": totals,
            "series": series,
            "top_loggers": [{"logger": k, "count": v} for k, v in
                            sorted(loggers.items(), key=lambda kv: -kv[1])[:10]],
            "top_errors": top_errors}


# ----------------------------------------------------------------- stream

class StreamSlots:
    """A bound on concurrent live streams in this process."""

    def __init__(self, size: int):
        self.size = size
        self._sem = threading.BoundedSemaphore(size)
        self.active = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self._sem.acquire(blocking=False):
            raise TooManyStreams(f"at most {self.size} live log streams at once")
        with self._lock:
            self.active += 1

    def release(self) -> None:
        with self._lock:
            self.active -= 1
        self._sem.release()


def _sse(data: dict, event_id: str | None = None, event: str | None = None) -> str:
    head = ""
    if event_id:
        head += f"id: {event_id}\n"
    if event:
        head += f"event: {event}\n"
    return head + "data: " + json.dumps(data, default=str) + "\n\n"


def _resume(last_event_id: str | None, ino: int, size: int) -> int | None:
    match = re.fullmatch(r"(\d+):(\d+)", last_event_id or "")
    if match and int(match.group(1)) == ino and int(match.group(2)) <= size:
        return int(match.group(2))
    return None


def stream(settings, store, source: str | None, filters: Filters, slots: StreamSlots,
           *, backlog: int = 100, last_event_id: str | None = None,
           max_seconds: float | None = None, poll: float = POLL_SECONDS,
           heartbeat: float = HEARTBEAT_SECONDS) -> Iterator[str]:
    """Server-Sent Events: first the last `backlog` matching lines, then every
    new matching line as it is written. Takes a slot from `slots` (raises
    TooManyStreams before anything is sent) and gives it back when the client
    goes away (the generator is closed) or after `max_seconds`."""
    path = resolve_source(settings, source)
    slots.acquire()

    def events() -> Iterator[str]:
        try:
            if path == CAPTURED:
                yield from _stream_captured(store, filters, backlog, last_event_id,
                                            max_seconds, heartbeat)
            else:
                yield from _stream_file(path, filters, backlog, last_event_id,
                                        max_seconds, poll, heartbeat)
        except (OSError, SQLAlchemyError) as exc:
            # Headers are sent: say why in the stream; EventSource reconnects.
            logger.warning("log stream of %s ended: %s", path, str(exc)[:200])
            yield _sse({"message": "The log source became unreadable: "
                                   f"{type(exc).__name__}"}, event="failure")
        finally:
            slots.release()
    return events()


def _stream_file(path, filters, backlog, last_event_id, max_seconds, poll, heartbeat):
    started = time.monotonic()
    fh = open(path, "rb")
    try:
        stat = os.fstat(fh.fileno())
        ino, pos = stat.st_ino, stat.st_size
        resumed = _resume(last_event_id, ino, pos)
        yield "retry: 2000\n\n"
        yield _sse({"source": path, "highlight": filters.highlight(),
                    "resumed": resumed is not None}, event="hello")
        if resumed is not None:
            pos = resumed
        elif backlog:
            raw, start = _read_tail_lines(fh, pos, min(backlog * 20, MAX_TAIL)
                                          if filters.active else backlog)
            kept = []
            offset = start
            for line in raw:
                record = parse_line(_decode(line))
                if filters.keeps(record):
                    kept.append(_public(record, offset=offset))
                offset += len(line) + 1
            for record in kept[-backlog:]:
                yield _sse(record, f"{ino}:{record['offset']}")
        fh.seek(pos)
        partial = b""

        def emit(data: bytes, final: bool = False):
            """SSE events for the complete lines of `partial` + `data`."""
            nonlocal partial, pos
            lines = (partial + data).split(b"\n")
            partial = b"" if final else lines.pop()
            offset = pos
            for line in lines:
                if final and not line:
                    continue
                record = parse_line(_decode(line))
                if filters.keeps(record):
                    yield _sse(_public(record, offset=offset),
                               f"{ino}:{offset + len(line) + 1}")
                offset += len(line) + 1
            pos = offset

        last_beat = time.monotonic()
        while max_seconds is None or time.monotonic() - started < max_seconds:
            chunk = fh.read(SCAN_CHUNK)
            if chunk:
                yield from emit(chunk)
                last_beat = time.monotonic()
                continue
            # Nothing new in this handle: was the file rotated or truncated?
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None    # between rename and re-create: wait
            if current is not None and current.st_ino != ino:
                yield from emit(fh.read(), final=True)  # the old file's last lines
                fh.close()
                fh = open(path, "rb")
                ino, pos, partial = os.fstat(fh.fileno()).st_ino, 0, b""
                yield _sse({"reason": "rotated"}, event="reset")
                continue
            if current is not None and current.st_size < pos + len(partial):
                fh.seek(0)
                pos, partial = 0, b""
                yield _sse({"reason": "truncated"}, event="reset")
                continue
            if time.monotonic() - last_beat >= heartbeat:
                last_beat = time.monotonic()
                yield ": keep-alive\n\n"
            time.sleep(poll)
    finally:
        fh.close()


def _stream_captured(store, filters, backlog, last_event_id, max_seconds, heartbeat):
    started = time.monotonic()
    yield "retry: 2000\n\n"
    yield _sse({"source": CAPTURED, "highlight": filters.highlight(),
                "resumed": bool(last_event_id and last_event_id.isdigit())}, event="hello")
    if last_event_id and last_event_id.isdigit():
        last = int(last_event_id)
    else:
        page = _captured_page(store, filters, None, max(1, backlog))
        for record in reversed(page["records"] if backlog else []):
            yield _sse(record, str(record["id"]))
        with store.session() as session:
            last = session.scalar(select(func.max(LogRecord.id))) or 0
    last_beat = time.monotonic()
    exact = filters.text and (filters.regex or filters.case_sensitive)
    while max_seconds is None or time.monotonic() - started < max_seconds:
        with store.session() as session:
            rows = list(session.scalars(_captured_query(filters)
                                        .where(LogRecord.id > last)
                                        .order_by(LogRecord.id).limit(500)))
            newest = session.scalar(select(func.max(LogRecord.id))) or last
        for row in rows:
            if not exact or filters._compiled.search(row.message):
                yield _sse(_row(row), str(row.id))
        last = rows[-1].id if len(rows) == 500 else max(last, newest)
        if rows:
            last_beat = time.monotonic()
        elif time.monotonic() - last_beat >= heartbeat:
            last_beat = time.monotonic()
            yield ": keep-alive\n\n"
        time.sleep(0.5)


# ----------------------------------------------------------------- export

def export(settings, store, source: str | None, filters: Filters, fmt: str,
           limit: int = MAX_EXPORT) -> tuple[str, str]:
    """(text, file name) of the newest `limit` matching records, oldest first,
    as JSON (a list of records) or TXT (one line per record)."""
    page = filter_records(settings, store, source, filters, limit=limit)
    records = list(reversed(page["records"]))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    if fmt == "json":
        return json.dumps(records, indent=1, default=str), f"logs-{stamp}.json"
    lines = []
    for r in records:
        head = " ".join(p for p in (r.get("time"), r.get("level"), r.get("logger")) if p)
        rid = r.get("request_id")
        rid = f" [req:{rid}]" if rid and rid not in (r.get("message") or "") else ""
        lines.append(f"{head}: {r.get('message')}{rid}" if head else r.get("message") or "")
    return "\n".join(lines) + ("\n" if lines else ""), f"logs-{stamp}.txt"
