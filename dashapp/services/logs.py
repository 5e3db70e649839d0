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

import errno
import glob
import json
import logging
import os
import re
import threading
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from stat import S_ISREG
from typing import Iterator

from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from dashapp.core import scrub
from dashapp.security.patterns import (PatternError, UserPattern, compile_user_pattern,
                                       literal_alternatives)
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
SCAN_SECONDS = 10.0           # a filter request answers (partial) after about this
MAX_MARKS = 200               # highlighted matches per streamed line


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

def redact(text: str) -> str:
    """The line with its secrets as `***` (names like `password=`, `token:`,
    `Authorization: Bearer`, URL passwords, private keys, SQL values...):
    the console's one scrubber, which keeps a line without a hint word cheap."""
    return scrub.scrub_text(text)


def redact_extras(extras: dict | None) -> dict | None:
    """A record's extra fields: a secret name's value is `***`, the others are
    scrubbed like the message."""
    if not extras:
        return extras
    return scrub.scrub_mapping(extras)


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

@dataclass
class Filters:
    """What a filter/stream keeps. Empty fields keep everything.

    The search text is compiled by `compile_user_pattern` (RE2, linear
    time), never by Python's backtracking `re`: a user's pattern cannot hold
    the process however it is written."""
    levels: tuple[str, ...] = ()
    text: str | None = None
    regex: bool = False
    case_sensitive: bool = False
    logger: str | None = None          # a logger name and its children
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    _compiled: UserPattern | None = field(default=None, repr=False)

    def __post_init__(self):
        self.levels = tuple(dict.fromkeys(
            lvl for lvl in (normalize_level(v) for v in self.levels) if lvl))
        if self.text:
            try:
                self._compiled = compile_user_pattern(self.text, regex=self.regex,
                                                      case_sensitive=self.case_sensitive)
            except PatternError as exc:
                raise BadFilter(str(exc), "q") from None
        if self.since and self.until and self.since > self.until:
            raise BadFilter("since must be before until", "since")

    @property
    def active(self) -> bool:
        return bool(self.levels or self.text or self.logger or self.request_id
                    or self.since or self.until)

    def prefilter(self):
        """What a raw line must match to be worth parsing (an RE2 pattern
        that never spans lines, or None: every line)."""
        if self.request_id:
            return compile_user_pattern(self.request_id, regex=False,
                                        case_sensitive=True).line_scanner()
        if self._compiled is not None and not self._compiled.anchored:
            # (an anchored regex means the message's start or end, not the
            # raw line's: such a search parses every line instead)
            return self._compiled.line_scanner()
        if self.logger:
            return compile_user_pattern(self.logger, regex=False,
                                        case_sensitive=True).line_scanner()
        if self.levels:
            words = set()
            for level in self.levels:
                words.add(level)
                words.update(a for a, b in _LEVEL_ALIASES.items() if b == level)
            return literal_alternatives(sorted(words), case_sensitive=False).line_scanner()
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

    def marked(self, record: dict) -> dict:
        """`record` with `marks`: where the search matches its message, as
        [start, end] pairs in JavaScript string indexes (UTF-16 code units).
        The page highlights these instead of running the user's pattern in
        the browser, whose regex engine backtracks."""
        if self._compiled is None or not record.get("message"):
            return record
        text = record["message"]
        spans = []
        for n, match in enumerate(self._compiled.finditer(text)):
            if n >= MAX_MARKS * 4 or len(spans) >= MAX_MARKS:
                break
            if match.end() > match.start():
                spans.append([match.start(), match.end()])
        if spans and not text.isascii():
            # characters beyond the BMP are two UTF-16 code units in JavaScript
            astral = [i for i, ch in enumerate(text) if ord(ch) > 0xFFFF]
            spans = [[a + bisect_left(astral, a), b + bisect_left(astral, b)]
                     for a, b in spans]
        return {**record, "marks": spans}

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


