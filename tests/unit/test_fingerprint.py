"""SQL fingerprints fold values, lists and rows; they never keep a value."""
from __future__ import annotations

import pytest

from ops_agent.fingerprint import fingerprint, normalise

SAME = [
    ("SELECT * FROM t WHERE id IN (1, 2, 3)", "select * from t where id in (4,5)"),
    ("SELECT * FROM t WHERE id IN (?, ?, ?)", "SELECT * FROM t WHERE id IN (%(id_1)s)"),
    ("SELECT * FROM t WHERE id IN (5)", "SELECT * FROM t WHERE id IN ($1, $2)"),
    ("SELECT a FROM u WHERE email = 'bob@example.com'", "SELECT a FROM u WHERE email = :email"),
    ("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')", "INSERT INTO t (a, b) VALUES (?, ?)"),
    ("SELECT 1 -- a comment\nFROM t /* another */ WHERE x = 2.5e3", "SELECT 7 FROM t WHERE x = -4"),
    ("SELECT * FROM t WHERE a = TRUE", "SELECT * FROM t WHERE a = false"),
]
DIFFERENT = [
    ("SELECT a FROM t WHERE id = 1", "SELECT b FROM t WHERE id = 1"),
    ("SELECT a FROM t1", "SELECT a FROM t2"),
    ("SELECT a FROM t WHERE x = col2", "SELECT a FROM t WHERE x = ?"),
]


@pytest.mark.parametrize("a,b", SAME)
def test_same_query_same_fingerprint(a, b):
    assert fingerprint(a)[0] == fingerprint(b)[0]


@pytest.mark.parametrize("a,b", DIFFERENT)
def test_different_queries_differ(a, b):
    assert fingerprint(a)[0] != fingerprint(b)[0]


def test_values_are_never_kept():
    sql = ("SELECT * FROM users WHERE email = 'alice@secret.example' "
           "AND password_hash = 'abc$123' AND pin = 4242 AND code = E'x\\'y' "
           "AND body = $$dollar secret$$")
    text = normalise(sql)
    for secret in ("alice@secret.example", "abc$123", "4242", "dollar secret", "x\\'y"):
        assert secret not in text
    assert text.count("?") == 5


def test_quotes_inside_strings_do_not_confuse_it():
    assert normalise("SELECT 'it''s; DROP TABLE x' FROM t") == "SELECT ? FROM t"


def test_identifiers_with_digits_survive():
    assert normalise("SELECT col1, t2.x3 FROM table_2") == "SELECT col1, t2.x3 FROM table_2"
