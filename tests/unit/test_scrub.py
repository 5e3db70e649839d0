"""The one secret scrubber, through every surface that shows other people's
text: the log viewer (lines and extras), the config editor, job arguments
and the audit trail must all agree on which names and values are secret."""
from __future__ import annotations

import pytest

from dashapp.core import scrub
from dashapp.ingest.jobs import redact_call
from dashapp.security import audit
from dashapp.services import config_files, logs

SECRET = "Zq7-s3cr3t-Value"

# Names that hold a secret: with a prefix or a suffix, in any case or style.
SECRET_NAMES = [
    "password", "DB_PASSWORD", "client_secret", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY",
    "MYSQL_PWD", "access_token", "sessionid", "SENTRY_DSN", "api_key", "apiKey",
    "X-Api-Key", "secret_key", "private_key", "privateKey", "passwd", "passphrase",
    "Authorization", "Cookie", "set_cookie", "refresh_token", "csrftoken", "smtp_pass",
    "password_hash", "hashed_password", "db.password", "basic_auth", "credentials",
    "session", "session_id", "jwt", "JWT_SECRET", "stripe_secret_key", "clientSecret",
]
# Names that merely contain a secret-sounding part: never masked.
PLAIN_NAMES = [
    "key", "cache_key", "primary_key", "keyboard", "monkey", "token_count", "max_tokens",
    "password_min_length", "secret_name", "author", "oauth", "bypass", "compass",
    "passenger", "tokenizer", "user", "host", "keys_total", "description", "sessions_total",
]


def _log_line(name: str) -> bool:
    return SECRET not in logs.redact(f"login {name}={SECRET} user=bob")


def _log_json_line(name: str) -> bool:
    return SECRET not in logs.redact(f'{{"{name}": "{SECRET}", "user": "bob"}}')


def _log_extras(name: str) -> bool:
    return logs.redact_extras({name: SECRET, "route": "/x"})[name] != SECRET


def _config_yaml(name: str) -> bool:
    return SECRET not in config_files.mask_secrets(f"{name}: {SECRET}\n", "yaml")[0]


def _config_env(name: str) -> bool:
    return SECRET not in config_files.mask_secrets(f"{name}={SECRET}\n", "env")[0]


def _config_json(name: str) -> bool:
    return SECRET not in config_files.mask_secrets(f'{{"{name}": "{SECRET}"}}', "json")[0]


def _job_kwarg(name: str) -> bool:
    return redact_call(lambda **kw: None, (), {name: SECRET})["kwargs"][name] != SECRET


def _audit_detail(name: str) -> bool:
    return audit._redact({name: SECRET})[name] != SECRET


SURFACES = {"scrubber": scrub.is_secret_name, "log line": _log_line,
            "log json line": _log_json_line, "log extras": _log_extras,
            "config yaml": _config_yaml, "config env": _config_env,
            "config json": _config_json, "job argument": _job_kwarg,
            "audit detail": _audit_detail}


@pytest.mark.parametrize("surface", SURFACES)
def test_every_surface_masks_the_same_secret_names(surface):
    masks = SURFACES[surface]
    assert [n for n in SECRET_NAMES if not masks(n)] == []


@pytest.mark.parametrize("surface", SURFACES)
def test_no_surface_masks_names_that_only_look_secret(surface):
    masks = SURFACES[surface]
    assert [n for n in PLAIN_NAMES if masks(n)] == []