def _configured_files(settings, folders: list[str]) -> set[str] | None:
    """With OPS_LOG_DIRS unset, the only readable files: the real paths of
    what OPS_LOG_FILES matches inside its folders, and of their rotated
    siblings (name.1 .. name.9) that are not symlinks. None when OPS_LOG_DIRS
    is set: then any file in those folders may be read."""
    if settings.log_whole_folders:
        return None
    files: set[str] = set()
    for pattern in settings.log_file_patterns:
        is_glob = any(c in pattern for c in "*?[")
        for path in glob.glob(pattern):
            real = os.path.realpath(path)
            if not _inside(real, folders) or (is_glob and os.path.islink(path)):
                # (a file named outright may be a symlink, e.g. current.log;
                # one a glob happens to match may not: it could be any file)
                continue
            files.add(real)
            if not _rotation_index(real):
                # A sibling is the log's own rotation only if it is no
                # symlink: `app.log.1 -> settings.py` is refused.
                files.update(f"{real}.{n}" for n in range(1, MAX_ROTATED + 1)
                             if os.path.realpath(f"{real}.{n}") == f"{real}.{n}")
    return files


def _readable(real: str, folders: list[str], files: set[str] | None) -> bool:
    """`real` (a resolved path) may be read: inside the folders (and one of
    the configured files when only those may be read)."""
    return _inside(real, folders) and (files is None or real in files)


def _single_link(real: str) -> bool:
    """A regular file with one hard link. A second link could be any file
    of the same file system (the console's secret key, /etc/shadow) put in
    the log folder under a log's name: realpath cannot see through it."""
    try:
        stat = os.stat(real)
    except OSError:
        return False
    return S_ISREG(stat.st_mode) and stat.st_nlink == 1


def _refuse_hard_link(real: str) -> None:
    raise LogAccessError(f"source: refused: {os.path.basename(real)} has more than one "
                         "hard link, so it may be another file's content; log files "
                         "must have exactly one", code="hard_linked")


def open_log(real: str):
    """Open a resolved log file for reading, re-checking what it is at the
    moment it is opened (not a symlink swapped in since it was resolved,
    one hard link, a regular file)."""
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LogAccessError("source: outside the configured log folders "
                                 "(OPS_LOG_DIRS)", code="outside_log_folders") from None
        raise
    stat = os.fstat(fd)
    if not S_ISREG(stat.st_mode) or stat.st_nlink != 1:
        os.close(fd)
        _refuse_hard_link(real)
    return os.fdopen(fd, "rb")


def list_sources(settings) -> list[dict]:
    """The configured files that exist (globs expanded, rotated siblings
    included, folders enforced, hard-linked files left out) and the
    captured records."""
    folders = _real_folders(settings)
    files = _configured_files(settings, folders)
    seen: dict[str, dict] = {}
    for pattern in settings.log_file_patterns:
        for path in sorted(glob.glob(pattern)) or []:
            real = os.path.realpath(path)
            if real in seen or not _readable(real, folders, files) or \
                    not _single_link(real):
                continue
            stat = os.stat(real)
            seen[real] = {"source": real, "kind": "file", "name": os.path.basename(real),
                          "size": stat.st_size,
                          "modified": datetime.fromtimestamp(stat.st_mtime,
                                                             timezone.utc).isoformat()}
    listed = sorted(seen.values(), key=lambda s: (_rotation_base(s["source"]),
                                                  _rotation_index(s["source"])))
    return listed + [{"source": CAPTURED, "kind": "captured",
                      "name": "Captured by monitor()", "size": None, "modified": None}]


def _rotation_index(path: str) -> int:
    match = re.search(r"\.(\d+)$", path)
    return int(match.group(1)) if match else 0


def _rotation_base(path: str) -> str:
    return re.sub(r"\.\d+$", "", path)


