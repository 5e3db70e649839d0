"""The console's one secret scrubber: its deny-list and the value shapes it masks.

Everything that shows or stores text someone else wrote goes through here:
the log viewer (every line of a tail, a filter or a stream, and each
record's extras), captured log records, the config editor's masked view,
job arguments, error messages and tracebacks, exception messages that
`monitor()` captures on a 5xx, audit details and exports. One list means a
name masked in one place is masked in all of them.

Three kinds of rule, in the manner of an error tracker's event scrubber:

1. Names (`is_secret_name`). A name is split into words (`DB_PASSWORD`,
   `clientSecret`, `x-api-key`) and is secret when it *ends* with a
   deny-listed word: `DB_PASSWORD`, `client_secret`, `GITHUB_TOKEN`,
   `AWS_SECRET_ACCESS_KEY`, `MYSQL_PWD`, `access_token`, `sessionid`,
   `SENTRY_DSN`. Trailing qualifiers do not hide it (`password_hash`,
   `password2`, `token_value`), but other trailing words do: `token_count`,
   `password_min_length` and `secret_name` are settings, not secrets. `key`
   alone is not secret (`cache_key`, `primary_key`, `keyboard`, `monkey`);
   `api_key`, `secret_key`, `private_key`, `access_key` ... are.
2. Values that look like secrets whatever their name: PEM private keys
   (across lines), `Bearer <token>`, passwords in URLs
   (`scheme://user:***@host`), Slack and Discord webhooks, and well-known
   token shapes (GitHub, Slack, Stripe, GitLab, OpenAI: `ghp_***`, the
   prefix kept so a masked token is still recognised as one).
3. `name=value` / `name: value` pairs inside text whose name is secret by
   rule 1, in the forms logs and configs write them: `password=x`,
   `"token": "x"`, `\\"password\\": \\"x\\"` (JSON inside a string),
   `{password: x}` (YAML flow maps), `{ password = "x" }` (TOML inline
   tables), `Server=db;Password=x;` (connection strings),
   `Authorization: Basic x` (the scheme word is kept).

And SQL values never leave the host: a database error's
`[parameters: ...]` becomes `[parameters: ***]`, string literals in its
`[SQL: ...]` become `'***'`, and the values PostgreSQL and MySQL echo
(`Key (email)=(a@b.c) already exists`, `Failing row contains (...)`,
`Duplicate entry '...'`) are masked; the statement and the constraint stay.

Cost: the log viewer runs `scrub_text` on every line, so a line that holds
none of the hint words (one regex search over the lowercased line) is
returned untouched; each rule then has its own substring check before its
regex. A pass is linear in the text however it is crafted (possessive
quantifiers, a pair's value read only when its name is secret): the text
comes from outside.

The masked value is `***` by default; the config editor passes its own mask
and collects the values it replaced (`found`), so a save that still holds
the mask where a secret was can be refused.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable, Mapping

# One copy, the agent's: hosts strip SQL values before they send a message.
from ops_agent.scrub import strip_sql_values

MASK = "***"
MAX_DEPTH = 6                      # nesting scrub_value walks into

# ------------------------------------------------------------------- names

# A name is secret when its words, joined, end with one of these...
DENY_SUFFIXES = (
    "password", "passwords", "passwd", "passphrase", "pwd", "secret", "secrets", "token",
    "apikey", "apikeys", "privatekey", "secretkey", "accesskey", "signingkey",
    "encryptionkey", "masterkey", "sessionkey", "authkey", "clientkey", "appkey",
    "accountkey", "storagekey", "licensekey", "hmackey", "fernetkey", "dsn",
    "credential", "credentials", "creds", "authorization", "cookie", "cookies",
    "sessionid", "sessid", "csrf", "xsrf", "jwt",
)
# ...or its last word is one of these (whole words: `bypass`, `oauth` are not)...
DENY_LAST_WORDS = frozenset({"pass", "pw", "auth"})
# ...or it is one of these (session cookies by their usual names).
DENY_NAMES = frozenset({"session", "usersession", "aiohttpsession", "connectsid",
                        "phpsessid"})
# Trailing words that still name the secret itself (`password_hash`).
QUALIFIERS = frozenset({
    "hash", "hashed", "digest", "value", "val", "raw", "plain", "plaintext", "enc",
    "encrypted", "b64", "base64", "hex", "pem", "der", "bytes", "str", "string", "text",
    "data", "confirm", "confirmation", "again", "repeat", "old", "new", "current",
    "previous", "override", "base",
})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORDS = re.compile(r"[a-z]+|[0-9]+")


@lru_cache(maxsize=8192)
def is_secret_name(name: str) -> bool:
    """True when a field, variable, header or parameter called `name` holds a
    secret (see the module's rule 1). Cached: the same few names recur."""
    if not name:
        return False
    words = _WORDS.findall(_CAMEL.sub("_", str(name)[:200]).lower())
    while len(words) > 1 and (words[-1] in QUALIFIERS or words[-1].isdigit()):
        words.pop()
    if not words:
        return False
    joined = "".join(words)
    return joined.endswith(DENY_SUFFIXES) or words[-1] in DENY_LAST_WORDS \
        or joined in DENY_NAMES


# ------------------------------------------------------------------- text

# A line none of whose lowercased text matches this holds nothing to mask.
_HINTS = re.compile(  # grouped by first letter: measured fastest with `re`
    r"p(?:ass|w)|s(?:ecret|ess|id|k-)|t(?:oken)|k(?:ey)|a(?:uth)|c(?:ookie|red)"
    r"|d(?:sn|uplicate entry)|jwt|srf|bearer|://|hooks|gh[pousr]_|github_pat|xox|_live_"
    r"|glpat|\[(?:sql|parameters): |\)=\(|failing row")

_PEM = re.compile(
    r"(?P<begin>-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)(?P<body>.*?)"
    r"(?P<end>-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)", re.S)
_PEM_LINE = re.compile(r"[^\s\\]+(?:(?:[ \t]|\\[nr])+[^\s\\]+)*|\\[nr]")
_URL_PASSWORD = re.compile(
    r"(?<![\w+.\-])(?P<head>[A-Za-z][\w+.\-]*+://[^:/@\s]*+:)(?P<pw>[^\s/?#]+)@")
_WEBHOOK = re.compile(
    r"(?P<head>hooks\.slack\.com/(?:services|workflows|triggers)/"
    r"|discord(?:app)?\.com/api/webhooks/\d+/)(?P<secret>[\w\-/*]+)", re.I)
_TOKEN_SHAPES = re.compile(  # the prefix stays, so a masked token is still recognised
    r"(?<![\w\-])(?P<prefix>gh[pousr]_|github_pat_|xox[abposr]-|[sr]k_live_|glpat-"
    r"|sk-(?:proj-)?)(?P<secret>\*{3,}|[A-Za-z0-9_\-]{16,})")
_BEARER = re.compile(r"(?i)(?<![\w\-])(?P<scheme>bearer[ \t]++)(?P<token>[\w\-.~+/*]++=*+)")
# A name followed by = or :. Its value is read (with _VALUE, from where the
# name ends) only when the name is secret: a pass over the text stays linear
# however many names it holds, and a value that is not masked is searched
# for names too (`url: password=x`).
_KEY = re.compile(r"""(?<![\w.\-@$])(?P<key>-{0,2}[A-Za-z_@$][\w.\-]*+)
                      \\?["']?[ \t]*[=:][ \t]*""", re.X)
_VALUE = re.compile(r"""
    (?:(?:bearer|basic|token|digest|negotiate)[ \t]++)?   # a scheme word stays
    (?: "(?P<dq>(?:[^"\\\n]|\\.)*+)                    # "value"
      | \\"(?P<eq>(?:[^\\\n]|\\(?!"))*+)               # \"value\" (JSON inside a string)
      | '(?P<sq>[^'\n]*+)                               # 'value'
      | (?P<bare>[^\s"'`,;&|<>(){}\[\]\\][^\s"'`,;&|<>)}\]\\]*+)
    )""", re.X | re.I)
_VALUE_GROUPS = ("dq", "eq", "sq", "bare")
# Values that stand for no value (`WHERE password = ?` in a statement).
_PLACEHOLDERS = frozenset({"?", "%s", "None", "null", "NULL"})

Sink = Callable[[str], Any]


def _masker(group: str, mask: str, sink: Sink | None) -> Callable[[re.Match[str]], str]:
    """A re.sub callback replacing `group` with the mask (noting the value)."""
    def replace(m: re.Match[str]) -> str:
        value = m.group(group)
        if not value:
            return m.group(0)
        if sink is not None:
            sink(value)
        start, end = m.start(group) - m.start(), m.end(group) - m.start()
        whole = m.group(0)
        return whole[:start] + mask + whole[end:]
    return replace


def mask_private_keys(text: str, mask: str = MASK, sink: Sink | None = None) -> str:
    """PEM private keys keep their BEGIN/END lines; each line of the body
    (or the whole body, written on one line with `\\n` escapes) becomes the
    mask, so a masked file keeps its line numbers. A key cut short (no END)
    is masked to the end of the text."""
    if "PRIVATE KEY" not in text:
        return text

    def body(m: re.Match[str]) -> str:
        def line(part: re.Match[str]) -> str:
            if part.group(0) in ("\\n", "\\r"):
                return part.group(0)
            if sink is not None:
                sink(part.group(0))
            return mask
        return m.group("begin") + _PEM_LINE.sub(line, m.group("body")) + m.group("end")
    return _PEM.sub(body, text)


def _mask_pairs(text: str, mask: str, sink: Sink | None) -> str:
    """`name=value` pairs whose name is secret, value masked."""
    out: list[str] = []
    pos = 0                     # text before this is in `out` already
    found = _KEY.search(text)
    while found is not None:
        after = found.end()
        m = _VALUE.match(text, after) if is_secret_name(found.group("key")) else None
        group = next((g for g in _VALUE_GROUPS if m.group(g)), None) if m else None
        if m is not None and group is not None and m.group(group) not in _PLACEHOLDERS:
            if sink is not None:
                sink(m.group(group))
            out += (text[pos:m.start(group)], mask)
            pos = after = m.end(group)
        found = _KEY.search(text, after)
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _bearer_masker(mask: str, sink: Sink | None) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        token = m.group("token")
        # "Bearer tokens expire": a word is not a credential.
        if len(token) < 6 or token.isalpha() and token.islower():
            return m.group(0)
        if sink is not None:
            sink(token)
        return m.group("scheme") + mask
    return replace


def scrub_text(text: str, mask: str = MASK, found: list[str] | None = None) -> str:
    """`text` with every secret the rules find replaced by `mask`; the
    values replaced are appended to `found` when given (the config editor
    uses them to refuse a save that still holds the mask)."""
    if not text or not isinstance(text, str):
        return text
    low = text.lower()
    if _HINTS.search(low) is None:
        return text
    sink = found.append if found is not None else None
    if "private key" in low:
        text = mask_private_keys(text, mask, sink)
    if "[SQL: " in text or "[parameters: " in text or ")=(" in text \
            or "Failing row contains (" in text or "Duplicate entry '" in text:
        text = strip_sql_values(text, mask)
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(_masker("pw", mask, sink), text)
    if "hooks.slack.com/" in low or "/webhooks/" in low:
        text = _WEBHOOK.sub(_masker("secret", mask, sink), text)
    if "=" in text or ":" in text:
        text = _mask_pairs(text, mask, sink)
    if "bearer" in low:
        text = _BEARER.sub(_bearer_masker(mask, sink), text)
    if "_" in text or "-" in text:
        text = _TOKEN_SHAPES.sub(_masker("secret", mask, sink), text)
    return text


def scrub_value(value: Any, mask: str = MASK, depth: int = 0) -> Any:
    """A JSON-like value with secrets masked: strings scrubbed, mappings by
    name and value, lists item by item (`MAX_DEPTH` levels deep)."""
    if isinstance(value, str):
        return scrub_text(value, mask)
    if isinstance(value, (Mapping, list, tuple)) and depth >= MAX_DEPTH:
        return scrub_text(str(value), mask)      # too deep to walk: its text, scrubbed
    if isinstance(value, Mapping):
        return scrub_mapping(value, mask, depth)
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, mask, depth + 1) for v in value]
    return value


def scrub_mapping(data: Mapping[Any, Any], mask: str = MASK,
                  depth: int = 0) -> dict[Any, Any]:
    """A mapping with the value of every secret name replaced by `mask`
    (whatever it was) and the other values scrubbed."""
    return {k: (mask if is_secret_name(str(k)) else scrub_value(v, mask, depth + 1))
            for k, v in data.items()}
