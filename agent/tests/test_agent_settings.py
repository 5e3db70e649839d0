"""OPS_DSN and the other OPS_ settings: what a user writes, what the agent
makes of it, and what happens when it is wrong (the app runs unmonitored,
the agent says why, nothing raises into the host)."""
from __future__ import annotations

import logging

import pytest
from flask import Flask

import ops_agent
from ops_agent import settings


@pytest.mark.parametrize("dsn, endpoint, key, app", [
    ("http://k3y@console:8050/shop", "http://console:8050/api/ingest", "k3y", "shop"),
    ("https://KEY@ops.example.com/console/shop",
     "https://ops.example.com/console/api/ingest", "KEY", "shop"),
    ("https://KEY@ops.example.com/a/b/shop-api/",
     "https://ops.example.com/a/b/api/ingest", "KEY", "shop-api"),
    ("http://a%2Fb%40c@10.0.0.5/billing.v2", "http://10.0.0.5/api/ingest", "a/b@c",
     "billing.v2"),
    ("http://k@[::1]:9000/shop", "http://[::1]:9000/api/ingest", "k", "shop"),
    ("  http://k@console:8050/shop\n", "http://console:8050/api/ingest", "k", "shop"),
])
def test_dsn_gives_endpoint_key_and_application(dsn, endpoint, key, app):
    conf = settings.load(dsn=dsn, environ={})
    assert (conf.endpoint, conf.key, conf.app) == (endpoint, key, app)


@pytest.mark.parametrize("dsn, says", [
    ("console:8050/shop", "http:// or https://"),
    ("ftp://k@console/shop", "http:// or https://"),
    ("http://console:8050/shop", "no ingest key"),
    ("http://k@console:80a/shop", "port"),
    ("http://k@console:8050", "no application name"),
    ("http://k@console:8050/", "no application name"),
    ("http://k@console:8050/my shop", "application name"),
    ("http://k@/shop", "host"),
])
def test_bad_dsn_says_what_is_wrong(dsn, says):
    with pytest.raises(settings.SettingsError) as caught:
        settings.load(dsn=dsn, environ={})
    assert says in str(caught.value)
    assert "OPS_DSN" in str(caught.value) or "application name" in str(caught.value)


@pytest.mark.parametrize("dsn", [
    "not a url", "http://console:8050/shop", "http://k@console:8050/", b"http://k@h/app",
    12345, "http://secret-key-9@console:99999999/shop",
])
def test_bad_dsn_leaves_the_app_unmonitored_and_running(dsn, caplog):
    app = Flask("shop")
    app.add_url_rule("/", "index", lambda: "hello")
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        mon = ops_agent.monitor(app, dsn=dsn)
    assert mon.enabled is False
    assert mon.flush() is False
    mon.close()
    errors = [r for r in caplog.records if r.name == "ops_agent"]
    assert len(errors) == 1 and "not monitored" in errors[0].getMessage()
    assert "secret-key-9" not in caplog.text
    response = app.test_client().get("/")
    assert response.status_code == 200 and response.data == b"hello"
    assert "X-Request-ID" not in response.headers


def test_bad_dsn_in_the_environment(monkeypatch, caplog):
    monkeypatch.setenv("OPS_DSN", "http://console:8050/shop")
    app = Flask("shop")
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        mon = ops_agent.monitor(app)
    assert not mon.enabled
    assert "no ingest key" in caplog.text and "not monitored" in caplog.text


@pytest.mark.parametrize("kwargs, says", [
    ({"release": "1.0 beta"}, "OPS_RELEASE"),
    ({"log_level": "LOUD"}, "OPS_LOG_CAPTURE_LEVEL"),
    ({"name": "no spaces allowed"}, "application name"),
])
def test_other_bad_settings_leave_the_app_unmonitored(kwargs, says, console, caplog):
    app = Flask("shop")
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        mon = ops_agent.monitor(app, dsn=console.dsn(), **kwargs)
    assert not mon.enabled
    assert says in caplog.text and "not monitored" in caplog.text


def test_only_ops_variables_are_read(monkeypatch, caplog):
    """The host's own service URLs are its business, even DSN-shaped ones."""
    for name, value in {"REDIS_URL": "redis://10.1.1.1:6379/0",
                        "DATABASE_URL": "postgresql://u:p@db/shop",
                        "SENTRY_DSN": "https://abc@sentry.example.com/1",
                        "DSN": "http://k@console:8050/shop",
                        "RELEASE": "9.9.9"}.items():
        monkeypatch.setenv(name, value)
    assert settings.load() is None
    app = Flask("shop")
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        mon = ops_agent.monitor(app)
    assert not mon.enabled
    assert "OPS_DSN is not set" in caplog.text


def test_ops_variables_and_keywords(monkeypatch):
    monkeypatch.setenv("OPS_DSN", "http://k@console:8050/shop")
    monkeypatch.setenv("OPS_RELEASE", "2.0.1")
    monkeypatch.setenv("OPS_LOG_CAPTURE_LEVEL", "warning")
    monkeypatch.setenv("DATABASE_URL", "http://other@elsewhere/nope")
    conf = settings.load()
    assert (conf.endpoint, conf.app, conf.release, conf.log_level) == (
        "http://console:8050/api/ingest", "shop", "2.0.1", "WARNING")
    # keywords win over the environment
    conf = settings.load(dsn="https://k2@ops.example.com/shop", release="2.0.2",
                         app="shop-eu", log_level="OFF")
    assert (conf.endpoint, conf.key, conf.app, conf.release, conf.log_level) == (
        "https://ops.example.com/api/ingest", "k2", "shop-eu", "2.0.2", "OFF")


def test_the_key_never_shows(console, make_app, caplog):
    key = "sk-live-7fa9c2"
    conf = settings.load(dsn=console.dsn(key=key), environ={})
    assert key not in repr(conf) and key not in str(conf)
    assert conf.key == key
    # Refused (401), then down: the agent's warnings say why, never the key.
    console.mode = "401"
    with caplog.at_level(logging.DEBUG):
        app, mon = make_app(dsn=console.dsn(key=key))
        assert mon.flush() is False
        console.mode = "ok"
        assert mon.flush() is True
        console.stop()
        assert mon.flush() is False
        console.start()
        assert mon.flush() is True
    assert console.attempts[0].headers["x-ops-key"] == key  # sent, as a header
    assert "answered 401: unknown or revoked ingest key" in caplog.text
    assert f"unreachable at http://127.0.0.1:{console.port}/api/ingest" in caplog.text
    assert key not in caplog.text
    assert key not in repr(mon.shipper.sink) and key not in repr(mon.settings)
