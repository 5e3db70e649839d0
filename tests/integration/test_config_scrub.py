"""The config editor's masking through its REST API, for the forms a line-by-
line `key: value` reading misses: YAML flow maps, TOML inline tables,
connection strings, escaped keys, private keys under any name. Viewers never
see the values; a save that would write the mask over a real secret is
refused and the file keeps its bytes."""
from __future__ import annotations

import pytest

from dashapp.services import config_files as svc

FILES = {
    "flow.yaml": (
        "db:\n"
        "  host: db.internal\n"
        "  pool: {size: 5, password: flow-pw-1}\n"
        "  replicas: [{host: r1, password: flow-pw-2}]\n"
        "cache_key: products\n"
        "token_count: 12\n",
        ["flow-pw-1", "flow-pw-2"], ["host: db.internal", "cache_key: products",
                                     "token_count: 12", "size: 5"]),
    "inline.toml": (
        "[database]\n"
        "host = \"db\"\n"
        "login = { user = \"app\", password = \"toml-pw-1\" }\n"
        "mirrors = [ { url = \"https://m1\", token = \"toml-tok-2\" } ]\n",
        ["toml-pw-1", "toml-tok-2"], ['host = "db"', 'user = "app"', 'url = "https://m1"']),
    "conn.ini": (
        "[sql]\n"
        "connection = Server=db;User Id=sa;Password=conn-pw-1;Database=shop\n"
        "timeout = 30\n",
        ["conn-pw-1"], ["Server=db;User Id=sa;", "Database=shop", "timeout = 30"]),
    "escaped.json": (
        '{"db": {"pass\\u0077ord": "esc-pw-1", "host": "db",\n'
        ' "conn": "Host=db;Password=esc-pw-2;", "primary_key": "id"}}\n',
        ["esc-pw-1", "esc-pw-2"], ['"host": "db"', '"primary_key": "id"', "Host=db;"]),
    "escaped.yaml": (
        "\"pass\\x77ord\": esc-pw-3\n"
        "name: shop\n",
        ["esc-pw-3"], ["name: shop"]),
    "tls.yaml": (
        "tls:\n"
        "  cert_and_key: |\n"
        "    -----BEGIN PRIVATE KEY-----\n"
        "    MIIEvQIBADANBgkqhkiG9w0BAQEFAASCpem1\n"
        "    pem2pem2pem2\n"
        "    -----END PRIVATE KEY-----\n"
        "  port: 443\n",
        ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCpem1", "pem2pem2pem2"],
        ["-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "port: 443"]),
    "svc.env": (
        "DEBUG=1\n"
        "MYSQL_PWD=env-pw-1\n"
        "SENTRY_DSN=https://env-key-2@o1.ingest.sentry.io/5\n"
        "SLACK_URL=https://hooks.slack.com/services/T000/B000/envhook3\n"
        "GITHUB_TOKEN=ghp_0123456789abcdef0123456789abcdef0123\n",
        ["env-pw-1", "env-key-2", "envhook3", "0123456789abcdef0123456789abcdef0123"],
        ["DEBUG=1", "SLACK_URL=https://hooks.slack.com/services/"]),
}


@pytest.fixture
def folder(app):
    path = app.extensions["ops"].settings.config_folder
    path.mkdir(parents=True, exist_ok=True)
    for name, (content, _secrets, _kept) in FILES.items():
        (path / name).write_text(content)
    return path


def _read(client, headers, name):
    resp = client.get(f"/api/config/file/{name}", headers=headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _put(client, headers, name, content, version):
    return client.put(f"/api/config/file/{name}",
                      json={"content": content, "reason": "scrub test"},
                      headers={**headers, "If-Match": f'"{version}"'})


@pytest.mark.parametrize("name", FILES)
def test_viewers_never_see_secrets_in_structured_forms(client, viewer, folder, name):
    content, secrets, kept = FILES[name]
    body = _read(client, viewer, name)
    assert body["masked"] is True
    assert [s for s in secrets if s in body["content"]] == [], body["content"]
    assert [k for k in kept if k not in body["content"]] == [], body["content"]
    # Masking keeps the file's shape: one line for one line.
    assert len(body["content"].splitlines()) == len(content.splitlines())


@pytest.mark.parametrize("name", FILES)
def test_a_save_holding_the_mask_where_a_secret_was_is_refused(client, admin, viewer,
                                                               folder, name):
    content, secrets, _kept = FILES[name]
    version = _read(client, admin, name)["version"]
    # The viewer's masked copy, and the admin's real copy with one secret
    # typed over by the mask: neither may replace the real values.
    masked = _read(client, viewer, name)["content"]
    typed_over = content.replace(secrets[0], svc.MASK)
    for attempt in (masked, typed_over):
        resp = _put(client, admin, name, attempt, version)
        assert resp.status_code == 400, (attempt, resp.get_json())
        assert resp.get_json()["error"]["code"] == "masked_secret"
    assert (folder / name).read_text() == content
    # The admin's real content, edited elsewhere, saves and keeps the secrets.
    edited = content + ("# reviewed\n" if name.endswith((".yaml", ".toml", ".env", ".ini"))
                        else "")
    if name.endswith(".json"):
        edited = content.replace('"host": "db"', '"host": "db2"')
    resp = _put(client, admin, name, edited, version)
    assert resp.status_code == 200, resp.get_json()
    assert (folder / name).read_text() == edited
    assert all(s in edited for s in secrets)


def test_history_diffs_hide_structured_secrets_from_viewers(client, admin, viewer, folder):
    name = "flow.yaml"
    content = FILES[name][0]
    version = _read(client, admin, name)["version"]
    new = content.replace("flow-pw-1", "flow-pw-NEW").replace("size: 5", "size: 6")
    assert _put(client, admin, name, new, version).status_code == 200
    seen = str(client.get(f"/api/config/file/{name}/history", headers=viewer).get_json())
    assert "flow-pw-1" not in seen and "flow-pw-NEW" not in seen and "size: 6" in seen