def resolve_source(settings, source: str | None) -> str:
    """`captured`, or the real path of a readable log file.

    A relative name is looked up in each folder in turn. Raises
    LogAccessError for anything outside (`..`, a symlink out, an absolute path
    elsewhere, with OPS_LOG_DIRS unset a file that OPS_LOG_FILES does not
    name), for a file with more than one hard link and for a file that does
    not exist."""
    if not source:
        listed = [s for s in list_sources(settings) if s["kind"] == "file"]
        if listed:
            return listed[0]["source"]
        return CAPTURED
    if source == CAPTURED:
        return CAPTURED
    if "\x00" in source:
        raise LogAccessError("source: not a valid path")
    folders = _real_folders(settings)
    if not folders:
        raise LogAccessError("source: no log folders are configured (OPS_LOG_DIRS)",
                             code="no_log_folders")
    files = _configured_files(settings, folders)
    candidates = [source] if os.path.isabs(source) else \
        [os.path.join(f, source) for f in folders]
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if not _readable(real, folders, files):
            continue
        if os.path.isfile(real):
            if not _single_link(real):
                _refuse_hard_link(real)
            return real
    if any(_readable(os.path.realpath(c), folders, files) for c in candidates):
        raise LogAccessError(f"source: no such log file: {os.path.basename(source)}",
                             code="not_found")
    if files is not None and any(_inside(os.path.realpath(c), folders) for c in candidates):
        raise LogAccessError("source: not one of the configured log files (OPS_LOG_FILES); "
                             "set OPS_LOG_DIRS to read every file of a folder",
                             code="outside_log_folders")
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
    with open_log(path) as fh:
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

def _rotation_chain(settings, path: str) -> list[str]:
    """The file and its existing rotated siblings (name.1, name.2, ...),
    newest first. A sibling passes the same checks as the file itself
    (readable after realpath, one hard link) or is skipped."""
    if _rotation_index(path):
        return [path]
    folders = _real_folders(settings)
    files = _configured_files(settings, folders)
    chain = [path]
    for n in range(1, MAX_ROTATED + 1):
        sibling = f"{path}.{n}"
        real = os.path.realpath(sibling)
        if not os.path.isfile(real):
            break
        if not _readable(real, folders, files) or not _single_link(real):
            logger.info("log %s: rotated sibling %s skipped (outside the log folders "
                        "or hard-linked)", os.path.basename(path), os.path.basename(sibling))
            continue
        chain.append(real)
    return chain


