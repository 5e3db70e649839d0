"""EXPLAIN, safely: one read-only statement, on the monitored database only.

Why a hand-written check: EXPLAIN ANALYZE *executes* the statement, and even a
plain EXPLAIN plans it (PostgreSQL folds immutable functions while planning),
so what may be explained is a security decision. `sqlparse` is not a
dependency; the check below works on tokens, which is all it needs.

The rules (`check_sql`), applied after comments are removed and string
literals / quoted identifiers are read as single tokens:

* exactly one statement: a `;` may only be followed by more `;` or nothing;
* it starts with SELECT, or WITH (a CTE) ... SELECT (leading parentheses
  are allowed);
* no keyword that writes or changes the session anywhere in it (INSERT,
  UPDATE, DELETE, MERGE, CREATE, DROP, ALTER, TRUNCATE, PRAGMA, ATTACH, COPY,
  SET, CALL, DO, VACUUM, LOCK, GRANT, ... see `FORBIDDEN_WORDS`), which also
  refuses `WITH x AS (DELETE ...) SELECT ...`;
* no `SELECT ... INTO` (creates a table on PostgreSQL), no `FOR UPDATE` /
  `FOR SHARE` / `FOR NO KEY UPDATE` / `FOR KEY SHARE` (takes row locks);
* no function known to have side effects or to reach outside the database
  (pg_sleep, pg_terminate_backend, lo_import, pg_read_file, dblink,
  set_config, nextval, query_to_xml, load_extension, ...; see
  `FORBIDDEN_FUNCTIONS` / `FORBIDDEN_PREFIXES`), also when quoted
  (`"pg_sleep"(1)`) or schema-qualified (`pg_catalog.pg_sleep`);
* anything the tokenizer cannot read with certainty is refused: an
  unterminated string or comment, nested block comments (PostgreSQL nests
  them, SQLite does not, so the two would read different statements),
  dollar-quoted strings and `U&"..."` identifiers on PostgreSQL.

Because PostgreSQL reads backslashes in strings differently depending on
`standard_conforming_strings` (and in E'' strings), its SQL is checked under
both readings and must pass both. With no dialect given, every reading
(SQLite's and PostgreSQL's) must pass.

Comments are replaced by a space, so `SEL/**/ECT` is two words and refused.

Then, as defence in depth, the statement runs in a transaction that is always
rolled back: on PostgreSQL `SET TRANSACTION READ ONLY` + `SET LOCAL
statement_timeout`, sent with the extended protocol (which refuses several
statements by itself); on SQLite with `PRAGMA query_only=ON` and a progress
handler that interrupts it after the timeout.

Stored queries (ops_query.sql) have their values replaced by `?`. To explain
one, `explain_stored` substitutes the placeholders: on SQLite with NULL (the
plan does not depend on the value); on PostgreSQL, where `col = NULL` is
folded away by the planner, the statement is PREPAREd with `$n` parameters and
explained as a generic plan (`plan_cache_mode = force_generic_plan`) executed
with NULLs, so the plan is the one the application's statement gets.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

logger = logging.getLogger(__name__)

MAX_SQL_LENGTH = 20_000
TIMEOUT_S = 5.0
SQLITE_ANALYZE_MAX_ROWS = 100_000

FORBIDDEN_WORDS = frozenset("""
insert update delete merge upsert create drop alter truncate grant revoke
pragma attach detach copy vacuum analyze analyse reindex cluster lock call do
set reset listen notify unlisten execute prepare deallocate declare checkpoint
discard begin commit rollback savepoint explain into
""".split())
# `end`, `replace`, `fetch`, `start` are legitimate in a SELECT (CASE ... END,
# replace(), FETCH FIRST n ROWS) and cannot start a statement here anyway.

FORBIDDEN_FUNCTIONS = frozenset("""
pg_sleep pg_sleep_for pg_sleep_until pg_terminate_backend pg_cancel_backend
pg_reload_conf pg_rotate_logfile pg_promote pg_read_file pg_read_binary_file
pg_stat_file pg_notify pg_switch_wal pg_switch_xlog pg_current_xact_id
txid_current set_config nextval setval currval lastval query_to_xml
query_to_xml_and_xmlschema query_to_xmlschema cursor_to_xml cursor_to_xmlschema
database_to_xml database_to_xml_and_xmlschema schema_to_xml
schema_to_xml_and_xmlschema table_to_xml table_to_xml_and_xmlschema ts_stat
lowrite loread load_extension writefile readfile edit fts3_tokenizer
sqlite_offset zeroblob randomblob
""".split())
FORBIDDEN_PREFIXES = ("pg_advisory", "pg_try_advisory", "dblink", "lo_", "pg_ls_",
                      "pg_read_", "pg_file_", "pg_stat_reset", "pg_create_", "pg_drop_",
                      "pg_replication_", "pg_logical_", "pg_wal_", "pg_xlog_",
                      "pg_start_", "pg_stop_", "pg_backup_", "pg_import_",
                      "pg_export_", "pg_log_", "pg_sleep", "pg_terminate", "pg_cancel")
LOCK_AFTER_FOR = frozenset({"update", "share", "no", "key"})


class UnsafeSQL(ValueError):
    """The statement is not a single read-only SELECT; the message says why."""


class ExplainError(RuntimeError):
    """The database could not explain the statement (syntax, unknown table...)."""


class DatabaseUnavailable(RuntimeError):
    """The monitored database cannot be reached."""


@dataclass(frozen=True)
class Token:
    kind: str    # word | quoted | string | number | param | punct
    value: str   # words lower-cased; quoted identifiers unquoted


@dataclass(frozen=True)
class _Lexer:
    backslash_escapes: bool = False
    brackets: bool = False      # SQLite [identifier]
    backticks: bool = False     # SQLite `identifier`
    dollar_quotes: bool = False  # PostgreSQL $tag$...$tag$: refused when seen


_READINGS = {
    "sqlite": (_Lexer(brackets=True, backticks=True),),
    "postgresql": (_Lexer(dollar_quotes=True),
                   _Lexer(dollar_quotes=True, backslash_escapes=True)),
}
_READINGS[None] = _READINGS["sqlite"] + _READINGS["postgresql"]  # type: ignore[index]

_WORD = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_PARAM = re.compile(r"\?\d*|[:@][A-Za-z_]\w*|\$\d+|%\(\w+\)s|%s")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def tokenize(sql: str, lexer: _Lexer = _Lexer()) -> list[Token]:
    """Tokens of `sql`, comments dropped. Raises UnsafeSQL when unreadable."""
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise UnsafeSQL("unterminated /* comment")
            if "/*" in sql[i + 2:end]:
                raise UnsafeSQL("nested /* comments are refused (databases read them "
                                "differently)")
            i = end + 2
        elif c == "'" or (c in "eE" and sql.startswith("'", i + 1) and lexer.backslash_escapes):
            start = i + 1 if c == "'" else i + 2
            i, value = _read_quoted(sql, start, "'", lexer.backslash_escapes)
            tokens.append(Token("string", value))
        elif c == '"':
            i, value = _read_quoted(sql, i + 1, '"', False)
            tokens.append(Token("quoted", value.lower()))
        elif c == "`" and lexer.backticks:
            i, value = _read_quoted(sql, i + 1, "`", False)
            tokens.append(Token("quoted", value.lower()))
        elif c == "[" and lexer.brackets:
            end = sql.find("]", i + 1)
            if end < 0:
                raise UnsafeSQL("unterminated [identifier]")
            tokens.append(Token("quoted", sql[i + 1:end].lower()))
            i = end + 1
        elif c in "uU" and sql.startswith("&", i + 1) and lexer.dollar_quotes:
            raise UnsafeSQL("U& escaped identifiers or strings are refused")
        elif c == "$" and lexer.dollar_quotes and _DOLLAR_TAG.match(sql, i):
            raise UnsafeSQL("dollar-quoted strings ($$...$$) are refused; use '...'")
        elif (m := _WORD.match(sql, i)):
            tokens.append(Token("word", m.group().lower()))
            i = m.end()
        elif (m := _NUMBER.match(sql, i)):
            tokens.append(Token("number", m.group()))
            i = m.end()
        elif (m := _PARAM.match(sql, i)):
            tokens.append(Token("param", m.group()))
            i = m.end()
        elif c == "$":
            raise UnsafeSQL("a '$' outside a string or parameter is refused")
        elif c == "\\":
            raise UnsafeSQL("a backslash outside a string is refused")
        else:
            tokens.append(Token("punct", c))
            i += 1
    return tokens


def _read_quoted(sql: str, i: int, quote: str, backslash: bool) -> tuple[int, str]:
    """Read up to the closing quote (doubled quotes escape it); -> (next, text)."""
    out = []
    n = len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            out.append(sql[i:i + 2])
            i += 2
            continue
        if c == quote:
            if sql.startswith(quote, i + 1):
                out.append(quote)
                i += 2
                continue
            return i + 1, "".join(out)
        out.append(c)
        i += 1
    raise UnsafeSQL(f"unterminated {quote}quoted{quote} text")


def _check_tokens(tokens: list[Token]) -> None:
    if not tokens:
        raise UnsafeSQL("the statement is empty")
    # Several statements: a ';' followed by anything but more ';'.
    for idx, tok in enumerate(tokens):
        if tok.kind == "punct" and tok.value == ";":
            rest = tokens[idx + 1:]
            if any(not (t.kind == "punct" and t.value == ";") for t in rest):
                raise UnsafeSQL("several statements are refused: only one SELECT "
                                "may be explained")
            tokens = tokens[:idx]
            break
    if not tokens:
        raise UnsafeSQL("the statement is empty")
    first = next((t for t in tokens if not (t.kind == "punct" and t.value == "(")), None)
    if first is None or first.kind != "word" or first.value not in ("select", "with"):
        shown = first.value.upper() if first is not None else "nothing"
        raise UnsafeSQL(f"only SELECT (or WITH ... SELECT) can be explained, not {shown}")
    words = [t for t in tokens if t.kind in ("word", "quoted")]
    if first.value == "with" and not any(t.kind == "word" and t.value == "select"
                                         for t in words):
        raise UnsafeSQL("a WITH statement must end in a SELECT")
    for idx, tok in enumerate(tokens):
        if tok.kind == "param":
            # `:name`, `@name`: parameters on SQLite, but `[1:pg_sleep(1)]` is an
            # array slice and `@` an operator on PostgreSQL: check the names too.
            for name in re.findall(r"[A-Za-z_]\w*", tok.value):
                name = name.lower()
                if name in FORBIDDEN_WORDS or name in FORBIDDEN_FUNCTIONS \
                        or name.startswith(FORBIDDEN_PREFIXES):
                    raise UnsafeSQL(f"{name} is refused: only a read-only SELECT "
                                    "can be explained")
            continue
        if tok.kind not in ("word", "quoted"):
            continue
        name = tok.value.rsplit(".", 1)[-1]
        if tok.kind == "word" and name in FORBIDDEN_WORDS:
            if name == "into":
                raise UnsafeSQL("SELECT ... INTO is refused (it writes a table)")
            raise UnsafeSQL(f"{name.upper()} is refused: only a read-only SELECT can be "
                            "explained")
        if tok.kind == "word" and name == "for":
            nxt = tokens[idx + 1] if idx + 1 < len(tokens) else None
            if nxt is not None and nxt.kind == "word" and nxt.value in LOCK_AFTER_FOR:
                raise UnsafeSQL("FOR UPDATE / FOR SHARE is refused (it locks rows)")
        if name in FORBIDDEN_FUNCTIONS or name.startswith(FORBIDDEN_PREFIXES):
            raise UnsafeSQL(f"the function {name}() is refused: it has side effects or "
                            "reaches outside the database")


def check_sql(sql: str, dialect: str | None = None) -> str:
    """Return `sql` without trailing semicolons when it is one read-only
    SELECT under every reading of `dialect`; else raise UnsafeSQL (why)."""
    if not isinstance(sql, str) or not sql.strip():
        raise UnsafeSQL("the statement is empty")
    if len(sql) > MAX_SQL_LENGTH:
        raise UnsafeSQL(f"the statement is longer than {MAX_SQL_LENGTH} characters")
    if "\x00" in sql:
        raise UnsafeSQL("the statement contains a NUL character")
    readings = _READINGS.get(dialect, _READINGS[None])  # type: ignore[index]
    for lexer in readings:
        _check_tokens(tokenize(sql, lexer))
    return sql.strip().rstrip(";").rstrip()


# ------------------------------------------------------------ placeholders

_STORED_PLACEHOLDER = re.compile(r"\(\?\+\)|\?")


def placeholders(sql: str) -> int:
    """How many `?` / `(?+)` placeholders a stored (normalised) statement has,
    counting only those outside strings (the normaliser leaves none inside)."""
    return len(_STORED_PLACEHOLDER.findall(sql))


def substitute_nulls(sql: str) -> str:
    """Stored SQL with every placeholder (and folded list) replaced by NULL."""
    return _STORED_PLACEHOLDER.sub(lambda m: "(NULL)" if m.group() != "?" else "NULL", sql)


def substitute_params(sql: str) -> tuple[str, int]:
    """Stored SQL with placeholders as $1, $2 ... (PostgreSQL PREPARE)."""
    counter = iter(range(1, 10_000))

    def repl(m: re.Match) -> str:
        k = next(counter)
        return f"(${k})" if m.group() != "?" else f"${k}"
    out = _STORED_PLACEHOLDER.sub(repl, sql)
    return out, next(counter) - 1


# ----------------------------------------------------------------- engines

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def monitored_engine(url: str) -> Engine:
    """One engine per monitored-database URL, made read-only at connect time
    (SQLite `PRAGMA query_only`, PostgreSQL `default_transaction_read_only`)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                engine = create_engine(url, connect_args={"timeout": 5,
                                                          "check_same_thread": False})

                @event.listens_for(engine, "connect")
                def _read_only(dbapi_conn, _record):
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA query_only=ON")
                    cur.close()
            elif parsed.get_backend_name() == "postgresql":
                engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2,
                                       connect_args={
                                           "connect_timeout": 5,
                                           "options": "-c default_transaction_read_only=on "
                                                      "-c statement_timeout=5000"})
            else:
                engine = create_engine(url, pool_pre_ping=True)
            _ENGINES[url] = engine
        return engine


