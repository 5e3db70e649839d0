"""EXPLAIN safety: only one read-only SELECT gets through, whatever the tricks.

Every case is checked under each dialect reading (None = all readings at once).
The real-database side (read-only transaction, rollback) is in
tests/integration/test_queries.py.
"""
from __future__ import annotations

import sqlite3

import pytest

from dashapp.services.explain import (UnsafeSQL, check_sql, explain, sqlite_tree,
                                      substitute_nulls, substitute_params)

DIALECTS = [None, "sqlite", "postgresql"]

REFUSED = [
    # several statements, also hidden behind comments and strings
    ("SELECT 1; DELETE FROM orders", "several statements"),
    ("SELECT 1;DROP TABLE orders;", "several statements"),
    ("SELECT 1; -- comment\nDELETE FROM orders", "several statements"),
    ("SELECT 1 /* ; */; UPDATE orders SET total = 0", "several statements"),
    ("SELECT ';'; DELETE FROM orders", "several statements"),
    ("SELECT 'a''b'; DELETE FROM orders", "several statements"),
    ("SELECT '\\'; DELETE FROM orders; --'", "several statements"),
    ("SELECT 1;\n\n  ;SELECT 2", "several statements"),
    # DDL / DML / session statements
    ("DROP TABLE orders", "not DROP"),
    ("CREATE TABLE x (a int)", "not CREATE"),
    ("ALTER TABLE orders ADD COLUMN x int", "not ALTER"),
    ("TRUNCATE orders", "not TRUNCATE"),
    ("DELETE FROM orders", "not DELETE"),
    ("INSERT INTO orders VALUES (1)", "not INSERT"),
    ("UPDATE orders SET total = 0", "not UPDATE"),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "not MERGE"),
    ("REPLACE INTO orders VALUES (1)", "not REPLACE"),
    ("PRAGMA writable_schema = ON", "not PRAGMA"),
    ("ATTACH DATABASE '/tmp/x.db' AS x", "not ATTACH"),
    ("COPY orders TO '/tmp/x'", "not COPY"),
    ("SET statement_timeout = 0", "not SET"),
    ("CALL do_things()", "not CALL"),
    ("DO LANGUAGE plpgsql 'BEGIN END'", "not DO"),
    ("VACUUM", "not VACUUM"),
    ("LOCK TABLE orders", "not LOCK"),
    ("GRANT ALL ON orders TO public", "not GRANT"),
    ("EXPLAIN ANALYZE DELETE FROM orders", "not EXPLAIN"),
    ("VALUES (1)", "not VALUES"),
    ("TABLE orders", "not TABLE"),
    ("BEGIN", "not BEGIN"),
    # data-modifying CTEs, SELECT INTO, locking
    ("WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x", "DELETE is refused"),
    ("WITH x AS (UPDATE orders SET total = 0 RETURNING id) SELECT * FROM x",
     "UPDATE is refused"),
    ("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1", "INSERT is refused"),
    ("WITH x AS (SELECT 1) DELETE FROM orders", "DELETE is refused"),
    ("WITH x AS (SELECT 1) SELECT * FROM x; DELETE FROM orders", "several statements"),
    ("SELECT * INTO backup FROM orders", "INTO"),
    ("SELECT * FROM orders FOR UPDATE", "FOR UPDATE"),
    ("select * from orders for share", "FOR UPDATE"),
    ("SELECT * FROM orders FOR NO KEY UPDATE", "FOR UPDATE"),
    ("SELECT * FROM orders FOR KEY SHARE", "FOR UPDATE"),
    # side-effect functions, plain, quoted, qualified, odd spacing
    ("SELECT pg_sleep(10)", "pg_sleep"),
    ("SELECT PG_SLEEP (10)", "pg_sleep"),
    ('SELECT "pg_sleep"(10)', "pg_sleep"),
    ("SELECT pg_catalog.pg_sleep(10)", "pg_sleep"),
    ("SELECT pg_sleep/**/(10)", "pg_sleep"),
    ("SELECT pg_terminate_backend(123)", "pg_terminate_backend"),
    ("SELECT pg_cancel_backend(123)", "pg_cancel_backend"),
    ("SELECT lo_import('/etc/passwd')", "lo_import"),
    ("SELECT lo_export(1, '/tmp/x')", "lo_export"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ("SELECT * FROM dblink('host=x', 'DELETE FROM t') AS t(a int)", "dblink"),
    ("SELECT dblink_exec('DELETE FROM t')", "dblink_exec"),
    ("SELECT set_config('statement_timeout', '0', false)", "set_config"),
    ("SELECT nextval('orders_id_seq')", "nextval"),
    ("SELECT setval('orders_id_seq', 1)", "setval"),
    ("SELECT query_to_xml('DELETE FROM t', true, true, '')", "query_to_xml"),
    ("SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
    ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
    ("SELECT writefile('/tmp/x', 'y')", "writefile"),
    # case and comment tricks
    ("SEL/**/ECT 1", "not SEL"),
    ("sElEcT 1; dElEtE FROM orders", "several statements"),
    ("/* SELECT */ DELETE FROM orders", "not DELETE"),
    ("-- SELECT\nDELETE FROM orders", "not DELETE"),
    ("/* /* */ DELETE FROM orders */ SELECT 1", "nested"),
    ("SELECT 1 /* unterminated", "unterminated"),
    ("SELECT 'unterminated", "unterminated"),
    ('SELECT "unterminated', "unterminated"),
    ("", "empty"),
    ("   ;  ", "empty"),
    ("SELECT 1\x00; DELETE FROM t", "NUL"),
]

POSTGRES_ONLY_REFUSED = [
    ("SELECT $$;$$; DELETE FROM orders", "$"),
    ("SELECT $x$ ' $x$, 1; DELETE FROM orders; SELECT ''", "$"),
    ("SELECT arr[1:pg_sleep(1)] FROM t", "pg_sleep"),  # an array slice, not a parameter
    ("SELECT 1 @pg_sleep(1)", "pg_sleep"),
    ('SELECT U&"pg_sl\\0065ep"(1)', "U&"),
    # E'' / standard_conforming_strings=off: refused under either reading
    ("SELECT E'\\''; DELETE FROM orders; --'", "several statements"),
    ("SELECT 'a\\''; DELETE FROM orders; --'", "several statements"),
]

ACCEPTED = [
    "SELECT 1",
    "SELECT 1;",
    "select 1 ;;  ",
    "  SELECT id, name FROM products WHERE id = 3  ",
    "WITH recent AS (SELECT * FROM orders WHERE status = 'paid') SELECT count(*) FROM recent",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) "
    "SELECT * FROM c",
    "SELECT 'a;b' AS s",
    "SELECT 'DELETE FROM orders; DROP TABLE x' AS harmless",
    "SELECT 'it''s' AS s",
    'SELECT "delete" FROM t',       # a quoted identifier named like a keyword
    "SELECT 1 -- ; DROP TABLE t",
    "SELECT 1 /* ; DROP TABLE t */",
    "(SELECT 1) UNION ALL (SELECT 2)",
    "SELECT substring(name FROM 1 FOR 3) FROM products",
    "SELECT id FROM orders ORDER BY id FETCH FIRST 5 ROWS ONLY",
    "SELECT CASE WHEN total > 10 THEN 'big' ELSE 'small' END FROM orders",
    "SELECT replace(name, 'a', 'b'), updated_at, deleted FROM products",
    "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = 'x'",
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("sql, why", REFUSED)
def test_refused(sql, why, dialect):
    with pytest.raises(UnsafeSQL) as info:
        check_sql(sql, dialect)
    assert why.lower() in str(info.value).lower(), str(info.value)


@pytest.mark.parametrize("dialect", [None, "postgresql"])
@pytest.mark.parametrize("sql, why", POSTGRES_ONLY_REFUSED)
def test_refused_on_postgres(sql, why, dialect):
    with pytest.raises(UnsafeSQL) as info:
        check_sql(sql, dialect)
    assert why.lower() in str(info.value).lower(), str(info.value)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("sql", ACCEPTED)
def test_accepted(sql, dialect):
    assert check_sql(sql, dialect) == sql.strip().rstrip(";").rstrip(" ;").rstrip()


def test_too_long_is_refused():
    with pytest.raises(UnsafeSQL, match="longer than"):
        check_sql("SELECT " + "1, " * 10_000 + "1")


def test_placeholders_of_stored_sql():
    sql = "SELECT id FROM orders WHERE id IN (?+) AND status = ? LIMIT ?"
    assert substitute_nulls(sql) == \
        "SELECT id FROM orders WHERE id IN (NULL) AND status = NULL LIMIT NULL"
    assert substitute_params(sql) == \
        ("SELECT id FROM orders WHERE id IN ($1) AND status = $2 LIMIT $3", 3)


def test_sqlite_plan_rows_become_a_tree():
    rows = [(2, 0, 0, "SCAN orders"), (5, 0, 0, "SEARCH customers USING INTEGER PRIMARY "
                                                  "KEY (rowid=?)"),
            (9, 0, 0, "CORRELATED SCALAR SUBQUERY 1"), (12, 9, 0, "SCAN items")]
    roots = sqlite_tree(rows)
    assert [r["label"] for r in roots] == ["SCAN orders", "SEARCH customers USING INTEGER "
                                           "PRIMARY KEY (rowid=?)",
                                           "CORRELATED SCALAR SUBQUERY 1"]
    assert roots[0]["full_scan"] and roots[0]["expensive"]
    assert not roots[1]["full_scan"]
    assert roots[2]["children"][0]["relation"] == "items"


def test_explain_never_writes_even_if_the_check_were_bypassed(tmp_path):
    """Defence in depth: the SQLite connection is query_only during EXPLAIN."""
    from sqlalchemy import create_engine, text
    path = tmp_path / "x.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a INTEGER)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    engine = create_engine(f"sqlite:///{path}")
    result = explain(engine, "SELECT a FROM t WHERE a = 1", analyze=True)
    assert result["rows"] == 1 and result["plan"][0]["full_scan"]
    with pytest.raises(UnsafeSQL):
        explain(engine, "DELETE FROM t", analyze=True)
    with engine.connect() as conn:  # and the engine is left writable for its owner
        conn.execute(text("INSERT INTO t VALUES (2)"))
        conn.commit()
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2
    engine.dispose()