def _scan_backwards(fh, end: int, prefilter, marks: bool = False
                    ) -> Iterator[tuple[int, bytes | None]]:
    """(start offset, line) of the lines before `end` that match `prefilter`
    (all lines when None), newest first, in SCAN_CHUNK chunks. With `marks`,
    also (offset, None) after each chunk: everything from offset on is done."""
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
            # No slicing of the chunk: search and find take positions. After
            # a match the search goes on from the next line (one hit per line).
            # RE2 releases the GIL while it searches.
            at = first
            size = len(chunk)
            while at < size:
                match = prefilter.search(chunk, at)
                if match is None:
                    break
                newline = chunk.rfind(b"\n", at, match.start())
                start = newline + 1 if newline >= 0 else at
                stop = chunk.find(b"\n", match.end())
                if stop < 0:
                    stop = size
                found.append((start, chunk[start:stop]))
                at = stop + 1
        for start, line in reversed(found):
            yield pos + start, line
        end = pos + first
        if marks:
            yield end, None


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
    this one. A scan stops after about SCAN_SECONDS (a slow pattern over a
    big file) with `partial` true: fewer than `limit` records and a
    next_cursor that goes on from there. Captured: `cursor` is the last id
    seen."""
    limit = max(1, min(int(limit), MAX_EXPORT))
    path = resolve_source(settings, source)
    if path == CAPTURED:
        if cursor and not cursor.isdigit():
            raise BadFilter("cursor: use the next_cursor of the previous page", "cursor")
        page = _captured_page(store, filters, int(cursor) if cursor else None, limit)
        more = len(page["records"]) == limit
        return {"source": CAPTURED, "records": page["records"],
                "next_cursor": str(page["first_id"]) if more else None,
                "partial": False, "highlight": filters.highlight()}
    chain = _rotation_chain(settings, path) if rotated else [path]
    index, end = _parse_cursor(cursor)
    if index >= len(chain):
        return {"source": path, "records": [], "next_cursor": None,
                "highlight": filters.highlight()}
    prefilter = filters.prefilter()
    # Lines of several processes may be a little out of order: stop scanning
    # only well before `since`.
    too_old = filters.since - SINCE_SLACK if filters.since else None
    deadline = time.monotonic() + SCAN_SECONDS
    stopped = partial = False
    records: list[dict] = []
    next_cursor = None
    for i in range(index, len(chain)):
        with open_log(chain[i]) as fh:
            size = os.fstat(fh.fileno()).st_size
            start_end = min(end, size) if (i == index and end is not None) else size
            for offset, raw in _scan_backwards(fh, start_end, prefilter, marks=True):
                if raw is None:
                    if time.monotonic() > deadline and (offset > 0 or i + 1 < len(chain)):
                        # A slow pattern over a big file: answer with what was
                        # found; next_cursor goes on from here.
                        partial = stopped = True
                        next_cursor = f"{i}:{offset}" if offset > 0 else f"{i + 1}:{2 ** 62}"
                        break
                    continue
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
            "partial": partial, "files": [os.path.basename(p) for p in chain],
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
    """A captured record as the API answers it, scrubbed again on the way out
    (records stored by an earlier release may hold what today's scrubber masks)."""
    return {"id": row.id, "time": as_utc(row.time).isoformat(), "level": row.level,
            "logger": row.logger, "message": redact(row.message),
            "request_id": row.request_id,
            "extra": {**(redact_extras(row.extras) or {}), "process": row.process}}


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
        with open_log(path) as fh:
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
    """A bound on concurrent live streams in this process, and on those of
    one user: a user opening many tabs (or a script) cannot take every slot.

    A stream learns that its client left (a closed tab, a page that switched
    to other filters) only when it next writes. So a caller over a bound
    first asks the streams concerned to write now (`probing`) and waits up to
    `wait` seconds for the slots of those that are gone, then gets
    TooManyStreams."""

    def __init__(self, size: int, per_user: int | None = None, wait: float = 2.0):
        self.size = size
        self.per_user = per_user or size
        self.wait = wait
        self.active = 0
        self._users: dict[str, int] = {}
        self._probe_all = 0.0
        self._probe: dict[str, float] = {}
        self._cond = threading.Condition()

    def _full(self, user: str | None) -> str | None:
        if self.active >= self.size:
            return (f"at most {self.size} live log streams at once in this console "
                    "process (OPS_LOG_MAX_STREAMS)")
        if user is not None and self._users.get(user, 0) >= self.per_user:
            return (f"at most {self.per_user} live log streams per user at once "
                    "(OPS_LOG_STREAMS_PER_USER)")
        return None

    def acquire(self, user: str | None = None) -> None:
        with self._cond:
            reason = self._full(user)
            if reason is not None:
                deadline = time.monotonic() + self.wait
                if self.active >= self.size:
                    self._probe_all = deadline
                elif user is not None:
                    self._probe[user] = deadline
                while reason is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TooManyStreams(reason)
                    self._cond.wait(left)
                    reason = self._full(user)
            self.active += 1
            if user is not None:
                self._users[user] = self._users.get(user, 0) + 1

    def release(self, user: str | None = None) -> None:
        with self._cond:
            self.active -= 1
            if user is not None:
                left = self._users.get(user, 0) - 1
                if left > 0:
                    self._users[user] = left
                else:
                    self._users.pop(user, None)
            self._cond.notify_all()

    def probing(self, user: str | None) -> bool:
        """Whether a stream of `user` should write now to learn whether its
        client is still there."""
        now = time.monotonic()
        return now < self._probe_all or (user is not None
                                         and now < self._probe.get(user, 0.0))

    def held_by(self, user: str) -> int:
        with self._cond:
            return self._users.get(user, 0)


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
           heartbeat: float = HEARTBEAT_SECONDS, user: str | None = None) -> Iterator[str]:
    """Server-Sent Events: first the last `backlog` matching lines, then every
    new matching line as it is written. Takes a slot from `slots` for `user`
    (raises TooManyStreams before anything is sent) and gives it back when
    the client goes away (the generator is closed) or after `max_seconds`."""
    path = resolve_source(settings, source)
    slots.acquire(user)
    once = threading.Lock()

    def probe() -> bool:
        return slots.probing(user)

    def release() -> None:
        if once.acquire(blocking=False):     # only the first call gives it back
            slots.release(user)

    def events() -> Iterator[str]:
        try:
            if path == CAPTURED:
                yield from _stream_captured(store, filters, backlog, last_event_id,
                                            max_seconds, heartbeat, probe)
            else:
                yield from _stream_file(path, filters, backlog, last_event_id,
                                        max_seconds, poll, heartbeat, probe)
        except (OSError, SQLAlchemyError, LogAccessError) as exc:
            # Headers are sent: say why in the stream; EventSource reconnects.
            logger.warning("log stream of %s ended: %s", path, str(exc)[:200])
            yield _sse({"message": "The log source became unreadable: "
                                   f"{type(exc).__name__}"}, event="failure")
        finally:
            release()
    return _SlotStream(events(), release)