def dispose_engines() -> None:
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


# ----------------------------------------------------------------- explain

def explain(engine: Engine, sql: str, analyze: bool = False) -> dict[str, Any]:
    """Explain one user-typed read-only SELECT as typed. See the module doc.

    -> {"dialect", "sql", "analyze", "plan": [node...], "total_cost",
        "execution_ms", "rows", "expensive": [labels], "raw": ...}
    """
    dialect = engine.dialect.name
    clean = check_sql(sql, dialect)
    if dialect == "postgresql":
        return _explain_pg(engine, clean, analyze)
    if dialect == "sqlite":
        return _explain_sqlite(engine, clean, analyze)
    raise ExplainError(f"EXPLAIN is not supported on {dialect}")


def explain_stored(engine: Engine, sql: str, analyze: bool = False) -> dict[str, Any]:
    """Explain a stored (normalised, `?`-placeholder) statement; see module doc."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        prepared, count = substitute_params(sql)
        check_sql(substitute_nulls(sql), dialect)  # the same rules, values aside
        clean = prepared.strip().rstrip(";").rstrip()
        return _explain_pg(engine, clean, analyze, params=count, shown=sql)
    result = explain(engine, substitute_nulls(sql), analyze)
    result["sql"] = sql
    result["substituted"] = "placeholders replaced by NULL"
    return result


def _db_error(exc: Exception) -> Exception:
    from sqlalchemy.exc import DBAPIError, OperationalError
    orig = getattr(exc, "orig", None) or exc
    msg = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if isinstance(exc, OperationalError) and any(
            w in msg.lower() for w in ("connect", "unable to open", "could not", "timeout expired",
                                       "no such file")) and "syntax" not in msg.lower():
        return DatabaseUnavailable(f"the monitored database is unavailable: {msg[:300]}")
    if isinstance(exc, (DBAPIError,)) or hasattr(exc, "orig"):
        return ExplainError(f"the database could not explain it: {msg[:400]}")
    return ExplainError(f"the database could not explain it: {msg[:400]}")


def _explain_pg(engine: Engine, sql: str, analyze: bool, *, params: int | None = None,
                shown: str | None = None) -> dict[str, Any]:
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    name = f"ops_explain_{int(time.time() * 1000) % 10**9}"
    started = time.perf_counter()
    try:
        conn = engine.connect()
    except Exception as exc:  # noqa: BLE001
        raise _db_error(exc) from None
    try:
        trans = conn.begin()
        prepared = False
        try:
            raw = conn.connection.dbapi_connection
            cur = raw.cursor()
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(f"SET LOCAL statement_timeout = {int(TIMEOUT_S * 1000)}")
            if params is None:
                # binary=True forces the extended protocol: one statement only.
                cur.execute(f"EXPLAIN ({options}) {sql}", binary=True)
            else:
                cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                cur.execute(f"PREPARE {name} AS {sql}", binary=True)
                prepared = True
                args = ", ".join(["NULL"] * params)
                call = f"EXECUTE {name}({args})" if params else f"EXECUTE {name}"
                cur.execute(f"EXPLAIN ({options}) {call}", binary=True)
            row = cur.fetchone()
            tables = _pg_table_sizes(cur, row[0])
        except Exception as exc:  # noqa: BLE001
            trans.rollback()
            if prepared:
                conn.invalidate()
            raise _db_error(exc) from None
        trans.rollback()  # always: EXPLAIN ANALYZE ran the statement
        if prepared:
            try:
                conn.exec_driver_sql(f"DEALLOCATE {name}")
                conn.rollback()
            except Exception:  # noqa: BLE001 - drop the connection instead
                conn.invalidate()
    finally:
        conn.close()
    doc = row[0]
    if isinstance(doc, (str, bytes)):
        import json
        doc = json.loads(doc)
    top = doc[0]
    plan = _pg_node(top["Plan"], top["Plan"].get("Total Cost") or 0.0, tables)
    expensive = []
    _collect(plan, expensive)
    return {"dialect": "postgresql", "sql": shown or sql, "analyze": analyze,
            "plan": [plan], "total_cost": top["Plan"].get("Total Cost"),
            "planning_ms": top.get("Planning Time"),
            "execution_ms": top.get("Execution Time"),
            "rows": top["Plan"].get("Actual Rows") if analyze else top["Plan"].get("Plan Rows"),
            "expensive": expensive, "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
            "substituted": "placeholders as generic-plan parameters" if params else None,
            "raw": doc}


def _pg_relations(node: dict, out: set) -> set:
    if node.get("Relation Name"):
        out.add(node["Relation Name"])
    for child in node.get("Plans", []) or []:
        _pg_relations(child, out)
    return out


def _pg_table_sizes(cur, doc) -> dict[str, float]:
    if isinstance(doc, (str, bytes)):
        import json
        doc = json.loads(doc)
    names = sorted(_pg_relations(doc[0]["Plan"], set()))
    if not names:
        return {}
    cur.execute("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s) "
                "AND relkind IN ('r', 'p', 'm')", (names,))
    return {r[0]: float(r[1]) for r in cur.fetchall()}


BIG_TABLE_ROWS = 1000
EXPENSIVE_SHARE = 0.5


def _pg_node(node: dict, total: float, tables: dict[str, float]) -> dict[str, Any]:
    children = [_pg_node(c, total, tables) for c in node.get("Plans", []) or []]
    cost = float(node.get("Total Cost") or 0.0)
    own = max(cost - sum(c["cost"] or 0.0 for c in children), 0.0)
    kind = node.get("Node Type", "?")
    relation = node.get("Relation Name")
    label = kind
    if relation:
        label += f" on {relation}"
        if node.get("Alias") and node["Alias"] != relation:
            label += f" {node['Alias']}"
    if node.get("Index Name"):
        label += f" using {node['Index Name']}"
    reasons = []
    if total and own / total > EXPENSIVE_SHARE and (children or kind.endswith("Scan")):
        reasons.append(f"{own / total:.0%} of the plan's total cost")
    table_rows = tables.get(relation or "", 0.0)
    if kind == "Seq Scan" and table_rows >= BIG_TABLE_ROWS:
        reasons.append(f"sequential scan of {relation} (~{table_rows:,.0f} rows)")
    detail = {k: node[k] for k in ("Filter", "Index Cond", "Hash Cond", "Merge Cond",
                                   "Join Filter", "Join Type", "Sort Key", "Group Key",
                                   "Recheck Cond", "Rows Removed by Filter")
              if node.get(k) is not None}
    return {"label": label, "node_type": kind, "relation": relation,
            "index": node.get("Index Name"), "cost": cost,
            "startup_cost": node.get("Startup Cost"), "own_cost": round(own, 2),
            "rows": node.get("Plan Rows"), "width": node.get("Plan Width"),
            "actual_rows": node.get("Actual Rows"),
            "actual_ms": node.get("Actual Total Time"), "loops": node.get("Actual Loops"),
            "table_rows": table_rows or None,
            "full_scan": kind == "Seq Scan", "detail": detail,
            "expensive": bool(reasons), "reasons": reasons, "children": children}


def _collect(node: dict, out: list) -> None:
    if node.get("expensive"):
        out.append(f"{node['label']}: {'; '.join(node['reasons'])}")
    for child in node.get("children", []):
        _collect(child, out)


_SQLITE_SCAN = re.compile(r"^SCAN (?:TABLE )?(\w+)(?: AS (\w+))?(.*)$")
_SQLITE_SEARCH = re.compile(r"^SEARCH (?:TABLE )?(\w+)(?: AS (\w+))?(.*)$")


def sqlite_tree(rows: list[tuple]) -> list[dict[str, Any]]:
    """EXPLAIN QUERY PLAN rows (id, parent, notused, detail) as a tree."""
    nodes: dict[int, dict] = {}
    roots: list[dict] = []
    for row in rows:
        node_id, parent, detail = row[0], row[1], str(row[3])
        node: dict[str, Any] = {"label": detail, "node_type": detail.split(" ")[0],
                                "relation": None, "index": None, "cost": None,
                                "rows": None, "full_scan": False, "detail": {},
                                "expensive": False, "reasons": [], "children": []}
        if (m := _SQLITE_SCAN.match(detail)):
            node["relation"] = m.group(1)
            rest = m.group(3) or ""
            if "INDEX" in rest:
                node["index"] = rest.split("INDEX", 1)[1].strip().split(" ")[0]
            else:
                node["full_scan"] = True
                node["expensive"] = True
                node["reasons"].append(f"full scan of {m.group(1)}: every row is read")
        elif (m := _SQLITE_SEARCH.match(detail)):
            node["relation"] = m.group(1)
            rest = m.group(3) or ""
            if "INDEX" in rest:
                node["index"] = rest.split("INDEX", 1)[1].strip().split(" ")[0]
        elif detail.startswith("USE TEMP B-TREE"):
            node["reasons"].append("sorts or groups in a temporary b-tree")
        nodes[node_id] = node
        (nodes[parent]["children"] if parent in nodes else roots).append(node)
    return roots


def _explain_sqlite(engine: Engine, sql: str, analyze: bool) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        conn = engine.connect()
    except Exception as exc:  # noqa: BLE001
        raise _db_error(exc) from None
    execution_ms = rows_read = None
    try:
        raw = conn.connection.dbapi_connection
        previous = raw.execute("PRAGMA query_only").fetchone()[0]
        raw.execute("PRAGMA query_only=ON")
        deadline = time.monotonic() + TIMEOUT_S
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        try:
            trans = conn.begin()
            try:
                cur = raw.cursor()
                cur.execute(f"EXPLAIN QUERY PLAN {sql}")
                plan_rows = cur.fetchall()
                if analyze:
                    t0 = time.perf_counter()
                    cur.execute(sql)
                    rows_read = 0
                    while rows_read < SQLITE_ANALYZE_MAX_ROWS:
                        chunk = cur.fetchmany(1000)
                        if not chunk:
                            break
                        rows_read += len(chunk)
                    execution_ms = round((time.perf_counter() - t0) * 1000, 3)
                cur.close()
            except Exception as exc:  # noqa: BLE001
                trans.rollback()
                if "interrupted" in str(exc).lower():
                    raise ExplainError(f"the statement ran longer than {TIMEOUT_S:g} s and "
                                       "was interrupted") from None
                raise _db_error(exc) from None
            trans.rollback()  # always
        finally:
            raw.set_progress_handler(None, 0)
            raw.execute(f"PRAGMA query_only={'ON' if previous else 'OFF'}")
    finally:
        conn.close()
    roots = sqlite_tree(plan_rows)
    expensive: list[str] = []
    for root in roots:
        _collect(root, expensive)
    return {"dialect": "sqlite", "sql": sql, "analyze": analyze, "plan": roots,
            "total_cost": None, "planning_ms": None, "execution_ms": execution_ms,
            "rows": rows_read, "expensive": expensive,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
            "substituted": None,
            "raw": [list(r) for r in plan_rows]}
