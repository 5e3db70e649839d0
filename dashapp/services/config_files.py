"""Configuration files in OPS_CONFIG_DIR: list, read (secrets masked), validate,
write atomically with optimistic locking, history and rollback.

Safety rules, each enforced here so the REST routes and the page share them:

- A name is a clean relative path inside the folder: no ``..`` or ``.``
  segments, not absolute, no backslash, NUL or control characters, one of the
  allowed extensions, and it must resolve (realpath) to a regular file inside
  realpath(folder) with no symlink anywhere on the way and only one hard
  link (another name could be outside the folder). Checked on every read,
  and again under the lock right before a write (TOCTOU).
- A file's version is the sha256 of its bytes. A write names the version it
  was based on; a different version on disk is a conflict (409), checked
  under a per-folder lock (``flock`` on the folder, so several console
  workers exclude each other too) and once more right before the rename.
- Writes go to a temporary file created with O_EXCL in the same folder,
  fsync'd, given the old file's mode, then ``os.replace``d over the file.
- Every version is kept in ``ConfigAudit`` with its exact bytes, so a
  rollback writes back exactly what was there (same sha256). The file as
  first found on disk (and after any change made outside the console) is
  recorded as a "baseline" version before the console changes it.
- Non-admins see secret-looking values masked, in the file and in diffs;
  a body still holding the mask where a secret was is never written.
"""
from __future__ import annotations

import configparser
import difflib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets as _secrets
import stat
import tomllib
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import func, select

from dashapp.core import scrub
from dashapp.store.models import ConfigAudit, as_utc

logger = logging.getLogger(__name__)

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml",
           ".ini": "ini", ".cfg": "ini", ".env": "env"}
ALLOWED_EXTENSIONS = tuple(FORMATS)
MASK = "********"
MAX_BYTES = 1024 * 1024          # larger files are refused (read and write)
MAX_NAME = 512
MAX_FILES = 500                  # listed at most
MAX_REASON = 500
MAX_ERRORS = 50                  # validation errors reported at most
SCHEMA_SUFFIX = ".schema.json"
SYSTEM_ACTOR = "(on disk)"
_SEGMENT = re.compile(r"^[\w.\- @+]+$")


# ------------------------------------------------------------------ errors

class ConfigError(Exception):
    """Base of the errors this module raises on purpose."""


class PathRefused(ConfigError):
    """The name leaves the folder or is not an editable config file (400)."""


class FileMissing(ConfigError):
    """No such file in the folder (404)."""


class NotText(ConfigError):
    """The file is too big or not UTF-8 text (400)."""


class VersionRequired(ConfigError):
    """A write without the version it was based on (428)."""


class VersionConflict(ConfigError):
    """The file changed since the caller read it (409)."""

    def __init__(self, current: str, message: str | None = None):
        self.current = current
        super().__init__(message or "The file changed since you read it (it is now version "
                         f"{current[:12]}); reload it, re-apply your edit and save again.")


class InvalidContent(ConfigError):
    """The new content does not validate (422); `errors` says where."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        first = errors[0] if errors else {}
        where = f"line {first.get('line')}" if first.get("line") else "the file"
        super().__init__(f"{len(errors)} validation error{'s' if len(errors) != 1 else ''}; "
                         f"the first is at {where}")


class MaskedSecret(ConfigError):
    """The body still holds the mask where a secret was (400)."""


class VersionNotFound(ConfigError):
    """Rollback to a version the history does not hold (404)."""


class ReasonRequired(ConfigError):
    """A change needs a reason (400)."""


# ------------------------------------------------------------------- names

def file_format(name: str) -> str:
    """yaml, json, toml, ini or env, from the name's extension."""
    base = name.rsplit("/", 1)[-1].lower()
    for ext, fmt in FORMATS.items():
        if base.endswith(ext):
            return fmt
    raise PathRefused(f"Only {', '.join(ALLOWED_EXTENSIONS)} files can be edited.")


def check_name(name: Any) -> str:
    """The name if it is a clean relative path with an allowed extension,
    else PathRefused saying why. Does not touch the disk."""
    if not isinstance(name, str) or not name:
        raise PathRefused("A file name is required.")
    if len(name) > MAX_NAME:
        raise PathRefused(f"The file name is longer than {MAX_NAME} characters.")
    if "\x00" in name:
        raise PathRefused("The file name contains a NUL byte.")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise PathRefused("The file name contains control characters.")
    if "\\" in name:
        raise PathRefused("Use / to separate folders; backslashes are refused.")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise PathRefused("Absolute paths are refused: name a file inside the config folder.")
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise PathRefused("The name may not contain '..', '.' or empty path segments.")
        if not _SEGMENT.match(segment):
            raise PathRefused("The name may contain only letters, digits, spaces and "
                              "._-@+ characters.")
    file_format(name)
    return name


