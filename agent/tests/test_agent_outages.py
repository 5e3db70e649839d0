"""When the console is down, slow or refusing: the host's requests never
wait, events are dropped and counted (the count arrives with the next
accepted batch), buffers stay bounded, the host's log gets one warning per
outage, and the durable kinds (a job run's end, a command's result) are
retried."""
from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import create_engine, text

from conftest import elapsed
from ops_agent import protocol
from ops_agent.transport import HttpSink


def _routes(engine=None, logger=None, sleep=0.0):
    def routes(app):
        @app.route("/work")
        def work():
            if sleep:
                time.sleep(sleep)
            if engine is not None:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            if logger is not None:
                logger.info("worked")
            return "done"
    return routes


def _until(condition, timeout: float = 6.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("ops_agent") and r.levelno >= logging.WARNING]


def _refused_events(console) -> int:
    """Events in the batches the console saw and did not accept."""
    return sum(protocol.count_events(a.batch["events"]) for a in console.attempts
               if not a.accepted and a.batch is not None)


def _dropped_reported(console) -> int:
    return sum(b["dropped"] for b in console.accepted())


def _work_requests(console) -> int:
    return sum(1 for r in console.events("requests") if r[1] == "/work")


def test_console_down_then_back(console, make_app, caplog):
    app, mon = make_app(routes=_routes())
    client = app.test_client()
    console.wait_for(console.accepted)  # it ran, then the console went away
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        console.stop()
        for _ in range(20):
            assert client.get("/work").status_code == 200
        _until(lambda: mon.shipper.in_outage)
        for _ in range(10):
            assert client.get("/work").status_code == 200
        assert mon.dropped > 0
        console.start()
        console.wait_for(lambda: _work_requests(console) + _dropped_reported(console) >= 30,
                         timeout=6)
        _until(lambda: not mon.shipper.in_outage)  # the answer handled
    # every request of the outage is either shipped or counted, never both
    assert _work_requests(console) + _dropped_reported(console) == 30
    assert _dropped_reported(console) == mon.dropped
    warnings = _warnings(caplog)
    assert len(warnings) == 2, warnings
    assert "unreachable" in warnings[0] and "dropped and counted" in warnings[0]
    assert "reachable again" in warnings[1]
    assert f"{mon.dropped} events dropped" in warnings[1]