class _SlotStream:
    """The events, giving the slot back when closed even if never started
    (a generator's `finally` only runs once it has started)."""

    def __init__(self, events: Iterator[str], release) -> None:
        self._events = events
        self._release = release

    def __iter__(self) -> "_SlotStream":
        return self

    def __next__(self) -> str:
        return next(self._events)

    def close(self) -> None:
        try:
            self._events.close()
        finally:
            self._release()


def _stream_file(path, filters, backlog, last_event_id, max_seconds, poll, heartbeat,
                 probe=lambda: False):
    started = time.monotonic()
    fh = open_log(path)
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
                yield _sse(filters.marked(record), f"{ino}:{record['offset']}")
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
                    yield _sse(filters.marked(_public(record, offset=offset)),
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
                fh = open_log(path)
                ino, pos, partial = os.fstat(fh.fileno()).st_ino, 0, b""
                yield _sse({"reason": "rotated"}, event="reset")
                continue
            if current is not None and current.st_size < pos + len(partial):
                fh.seek(0)
                pos, partial = 0, b""
                yield _sse({"reason": "truncated"}, event="reset")
                continue
            if time.monotonic() - last_beat >= heartbeat or probe():
                last_beat = time.monotonic()
                yield ": keep-alive\n\n"
            time.sleep(poll)
    finally:
        fh.close()


def _stream_captured(store, filters, backlog, last_event_id, max_seconds, heartbeat,
                     probe=lambda: False):
    started = time.monotonic()
    yield "retry: 2000\n\n"
    yield _sse({"source": CAPTURED, "highlight": filters.highlight(),
                "resumed": bool(last_event_id and last_event_id.isdigit())}, event="hello")
    if last_event_id and last_event_id.isdigit():
        last = int(last_event_id)
    else:
        page = _captured_page(store, filters, None, max(1, backlog))
        for record in reversed(page["records"] if backlog else []):
            yield _sse(filters.marked(record), str(record["id"]))
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
                yield _sse(filters.marked(_row(row)), str(row.id))
        last = rows[-1].id if len(rows) == 500 else max(last, newest)
        if rows:
            last_beat = time.monotonic()
        elif time.monotonic() - last_beat >= heartbeat or probe():
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