def resolve(folder: Path, name: str) -> Path:
    """The real path of config file `name` inside `folder`. PathRefused when it
    leaves the folder, goes through a symlink, or is not a regular file;
    FileMissing when it does not exist."""
    check_name(name)
    root = os.path.realpath(folder)
    candidate = os.path.join(root, *name.split("/"))
    real = os.path.realpath(candidate)
    if os.path.commonpath([root, real]) != root:
        raise PathRefused("The name points outside the config folder.")
    if real != candidate:
        raise PathRefused("Symbolic links are not followed in the config folder.")
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        raise FileMissing(f"No file {name!r} in the config folder.") from None
    except NotADirectoryError:
        raise PathRefused("A part of the name is a file, not a folder.") from None
    if stat.S_ISDIR(st.st_mode):
        raise PathRefused(f"{name!r} is a folder, not a file.")
    if not stat.S_ISREG(st.st_mode):
        raise PathRefused(f"{name!r} is not a regular file.")
    _refuse_hard_links(name, st)
    return Path(real)


def _refuse_hard_links(name: str, st: os.stat_result) -> None:
    """A file with a second name (a hard link) may be a file outside the
    folder, so reading or writing it here is refused, like a symlink."""
    if st.st_nlink > 1:
        raise PathRefused(f"{name!r} has {st.st_nlink} hard links; files with more than one "
                          "hard link are refused in the config folder (another name may "
                          "be outside it).")


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; never follows a symlink nor blocks on a FIFO."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileMissing(f"No file {path.name!r} in the config folder.") from None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component became a symlink
            raise PathRefused("Symbolic links are not followed in the config folder.") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PathRefused(f"{path.name!r} is not a regular file.")
        _refuse_hard_links(path.name, st)       # again on the open file (TOCTOU)
        if st.st_size > MAX_BYTES:
            raise NotText(f"The file is larger than {MAX_BYTES // 1024} KiB; edit it elsewhere.")
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise NotText(f"The file is not UTF-8 text (a bad byte on line {line}).") from None


def schema_name(name: str) -> str:
    """The JSON Schema that applies to `name`: <stem>.schema.json beside it
    (shop.yaml -> shop.schema.json; .env -> .env.schema.json)."""
    folder, _, base = name.rpartition("/")
    stem = base
    for ext in ALLOWED_EXTENSIONS:
        if base.lower().endswith(ext) and len(base) > len(ext):
            stem = base[:-len(ext)]
            break
    return (folder + "/" if folder else "") + stem + SCHEMA_SUFFIX


def _schema_path(folder: Path, name: str) -> Path | None:
    if name.endswith(SCHEMA_SUFFIX):
        return None
    try:
        return resolve(folder, schema_name(name))
    except ConfigError:
        return None


# ----------------------------------------------------------------- listing

def list_files(store, folder: Path) -> dict:
    """Every editable file in the folder (subfolders too, symlinks skipped),
    with size, modification time, version, schema and the last change."""
    root = os.path.realpath(folder)
    files: list[dict] = []
    truncated = False
    exists = os.path.isdir(root)
    for current, dirs, names in os.walk(root) if exists else ():
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(current, d)))
        for base in sorted(names):
            full = os.path.join(current, base)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            try:
                check_name(rel)
                st = os.lstat(full)
            except (ConfigError, OSError):
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
                continue                # hard-linked files are refused: not listed
            if len(files) >= MAX_FILES:
                truncated = True
                break
            try:
                version = version_of(_read_bytes(Path(full))) if st.st_size <= MAX_BYTES else None
            except (ConfigError, OSError):
                version = None
            files.append({"name": rel, "format": file_format(rel), "size": st.st_size,
                          "modified": datetime.fromtimestamp(st.st_mtime, timezone.utc)
                          .isoformat(timespec="seconds"),
                          "version": version, "schema": None, "last_change": None})
    names_set = {f["name"] for f in files}
    for f in files:
        schema = schema_name(f["name"])
        f["schema"] = schema if schema in names_set and not f["name"].endswith(SCHEMA_SUFFIX) \
            else None
    last = _last_changes(store, [f["name"] for f in files])
    for f in files:
        f["last_change"] = last.get(f["name"])
    return {"folder": str(folder), "exists": exists, "files": files, "truncated": truncated}


