"""Search patterns typed by users, compiled for a linear-time engine.

Python's `re` backtracks: a pattern such as `(.+)+QQQ` over a long line
takes exponential time while holding the GIL, so one search could freeze
every thread of the console (health checks, other users, even SIGTERM).
Every pattern that comes from a user (a log filter, the Logs page, a stream,
an export) is compiled here instead, with RE2 (`google-re2`): its matching
time is linear in the text, its memory is bounded (`MAX_MEM`), and it
releases the GIL while it matches, so a slow scan costs one request thread,
never the process.

RE2 takes Python's syntax with a few differences. Python's `\\Z` (end of
text) is RE2's `\\z` and `{,n}` means `{0,n}`: both are rewritten. What RE2
cannot do in linear time (look-ahead/look-behind, backreferences, atomic
groups, possessive quantifiers) is refused with `PatternError`, whose
message says why, for a 400.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterator

import re2

logger = logging.getLogger(__name__)

MAX_PATTERN = 1000            # characters of a user's pattern
MAX_MEM = 8 << 20             # bytes RE2 may use for one compiled pattern (its default)

_LINEAR = "(patterns run in linear time)"


class PatternError(ValueError):
    """A user's pattern cannot be used; the message says why (for a 400)."""


def _translate(pattern: str) -> tuple[str, bool]:
    """(the pattern in RE2's syntax, whether it uses a text anchor).

    An anchor is `^`, `$`, `\\A`, `\\Z` or `\\z` outside a character class;
    callers that match the pattern against something larger than the text
    it is meant for (a whole raw log line instead of its message) need to
    know."""
    out: list[str] = []
    anchored = False
    in_class = False
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if not in_class and nxt in "AZz":
                anchored = True
                nxt = "z" if nxt == "Z" else nxt
            out.append("\\" + nxt)
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            # `[]...]` and `[^]...]`: a `]` first in the class is a literal
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if ch in "^$":
            anchored = True
        elif ch == "{" and pattern.startswith("{,", i):
            close = pattern.find("}", i)
            if close > i + 2 and pattern[i + 2:close].isdigit():
                out.append("{0," + pattern[i + 2:close] + "}")
                i = close + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out), anchored


def _reason(message: str) -> str:
    """RE2's parse error as a sentence a user can act on."""
    if any(op in message for op in ("(?=", "(?!", "(?<=", "(?<!", "(?P=")) or \
            (message.startswith("invalid perl operator: (?P") and "<" not in message):
        return f"lookahead/lookbehind and backreferences are not supported {_LINEAR}"
    if message.startswith("invalid escape sequence: \\") and message[-1:].isdigit():
        return f"lookahead/lookbehind and backreferences are not supported {_LINEAR}"
    if "(?>" in message or message.startswith("bad repetition operator"):
        return ("atomic groups and possessive quantifiers (`(?>...)`, `a++`) are "
                f"not supported {_LINEAR}")
    if message.startswith("invalid repetition size"):
        return f"a repetition count is at most 1000 ({message.split(': ', 1)[-1]})"
    if "too large" in message or "too big" in message:
        return "the pattern is too large; make it shorter or simpler"
    return f"not a valid regular expression: {message}"


def _compile(source: str, *, literal: bool, case_sensitive: bool,
             never_nl: bool = False) -> Any:
    options = re2.Options()
    options.max_mem = MAX_MEM
    options.log_errors = False
    options.literal = literal
    options.case_sensitive = case_sensitive
    options.never_nl = never_nl
    options.never_capture = True   # only where a match is, never its groups: faster
    try:
        # Not re2.compile(): its cache would keep up to 128 users' patterns
        # (each up to MAX_MEM) alive for the life of the process.
        return re2._Regexp(source, options)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise PatternError(_reason(message)) from None


@dataclass
class UserPattern:
    """A compiled user pattern: `search`/`finditer` on str or bytes (RE2
    matches positions in bytes, reported in characters for str)."""
    text: str
    regex: bool
    case_sensitive: bool
    anchored: bool
    source: str = field(repr=False)
    _re: Any = field(repr=False)
    _lines: Any = field(default=None, repr=False)

    def search(self, text: str | bytes, pos: int = 0):
        return self._re.search(text, pos)

    def finditer(self, text: str | bytes, pos: int = 0, endpos: int | None = None
                 ) -> Iterator[Any]:
        return self._re.finditer(text, pos, endpos)

    def line_scanner(self) -> Any:
        """The same pattern, never matching a newline: for scanning a block
        of many lines, so that a match cannot run from one line into the next
        (and hide a match that starts in the next one)."""
        if self._lines is None:
            self._lines = _compile(self.source, literal=not self.regex,
                                   case_sensitive=self.case_sensitive, never_nl=True)
        return self._lines


def compile_user_pattern(text: str, *, regex: bool, case_sensitive: bool) -> UserPattern:
    """`text` as a pattern: a regular expression (Python syntax, without
    look-around and backreferences) or, with `regex=False`, literal text.
    Raises PatternError saying why it cannot be used."""
    if len(text) > MAX_PATTERN:
        raise PatternError(f"a pattern is at most {MAX_PATTERN} characters")
    if "\x00" in text:
        raise PatternError("a pattern cannot contain a NUL character")
    source, anchored = _translate(text) if regex else (text, False)
    compiled = _compile(source, literal=not regex, case_sensitive=case_sensitive)
    return UserPattern(text=text, regex=regex, case_sensitive=case_sensitive,
                       anchored=anchored, source=source, _re=compiled)


def literal_alternatives(words: list[str], *, case_sensitive: bool = True) -> UserPattern:
    """A pattern matching any of `words` literally (e.g. level names)."""
    return compile_user_pattern("|".join(re2.escape(w) for w in words), regex=True,
                                case_sensitive=case_sensitive)
