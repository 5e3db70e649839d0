"""Log capture: the host's records reach the console with the id of the
request that logged them; the agent's own warnings do not (an outage must
not feed on itself)."""
from __future__ import annotations

import logging

from flask import Flask


def _routes(logger):
    def routes(app):
        @app.route("/orders/<int:oid>")
        def order(oid):
            logger.info("order %s paid", oid, extra={"order_id": oid, "amount": 12.5,
                                                     "customer": object()})
            logger.debug("cart details")
            return "ok"

        @app.route("/fails")
        def fails():
            try:
                1 / 0
            except ZeroDivisionError:
                logger.exception("could not price order")
            return "handled"
    return routes


def test_records_carry_request_ids(console, make_app, app_logger):
    app, mon = make_app(routes=_routes(app_logger))
    client = app.test_client()
    paid = client.get("/orders/42")
    failed = client.get("/fails")
    app_logger.warning("outside any request")
    logs = console.wait_for(lambda: len(console.events("logs")) >= 3 and
                            console.events("logs"), timeout=2.5)
    by_message = {rec[4].split("\n")[0]: rec for rec in logs}
    assert "cart details" not in by_message  # below INFO, the default level
    epoch, level, number, logger, message, rid, extras = by_message["order 42 paid"]
    assert (level, number, logger) == ("INFO", logging.INFO, "shop.orders")
    assert rid == paid.headers["X-Request-ID"]
    assert extras["order_id"] == 42 and extras["amount"] == 12.5
    assert extras["customer"].startswith("<object object")
    error = by_message["could not price order"]
    assert error[1] == "ERROR" and error[5] == failed.headers["X-Request-ID"]
    assert "ZeroDivisionError: division by zero" in error[4]  # the traceback
    assert by_message["outside any request"][5] is None


def test_capture_level_and_off(console, make_app, app_logger):
    app, mon = make_app(routes=_routes(app_logger), log_level="DEBUG")
    app.test_client().get("/orders/1")
    assert mon.flush()
    assert [r[4] for r in console.events("logs")] == ["order 1 paid", "cart details"]

    quiet_app, quiet = make_app(routes=_routes(app_logger), log_level="OFF",
                                dsn=console.dsn(app="quiet"))
    quiet_app.test_client().get("/orders/2")
    assert quiet.flush()
    assert [r[4] for r in console.events("logs")] == ["order 1 paid", "cart details"]


def test_close_detaches_the_handler(console, make_app):
    before = list(logging.getLogger().handlers)
    app, mon = make_app()
    assert len(logging.getLogger().handlers) == len(before) + 1
    mon.close()
    assert logging.getLogger().handlers == before


def _agent_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name.startswith("ops_agent")]


def test_the_shippers_warnings_are_not_captured(console, make_app, app_logger, caplog):
    app, mon = make_app(routes=_routes(app_logger))
    client = app.test_client()
    console.wait_for(console.accepted)  # running, then the console goes away
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        console.stop()
        client.get("/orders/1")
        console.wait_for(lambda: mon.shipper.in_outage, timeout=3)
        console.start()
        client.get("/orders/2")
        console.wait_for(lambda: console.events("logs"), timeout=4)
        app_logger.warning("after the outage")
        assert mon.flush() is True
    lines = _agent_lines(caplog)
    assert any("unreachable" in line for line in lines)
    assert any("reachable again" in line for line in lines)
    assert [r[4] for r in console.events("logs")] == ["order 2 paid", "after the outage"]


def test_warnings_of_a_flush_in_the_hosts_thread_are_not_captured(console, make_app,
                                                                   app_logger, caplog):
    """flush() (and close() at exit) send from the host's thread: the
    outage warnings they log are the agent's, not the application's."""
    app, mon = make_app(routes=_routes(app_logger), interval=60.0)
    assert mon.flush() is True
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        console.stop()
        assert mon.flush() is False
        console.start()
        app_logger.warning("after the outage")
        assert mon.flush() is True
        assert mon.flush() is True
    assert len(_agent_lines(caplog)) == 2
    assert [r[3:5] for r in console.events("logs")] == [["shop.orders", "after the outage"]]