# Values that are secrets whatever their name: (text, what it must become).
VALUES = [
    ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
    ("retrying with bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "retrying with bearer ***"),
    ("connect postgres://u:p@h/db failed", "connect postgres://u:***@h/db failed"),
    ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("alert to https://hooks.slack.com/services/T000/B000/XXXX now",
     "alert to https://hooks.slack.com/services/*** now"),
    ("Server=db;User Id=sa;Password=hunter2;Database=shop",
     "Server=db;User Id=sa;Password=***;Database=shop"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nq9ZxWw==\n-----END RSA PRIVATE KEY-----",
     "-----BEGIN RSA PRIVATE KEY-----\n***\n***\n-----END RSA PRIVATE KEY-----"),
    ("key=-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADAN\\n-----END PRIVATE KEY-----\\n",
     "key=-----BEGIN PRIVATE KEY-----\\n***\\n-----END PRIVATE KEY-----\\n"),
    ("cut short: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk",
     "cut short: -----BEGIN OPENSSH PRIVATE KEY-----\n***"),
    ("options {password: x, user: y}", "options {password: ***, user: y}"),
    ('db = { password = "x", user = "y" }', 'db = { password = "***", user = "y" }'),
    ('payload={\\"api_key\\": \\"k-99\\", \\"n\\": 1}',
     'payload={\\"api_key\\": \\"***\\", \\"n\\": 1}'),
    ("url: password=hunter2", "url: password=***"),
    ("used ghp_" + "a1B2" * 9 + " to push", "used ghp_*** to push"),
]
# Text that holds nothing secret: left exactly as it is.
PLAIN_TEXT = [
    "cache key products:42 miss in 3 ms",
    "token_count=12 max_tokens=512 keyboard=us monkey=george",
    "Bearer tokens expire after an hour",
    "GET /products/393 200 in 0 ms user=0 cart=0 request_id=q30",
    "see https://example.com/docs?page=2 for details",
    "primary_key: id, password_min_length: 12",
]


@pytest.mark.parametrize("text,expected", VALUES)
def test_values_that_look_secret_are_masked_whatever_their_name(text, expected):
    assert logs.redact(text) == expected
    assert scrub.scrub_text(text) == expected
    # The same in a job's argument, an audit detail and a log record's extras.
    assert redact_call(lambda note: None, (text,), {})["args"] == [expected]
    assert audit._redact({"note": text}) == {"note": expected}
    assert logs.redact_extras({"note": text}) == {"note": expected}


@pytest.mark.parametrize("text", PLAIN_TEXT)
def test_text_without_secrets_is_left_alone(text):
    assert logs.redact(text) == text
    assert redact_call(lambda note: None, (text,), {})["args"] == [text]


def test_scrubbing_twice_changes_nothing_more():
    for text, expected in VALUES:
        assert scrub.scrub_text(expected) == expected


def test_nested_values_are_scrubbed_by_name_and_by_value():
    details = {"target": "db", "settings": {"DB_PASSWORD": "x1", "hosts": ["a", "b"]},
               "error": "OperationalError: connect postgres://app:pw9@db/shop failed",
               "count": 3}
    assert audit._redact(details) == {
        "target": "db", "settings": {"DB_PASSWORD": "***", "hosts": ["a", "b"]},
        "error": "OperationalError: connect postgres://app:***@db/shop failed", "count": 3}


SQLITE_ERROR = (
    "(sqlite3.IntegrityError) UNIQUE constraint failed: account.email\n"
    "[SQL: INSERT INTO account (email, password_hash, note) VALUES (?, ?, 'vip ann')]\n"
    "[parameters: ('ann@example.com', 'scrypt:32768:8:1$abc$def')]\n"
    "(Background on this error at: https://sqlalche.me/e/20/gkpj)")
POSTGRES_ERROR = (
    "(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "
    "\"account_email_key\"\n"
    "DETAIL:  Key (email)=(ann@example.com) already exists.\n"
    "[SQL: INSERT INTO account (email, password_hash) VALUES (%(email)s::VARCHAR, "
    "%(password_hash)s::VARCHAR)]\n"
    "[parameters: {'email': 'ann@example.com', 'password_hash': 'scrypt:32768:8:1$abc$def'}]\n"
    "(Background on this error at: https://sqlalche.me/e/20/gkpj)")


@pytest.mark.parametrize("message", [SQLITE_ERROR, POSTGRES_ERROR, SQLITE_ERROR[:170]])
def test_database_errors_lose_their_values_and_keep_the_statement(message):
    shown = logs.redact(message)
    assert "ann@example.com" not in shown and "scrypt:" not in shown
    assert "vip ann" not in shown
    assert "INSERT INTO account (email, password_hash" in shown
    if "[parameters: " in message:
        assert "[parameters: ***]" in shown
    if "DETAIL" in message:
        assert "DETAIL:  Key (email)=(***) already exists." in shown
    assert shown.endswith("gkpj)") == message.endswith("gkpj)")


def test_other_databases_echoed_values_are_masked():
    shown = scrub.scrub_text(
        "(pymysql.err.IntegrityError) (1062, \"Duplicate entry 'ann@example.com' for key "
        "'account.email'\")\nDETAIL:  Failing row contains (7, ann@example.com, null).")
    assert "ann@example.com" not in shown
    assert "Duplicate entry '***' for key 'account.email'" in shown
    assert "Failing row contains (***)." in shown
