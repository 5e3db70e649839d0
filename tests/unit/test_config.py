"""Settings: defaults, and one clear line naming the variable for bad values."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dashapp.config import ROOT, SettingsError, load_settings


@pytest.mark.parametrize("variable,value,expected", [
    ("OPS_DEMO", "maybe", "OPS_DEMO"),
    ("OPS_DEMO_PORT", "99999", "OPS_DEMO_PORT"),
    ("REDIS_URL", "http://localhost:6379", "REDIS_URL"),
    ("OPS_DATABASE_URL", "not a url", "OPS_DATABASE_URL"),
    ("OPS_ADMIN_PASSWORD", "short", "OPS_ADMIN_PASSWORD"),
    ("OPS_ADMIN_USER", "bad name!", "OPS_ADMIN_USER"),
    ("OPS_ENV", "staging", "OPS_ENV"),
])
def test_bad_value_names_the_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"{expected}:")
    assert "\n" not in message


def test_secrets_are_not_echoed(monkeypatch):
    monkeypatch.setenv("OPS_ADMIN_PASSWORD", "short")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "short" not in str(info.value)


def test_defaults_live_under_instance(tmp_path, monkeypatch):
    for name in ("OPS_DATABASE_URL", "REDIS_URL", "SECRET_KEY", "OPS_DEMO"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings(instance_dir=tmp_path)
    assert s.store_url == f"sqlite:///{tmp_path / 'ops.db'}"
    assert s.redis_url is None and s.demo is True and s.admin_user == "admin"


def test_secret_key_generated_once_and_kept(tmp_path):
    s = load_settings(instance_dir=tmp_path, secret_key=None)
    first = s.resolved_secret_key()
    assert len(first) >= 32
    assert load_settings(instance_dir=tmp_path).resolved_secret_key() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("OPS_DEMO_PORT", raising=False)
    (tmp_path / ".env").write_text("OPS_DEMO_PORT=9123\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().demo_port == 9123


def test_app_py_prints_one_line_not_a_traceback():
    env = {"OPS_DEMO": "maybe", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(ROOT / "app.py")], env=env,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: OPS_DEMO:")
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_every_setting_is_documented():
    """.env.example and the README name every variable the settings read."""
    from dashapp.config import Settings, _variable_for
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for field in Settings.model_fields:
        variable = _variable_for(field)
        assert variable in example, f"{variable} missing from .env.example"
        assert variable in readme, f"{variable} missing from README.md"


def test_reset_admin_password_command(tmp_path):
    env = {"OPS_INSTANCE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "--reset-admin-password"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    password = proc.stdout.strip().rsplit(": ", 1)[1]
    from dashapp.security.auth import UserService
    from dashapp.store import Store
    store = Store(f"sqlite:///{tmp_path / 'ops.db'}")
    try:
        assert UserService(store).authenticate("admin", password) is not None
    finally:
        store.close()