def test_a_hanging_console_never_delays_requests(console, make_app, app_logger, tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.connect():
        pass  # the dialect's first-connect queries are not the test's
    sink = HttpSink(console.endpoint, "test-key-123", timeout=3.0)
    app, mon = make_app(routes=_routes(engine, app_logger, sleep=0.02), engine=engine,
                        sink=sink, buffer_size=10)
    client = app.test_client()
    console.wait_for(console.accepted)
    console.hang(30)
    assert console.hanging.wait(3), "the shipper did not POST"
    # The shipper's thread is stuck in its POST: requests go on as usual,
    # each as long as its own work (20 ms), and what they record stays
    # bounded (10 requests, 10 statements; the rest dropped and counted).
    latencies = [elapsed(lambda: client.get("/work")) for _ in range(40)]
    assert console.hanging.is_set(), "measured after the POST ended"
    assert max(latencies) < 0.02 + 0.5, latencies
    assert mon.buffered == 20
    assert mon.dropped == 60
    # the agent gives up on the POST (3 s), the console answers again
    _until(lambda: mon.shipper.in_outage)
    console.mode = "ok"
    console.release()
    assert mon.flush() is True
    assert _work_requests(console) == 10
    assert [q[2] for q in console.events("queries")] == ["SELECT ?"] * 10
    assert [r[4] for r in console.events("logs")] == ["worked"] * 40
    assert _dropped_reported(console) == mon.dropped == 60 + _refused_events(console)
    engine.dispose()


def test_429_waits_as_long_as_the_console_asks(console, make_app, caplog):
    app, mon = make_app(routes=_routes())
    client = app.test_client()
    console.wait_for(console.accepted)
    console.mode, console.retry_after = "429", "2.5"
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        client.get("/work")
        refused = console.wait_for(
            lambda: [a for a in console.attempts if a.status == 429], timeout=3)[0]
        console.mode = "ok"
        client.get("/work")
        console.wait_for(lambda: _work_requests(console) >= 1, timeout=5)
        _until(lambda: not mon.shipper.in_outage)
    after = console.attempts[console.attempts.index(refused) + 1]
    assert after.accepted and after.at - refused.at >= 2.4  # not its own 1 s back-off
    assert _dropped_reported(console) == _refused_events(console) == 1
    assert _work_requests(console) == 1
    warnings = _warnings(caplog)
    assert len(warnings) == 2 and "answered 429: slow down" in warnings[0], warnings


def test_503_backs_off_with_one_warning_per_outage(console, make_app, caplog):
    app, mon = make_app(routes=_routes())
    client = app.test_client()
    console.wait_for(console.accepted)
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        for outage in (1, 2):
            console.mode = "503"
            before = len(console.attempts)
            client.get("/work")
            if outage == 1:  # the shipper's thread, backing off
                refused = console.wait_for_attempts(before + 3, timeout=8)[before:]
                assert [a.status for a in refused] == [503, 503, 503]
                gaps = [b.at - a.at for a, b in zip(refused, refused[1:])]
                assert gaps[0] >= 0.9 and gaps[1] >= 1.9, gaps
            else:  # flush() in the host's thread
                assert mon.flush() is False and mon.flush() is False
            assert len(_warnings(caplog)) == 2 * outage - 1
            console.mode = "ok"
            assert mon.flush() is True
            assert len(_warnings(caplog)) == 2 * outage
    warnings = _warnings(caplog)
    assert ["answered 503" in w for w in warnings] == [True, False, True, False]
    assert _dropped_reported(console) == _refused_events(console) == 2


@pytest.mark.parametrize("mode, says", [
    ("unsupported", "console answered 400: batch format 1 is not one this console reads"),
    ("401", "console answered 401: unknown or revoked ingest key"),
])
def test_refused_for_good(console, make_app, caplog, mode, says):
    """A format the console does not read or a revoked key: warned at once
    (no start-up grace), nothing retried, everything counted."""
    app, mon = make_app(routes=_routes(), interval=60.0)
    jobs = mon.shipper.channel("jobs", 100)
    console.mode = mode
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        app.test_client().get("/work")
        jobs.put({"job": "nightly", "state": "succeeded"})
        assert mon.flush() is False
        assert not jobs.items  # a durable kind, but retrying cannot help
        assert mon.flush() is False
        console.mode = "ok"
        assert mon.flush() is True
    assert len(console.accepted()) == 1 and console.events("jobs") == []
    assert _dropped_reported(console) == 2 == _refused_events(console)
    warnings = _warnings(caplog)
    assert len(warnings) == 2 and says in warnings[0], warnings


def test_durable_kinds_are_retried_and_bounded(console, make_app):
    app, mon = make_app(interval=60.0)
    jobs = mon.shipper.channel("jobs", 5)
    assert mon.flush() is True
    console.mode = "503"
    for n in range(3):
        jobs.put({"run": n})
    assert mon.flush() is False
    assert mon.flush() is False
    assert [a.batch["events"]["jobs"] for a in console.attempts[-2:]] == [
        [{"run": 0}, {"run": 1}, {"run": 2}]] * 2
    for n in range(3, 8):
        jobs.put({"run": n})  # two more than it holds
    assert len(jobs.items) == 5
    console.mode = "ok"
    assert mon.flush() is True
    assert console.events("jobs") == [{"run": n} for n in range(5)]
    assert console.accepted()[-1]["dropped"] == 3  # the three that found no room


def test_a_console_that_starts_after_the_host_is_no_outage(console, make_app, caplog):
    """One compose file, one boot: the host is often up before its console.
    Its first failed sends are not worth a warning in the host's log."""
    console.stop()
    with caplog.at_level(logging.WARNING, logger="ops_agent"):
        app, mon = make_app()
        _until(lambda: mon.shipper.in_outage)
        console.start()
        console.wait_for(console.accepted, timeout=5)
        _until(lambda: not mon.shipper.in_outage)
    assert _warnings(caplog) == []