def _last_changes(store, names: list[str]) -> dict[str, dict]:
    if not names:
        return {}
    with store.session() as sess:
        newest = (select(func.max(ConfigAudit.id)).where(ConfigAudit.file.in_(names))
                  .group_by(ConfigAudit.file))
        rows = sess.execute(select(ConfigAudit.file, ConfigAudit.time, ConfigAudit.actor,
                                   ConfigAudit.kind).where(ConfigAudit.id.in_(newest))).all()
    return {r.file: {"time": as_utc(r.time).isoformat(timespec="seconds"), "actor": r.actor,
                     "kind": r.kind} for r in rows}


# ----------------------------------------------------------------- masking

_KEY_LINE = {
    # YAML: key: value / "key": value (also "- key: value")
    "colon": re.compile(r"""^(?P<lead>\s*(?:-\s+)?)(?P<key>"[^"]*"|'[^']*'|[^\s#'"\-{}\[\],][^:#]*?)"""
                        r"""(?P<sep>\s*:)(?P<rest>(?:\s.*)?)$"""),
    # TOML, INI and .env: key = value (INI also key: value; .env "export KEY=")
    "equals": re.compile(r"""^(?P<lead>\s*(?:export\s+)?)(?P<key>"[^"]*"|'[^']*'|[^\s=:#;\[][^=:]*?)"""
                         r"""(?P<sep>\s*[=:]\s*)(?P<rest>.*)$"""),
}
_SECTION = re.compile(r"^\s*\[+\s*(?P<name>[^\]]+?)\s*\]+\s*(?:[#;].*)?$")
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_OPENERS = {"", "|", ">", "|-", ">-", "|+", ">+", "{", "[", '"""', "'''"}


def _key_text(key: str) -> str:
    """A key as its parser reads it: quotes off and escapes decoded, so
    `"pass\\u0077ord"` (JSON, TOML, YAML) is judged as `password`."""
    key = key.strip()
    if len(key) >= 2 and key[0] == key[-1] == "'":
        return key[1:-1].replace("''", "'")
    if len(key) < 2 or key[0] != '"' or key[-1] != '"':
        return key
    if "\\" not in key:
        return key[1:-1]
    try:
        decoded = json.loads(key)
    except ValueError:
        try:                # YAML's \x41 and friends
            decoded = key[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            decoded = key[1:-1]
    return decoded if isinstance(decoded, str) else key[1:-1]


def is_secret_key(key: str) -> bool:
    """Keys that hold a secret, by the console's one deny-list (`DB_PASSWORD`,
    `client_secret`, `api_key`..., not `cache_key` or `token_count`)."""
    return scrub.is_secret_name(_key_text(key))


def _split_value(rest: str, fmt: str) -> tuple[str, str, str]:
    """(leading space, the value, what follows it: a comma, a comment)."""
    lead = rest[:len(rest) - len(rest.lstrip())]
    body = rest.strip()
    tail = ""
    if body[:1] in ("'", '"') and not body.startswith(('"""', "'''")):
        quote = body[0]
        i = 1
        while i < len(body):
            if body[i] == "\\" and quote == '"':
                i += 2
                continue
            if body[i] == quote:
                break
            i += 1
        return lead, body[:i + 1], body[i + 1:]
    if fmt == "json" and body.endswith(","):
        body, tail = body[:-1].rstrip(), ","
    elif fmt in ("yaml", "toml", "env"):
        m = re.search(r"\s#", body)
        if m:
            body, tail = body[:m.start()], body[m.start():]
    return lead, body, tail


def _masked_value(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
        return value[0] + MASK + value[0]
    return MASK


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
        return value[1:-1]
    return value


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def scan_secrets(text: str, fmt: str) -> tuple[str, list[str]]:
    """(the text with secret values masked, the original values masked).

    Format-aware: JSON by its tokens; the others line by line, `key: value`
    (YAML), `key = value` (TOML, INI, .env). A secret-looking key's value is masked, and so is
    everything indented under it (nested maps, block scalars, continuation
    lines); in INI/TOML a secret-looking [section] masks all its values.
    Every other line goes through the console's scrubber, which finds the
    secrets a line holds whatever its key: passwords in URLs, `{password: x}`
    (YAML flow maps), `{ password = "x" }` (TOML inline tables),
    `Password=x;` (connection strings), bearer tokens, webhooks; and the
    body of a PEM private key is masked line by line. Lines keep their
    number, so a masked file's lines match the real one's.
    """
    if fmt == "json":
        return _scan_json(text)
    pattern = _KEY_LINE["colon" if fmt == "yaml" else "equals"]
    out: list[str] = []
    found: list[str] = []
    block_indent: int | None = None     # masking lines indented deeper than this
    secret_section = False
    triple: str | None = None           # inside a TOML multi-line secret string
    pem = False                         # inside a private key's body

    def mask_line(line: str, force: bool) -> str:
        m = pattern.match(line)
        if not m:
            return line
        if not (force or is_secret_key(m.group("key"))):
            return line
        lead, value, tail = _split_value(m.group("rest"), fmt)
        if value in _OPENERS:
            return line
        found.append(_unquote(value))
        return m.group("lead") + m.group("key") + m.group("sep") + lead + \
            _masked_value(value) + tail

    for raw in text.splitlines(keepends=True):
        line = raw.rstrip("\r\n")
        ending = raw[len(line):]
        if triple is not None:
            if triple in line:
                triple = None
                out.append(raw)
            else:
                found.append(line)
                out.append(MASK + ending if line.strip() else raw)
            continue
        stripped = line.strip()
        if pem:
            if _PEM_END.search(line):
                pem = False
                out.append(raw)
            else:
                if stripped:
                    found.append(stripped)
                out.append(line[:_indent(line)] + MASK + ending if stripped else raw)
            continue
        if block_indent is not None:
            if not stripped or _indent(line) > block_indent:
                keyed = pattern.match(line)
                opener = keyed is not None and \
                    _split_value(keyed.group("rest"), fmt)[1] in _OPENERS
                if stripped and not opener and not re.fullmatch(r"[\]\[{},]+", stripped):
                    masked = mask_line(line, True)
                    if masked == line:
                        ind = line[:_indent(line)]
                        dash = "- " if stripped.startswith("- ") else ""
                        found.append(stripped[len(dash):])
                        masked = ind + dash + MASK
                    line = masked
                out.append(line + ending)
                continue
            block_indent = None
        if fmt in ("ini", "toml"):
            section = _SECTION.match(line)
            if section:
                secret_section = is_secret_key(section.group("name").split(".")[-1])
                out.append(raw)
                continue
        m = pattern.match(line)
        if m and (secret_section or is_secret_key(m.group("key"))):
            _lead, value, _tail = _split_value(m.group("rest"), fmt)
            if fmt == "toml" and value.startswith(('"""', "'''")) and \
                    value[3:].find(value[:3]) < 0:
                triple = value[:3]
            line = mask_line(line, True)
            block_indent = _indent(line) + (2 if line.lstrip().startswith("- ") else 0)
            out.append(line + ending)
            continue
        pem = _PEM_BEGIN.search(line) is not None and _PEM_END.search(line) is None
        out.append(scrub.scrub_text(line, MASK, found) + ending)
    return "".join(out), found


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[{}\[\],:]|[^\s{}\[\],:"]+|\s+')


def _scan_json(text: str) -> tuple[str, list[str]]:
    """JSON by its tokens, so any layout (one line or many) is masked: every
    scalar under a secret-looking key (escapes decoded), however deeply
    nested, is masked; other strings go through the console's scrubber."""
    out: list[str] = []
    found: list[str] = []
    stack: list[dict] = []          # {"object": bool, "secret": bool, "key": str|None}
    value_secret = False            # the next value sits under a secret key
    for m in _JSON_TOKEN.finditer(text):
        tok = m.group(0)
        top = stack[-1] if stack else None
        if tok in ("{", "["):
            stack.append({"object": tok == "{", "key": None,
                          "secret": value_secret or bool(top and top["secret"])})
            value_secret = False
        elif tok in ("}", "]"):
            if stack:
                stack.pop()
        elif tok == ":":
            if top is not None and top["object"] and top["key"] is not None:
                value_secret = top["secret"] or is_secret_key(top["key"])
        elif tok == ",":
            if top is not None:
                top["key"] = None
            value_secret = False
        elif not tok.isspace():
            if top is not None and top["object"] and top["key"] is None:
                top["key"] = tok            # quoted: is_secret_key decodes escapes
            elif value_secret or (top is not None and not top["object"] and top["secret"]):
                found.append(_unquote(tok))
                tok = '"' + MASK + '"' if tok.startswith('"') else MASK
                value_secret = False
            elif tok.startswith('"'):
                tok = scrub.scrub_text(tok, MASK, found)
        out.append(tok)
    return "".join(out), found


def mask_secrets(text: str, fmt: str) -> tuple[str, int]:
    """(text with secret values replaced by MASK, how many were masked)."""
    masked, found = scan_secrets(text, fmt)
    return masked, len(found)


def holds_mask(text: str, fmt: str) -> bool:
    """True when a secret's place holds the mask (a masked read written back)."""
    _masked, found = scan_secrets(text, fmt)
    return any(MASK in value for value in found)


# -------------------------------------------------------------- validation

def _error(line: int | None, column: int | None, message: str, source: str = "syntax",
           path: str | None = None) -> dict:
    return {"line": line, "column": column, "message": message, "source": source,
            "path": path}


def _parse(fmt: str, text: str) -> tuple[Any, list[dict]]:
    """(data, errors) for the format's syntax."""
    if fmt == "yaml":
        import yaml
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
            return None, [_error(mark.line + 1 if mark else None,
                                 mark.column + 1 if mark else None, message)]
        except yaml.YAMLError as exc:
            return None, [_error(None, None, str(exc)[:300])]
        return (docs[0] if len(docs) == 1 else docs), []
    if fmt == "json":
        try:
            return json.loads(text), []
        except json.JSONDecodeError as exc:
            return None, [_error(exc.lineno, exc.colno, exc.msg)]
    if fmt == "toml":
        try:
            return tomllib.loads(text), []
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            m = re.search(r"\(at line (\d+), column (\d+)\)", message)
            if m:
                return None, [_error(int(m.group(1)), int(m.group(2)),
                                     message[:m.start()].strip())]
            if "end of document" in message:
                return None, [_error(text.count("\n") + 1, None,
                                     re.sub(r"\s*\(at end of document\)", "", message))]
            return None, [_error(None, None, message)]
    if fmt == "ini":
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        try:
            parser.read_string(text, source="<config>")
        except configparser.MissingSectionHeaderError as exc:
            return None, [_error(exc.lineno, 1, "A [section] header must come before the "
                                                "first key.")]
        except configparser.ParsingError as exc:
            lines = text.splitlines()
            return None, [_error(lineno, 1, "Cannot parse this line: expected key = value, "
                                            "key: value, a [section] or a comment")
                          for lineno, _line in exc.errors if lineno <= len(lines)][:MAX_ERRORS]
        except (configparser.DuplicateSectionError, configparser.DuplicateOptionError) as exc:
            return None, [_error(exc.lineno, 1, exc.message.split(": ", 1)[-1]
                                 if hasattr(exc, "message") else str(exc))]
        except configparser.Error as exc:
            return None, [_error(None, None, str(exc)[:300])]
        return {s: dict(parser.items(s, raw=True)) for s in parser.sections()}, []
    return parse_env(text)


_ENV_KEY = re.compile(r"^(\s*)(export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*")


def parse_env(text: str) -> tuple[dict | None, list[dict]]:
    """A strict .env parser: KEY=value lines, # comments, blank lines, values
    unquoted, 'single' or "double" quoted (double quotes may span lines)."""
    data: dict[str, str] = {}
    errors: list[dict] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        number = i + 1
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _ENV_KEY.match(line)
        if not m:
            column = len(line) - len(line.lstrip()) + 1
            errors.append(_error(number, column, "Expected KEY=value (a letter or _ first, "
                                                 "then letters, digits, _ or .)"))
            continue
        key, start = m.group(3), m.end()
        rest = line[start:]
        if rest[:1] in ("'", '"'):
            quote, value, j, body = rest[0], [], 1, rest
            closed_line = number
            while True:
                end = body.find(quote, j)
                while quote == '"' and end > 0 and body[end - 1] == "\\":
                    end = body.find(quote, end + 1)
                if end >= 0:
                    value.append(body[j:end])
                    after = body[end + 1:]
                    break
                value.append(body[j:] + "\n")
                if quote == "'" or i >= len(lines):
                    errors.append(_error(number, start + 1, "This quoted value is never "
                                                            "closed."))
                    after = None
                    break
                body, j = lines[i], 0
                i += 1
                closed_line = i
            if after is None:
                continue
            if after.strip() and not after.strip().startswith("#"):
                column = (start + 2 + len(value[0]) if closed_line == number
                          else len(body) - len(after) + 1)
                errors.append(_error(closed_line, column, "Only a # comment may follow a "
                                                          "quoted value."))
                continue
            data[key] = "".join(value)
        else:
            data[key] = re.split(r"\s#", rest, maxsplit=1)[0].strip()
    return (None if errors else data), errors[:MAX_ERRORS]


def _locate(fmt: str, text: str, path: list) -> tuple[int | None, int | None]:
    """Where the value at `path` (a JSON Schema error's path) is written."""
    if fmt in ("yaml", "json"):
        import yaml
        try:
            node = yaml.compose(text)
        except yaml.YAMLError:
            node = None
        for part in path:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if str(k.value) == str(part)), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                    and part < len(node.value):
                node = node.value[part]
            else:
                node = None
            if node is None:
                break
        if node is not None:
            return node.start_mark.line + 1, node.start_mark.column + 1
        return None, None
    if not path:
        return None, None
    wanted_section = ".".join(str(p) for p in path[:-1]) if len(path) > 1 else None
    section = None
    key = str(path[-1])
    for number, line in enumerate(text.splitlines(), 1):
        header = _SECTION.match(line)
        if header:
            section = header.group("name")
            if fmt != "env" and len(path) == 1 and section == key:
                return number, 1
            continue
        m = _KEY_LINE["equals"].match(line)
        if m and _unquote(m.group("key").strip()) == key and \
                (wanted_section is None or section == wanted_section):
            return number, len(m.group("lead")) + 1
    return None, None


def validate(folder: Path, name: str, content: str | bytes) -> dict:
    """Check `content` as file `name` would be: its syntax (with line and
    column), then the JSON Schema <stem>.schema.json beside it, if any.
    Returns {valid, format, schema, errors: [{line, column, message,
    source: syntax|schema|encoding, path}]}. The file need not exist yet."""
    try:
        resolve(folder, name)
    except FileMissing:
        pass
    fmt = file_format(name)
    data_bytes = content.encode("utf-8") if isinstance(content, str) else content
    result = {"valid": False, "format": fmt, "schema": None, "errors": []}
    if len(data_bytes) > MAX_BYTES:
        result["errors"] = [_error(None, None, f"Larger than {MAX_BYTES // 1024} KiB.",
                                   "encoding")]
        return result
    try:
        text = data_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = data_bytes[:exc.start]
        line = prefix.count(b"\n") + 1
        column = len(prefix) - (prefix.rfind(b"\n") + 1) + 1
        result["errors"] = [_error(line, column, "Not UTF-8 text.", "encoding")]
        return result
    data, errors = _parse(fmt, text)
    if errors:
        result["errors"] = errors
        return result
    schema_file = _schema_path(folder, name)
    if name.endswith(SCHEMA_SUFFIX):
        result["errors"] = _check_schema_document(data)
    elif schema_file is not None:
        result["schema"] = schema_name(name)
        result["errors"] = _schema_errors(schema_file, data, fmt, text)
    result["valid"] = not result["errors"]
    return result


def _check_schema_document(data: Any) -> list[dict]:
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError
    try:
        validators.validator_for(data).check_schema(data)
    except SchemaError as exc:
        return [_error(None, None, f"Not a valid JSON Schema: {exc.message[:300]}", "schema",
                       "/".join(str(p) for p in exc.path))]
    return []


def _schema_errors(schema_file: Path, data: Any, fmt: str, text: str) -> list[dict]:
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError
    try:
        schema = json.loads(_read_bytes(schema_file).decode("utf-8"))
        cls = validators.validator_for(schema)
        cls.check_schema(schema)
    except (ValueError, SchemaError, ConfigError, OSError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        return [_error(None, None, f"The schema {schema_file.name} cannot be used: "
                                   f"{message[:300]}", "schema")]
    found = sorted(cls(schema).iter_errors(data), key=lambda e: list(map(str, e.path)))
    errors = []
    for err in found[:MAX_ERRORS]:
        path = list(err.path)
        line, column = _locate(fmt, text, path)
        where = "/".join(str(p) for p in path)
        errors.append(_error(line, column, (f"{where}: " if where else "") + err.message[:300],
                             "schema", where or None))
    errors.sort(key=lambda e: (e["line"] is None, e["line"] or 0, e["column"] or 0))
    return errors


# ------------------------------------------------------------------ reading

def read_file(folder: Path, name: str, *, reveal: bool) -> dict:
    """The file's content (secret values masked unless `reveal`), version,
    size, format and schema."""
    path = resolve(folder, name)
    data = _read_bytes(path)
    text = _text(data)
    fmt = file_format(name)
    masked_count = 0
    if not reveal:
        text, masked_count = mask_secrets(text, fmt)
    st = os.stat(path)
    schema = _schema_path(folder, name)
    return {"name": name, "format": fmt, "size": len(data), "version": version_of(data),
            "modified": datetime.fromtimestamp(st.st_mtime, timezone.utc)
            .isoformat(timespec="seconds"),
            "content": text, "masked": masked_count > 0, "masked_values": masked_count,
            "schema": schema_name(name) if schema is not None else None}


# ------------------------------------------------------------------- writing

@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One writer at a time per config folder, across threads and processes
    (flock on the folder itself: its inode never changes, unlike the files
    that os.replace swaps)."""
    fd = os.open(os.path.realpath(folder), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_temp(path: Path, data: bytes, like: os.stat_result) -> Path:
    """A new file beside `path` (O_EXCL, never an existing name) holding
    `data`, fsync'd, with the mode (and, when allowed, owner) of `like`."""
    for _ in range(5):
        tmp = path.with_name(f".{path.name}.{_secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | getattr(os, "O_CLOEXEC", 0), 0o600)
            break
        except FileExistsError:
            continue
    else:
        raise OSError("could not create a temporary file in the config folder")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, stat.S_IMODE(like.st_mode))
        try:
            os.fchown(fd, like.st_uid, like.st_gid)
        except PermissionError:
            pass
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes, expected: str) -> None:
    """Atomically put `data` in place of `path`, if `path` still holds
    version `expected` right before the rename."""
    like = os.lstat(path)
    tmp = _write_temp(path, data, like)
    try:
        current = version_of(_read_bytes(path))
        if current != expected:
            raise VersionConflict(current, "The file changed on disk while it was being "
                                           "saved; nothing was written. Reload it.")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def unified_diff(name: str, before: str, after: str, old: str | None, new: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"{name}@{(old or 'empty')[:12]}", tofile=f"{name}@{new[:12]}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _decoded(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", "replace")


def _newest(sess, name: str) -> ConfigAudit | None:
    return sess.scalars(select(ConfigAudit).where(ConfigAudit.file == name)
                        .order_by(ConfigAudit.id.desc()).limit(1)).first()


def _write(store, folder: Path, name: str, data: bytes, *, actor: str, reason: str,
           kind: str, expected: str | None) -> dict:
    """The one write path (save and rollback): lock, re-check, record, replace."""
    if len(data) > MAX_BYTES:
        raise NotText(f"The content is larger than {MAX_BYTES // 1024} KiB.")
    new_version = version_of(data)
    with _folder_lock(folder):
        path = resolve(folder, name)          # again, under the lock
        before = _read_bytes(path)
        current = version_of(before)
        if expected is not None and expected != current:
            raise VersionConflict(current)
        if new_version == current:
            return {"name": name, "changed": False, "version": current,
                    "version_before": current, "size": len(data), "change_id": None}
        sess = store.Session()
        try:
            last = _newest(sess, name)
            if last is None or last.version_after != current:
                sess.add(ConfigAudit(
                    file=name, actor=SYSTEM_ACTOR, kind="baseline",
                    reason=("The file as found on disk before the console first changed it"
                            if last is None else "Changed outside the console"),
                    version_before=last.version_after if last else None,
                    version_after=current, size=len(before), content=before,
                    diff="" if last is None else unified_diff(
                        name, _decoded(last.content), _decoded(before),
                        last.version_after, current)))
            row = ConfigAudit(file=name, actor=actor[:64], kind=kind, reason=reason,
                              version_before=current, version_after=new_version,
                              size=len(data), content=data,
                              diff=unified_diff(name, _decoded(before), _decoded(data),
                                                current, new_version))
            sess.add(row)
            sess.flush()
            change_id = row.id
            _replace(path, data, current)
            try:
                sess.commit()
            except Exception:
                logger.error("config %s: the history could not be saved; putting the "
                             "previous content back", name)
                _replace(path, before, new_version)
                raise
        except BaseException:
            sess.rollback()
            raise
        finally:
            sess.close()
    logger.info("config %s: %s by %s, %s -> %s", name, kind, actor, current[:12],
                new_version[:12])
    return {"name": name, "changed": True, "version": new_version, "version_before": current,
            "size": len(data), "change_id": change_id}


def _check_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("Say why you are changing the file (reason).")
    if len(reason) > MAX_REASON:
        raise ReasonRequired(f"The reason is longer than {MAX_REASON} characters.")
    return reason


def _audited(store, action: str, name: Any, actor: str, via: str, reason: str | None):
    """Audit trail entry for a write: success with its versions, or failure
    with the error (never the content: it may hold secrets)."""
    from dashapp.security.audit import audited
    target = f"config:{name}"[:255] if isinstance(name, str) else "config:?"
    return audited(store, actor=actor, action=action, target=target,
                   details={"via": via, "reason": (reason or "")[:MAX_REASON]})


def _outcome(info: dict, result: dict) -> dict:
    info.update({k: result.get(k) for k in ("changed", "version_before", "version", "size",
                                            "change_id")})
    return result


def save_file(store, folder: Path, name: str, content: str, *, expected_version: str | None,
              actor: str, reason: str | None, via: str = "api") -> dict:
    """Validate, then write `content` atomically if the file is still at
    `expected_version`; audited (success and failure). Raises
    VersionRequired, VersionConflict, InvalidContent, MaskedSecret,
    ReasonRequired, PathRefused, FileMissing."""
    with _audited(store, "config_save", name, actor, via, reason) as info:
        return _outcome(info, _save(store, folder, name, content,
                                    expected_version=expected_version, actor=actor,
                                    reason=reason))


def _save(store, folder: Path, name: str, content: str, *, expected_version: str | None,
          actor: str, reason: str | None) -> dict:
    if not expected_version:
        raise VersionRequired("Send the version you edited (If-Match header or 'version').")
    reason = _check_reason(reason)
    check_name(name)
    if holds_mask(content, file_format(name)):
        raise MaskedSecret("The content still holds the mask ******** where a secret was; "
                           "load the file as an admin to edit its real values.")
    result = validate(folder, name, content)
    if not result["valid"]:
        raise InvalidContent(result["errors"])
    return _write(store, folder, name, content.encode("utf-8"), actor=actor, reason=reason,
                  kind="edit", expected=expected_version)


def rollback(store, folder: Path, name: str, version: str, *, actor: str,
             reason: str | None = None, expected_version: str | None = None,
             via: str = "api") -> dict:
    """Write back exactly the bytes of an earlier version (recorded as a
    change of kind "rollback"); audited (success and failure)."""
    with _audited(store, "config_rollback", name, actor, via, reason) as info:
        info["target_version"] = version
        return _outcome(info, _rollback(store, folder, name, version, actor=actor,
                                        reason=reason, expected_version=expected_version))


def _rollback(store, folder: Path, name: str, version: str, *, actor: str,
              reason: str | None, expected_version: str | None) -> dict:
    resolve(folder, name)
    with store.session() as sess:
        row = sess.scalars(select(ConfigAudit)
                           .where(ConfigAudit.file == name,
                                  ConfigAudit.version_after == version)
                           .order_by(ConfigAudit.id.desc()).limit(1)).first()
        data = bytes(row.content) if row is not None else None
        source_id = row.id if row is not None else None
    if data is None:
        raise VersionNotFound(f"The history of {name!r} holds no version {version[:12]!r}.")
    reason = (reason or "").strip() or f"Roll back to version {version[:12]} (change #{source_id})"
    reason = _check_reason(reason)
    result = _write(store, folder, name, data, actor=actor, reason=reason, kind="rollback",
                    expected=expected_version)
    return {**result, "restored_from": source_id}


# ------------------------------------------------------------------ history

def history(store, folder: Path, name: str, *, reveal: bool, limit: int = 50) -> dict:
    """The recorded versions of `name`, newest first: who, when, why, kind
    and the diff from the version before (secret values masked in the diff
    unless `reveal`). `current` marks the version on disk now."""
    try:
        on_disk = version_of(_read_bytes(resolve(folder, name)))
    except FileMissing:
        on_disk = None            # a deleted file keeps its history
    fmt = file_format(name)
    with store.session() as sess:
        rows = list(sess.scalars(select(ConfigAudit).where(ConfigAudit.file == name)
                                 .order_by(ConfigAudit.id.desc()).limit(limit + 1)))
        total = sess.scalar(select(func.count()).select_from(ConfigAudit)
                            .where(ConfigAudit.file == name))
    changes = []
    marked = False
    for i, row in enumerate(rows[:limit]):
        previous = rows[i + 1] if i + 1 < len(rows) else None
        if reveal:
            diff = row.diff
        elif row.kind == "baseline" and previous is None:
            diff = ""
        else:
            before = mask_secrets(_decoded(previous.content), fmt)[0] if previous else ""
            after = mask_secrets(_decoded(row.content), fmt)[0]
            diff = unified_diff(name, before, after, row.version_before, row.version_after)
        current = not marked and row.version_after == on_disk
        marked = marked or current
        changes.append({"id": row.id, "time": as_utc(row.time).isoformat(timespec="seconds"),
                        "actor": row.actor, "kind": row.kind, "reason": row.reason,
                        "version_before": row.version_before,
                        "version_after": row.version_after, "size": row.size,
                        "diff": diff, "current": current})
    return {"name": name, "version": on_disk, "total": total, "changes": changes}
