"""Commands in the console's answer reach the handler registered for their
type (in the shipper's thread, never a request's) and their results go
back to the console with the next batch."""
from __future__ import annotations

import threading
import time


def test_commands_reach_their_handler_and_results_come_back(console, make_app):
    app, mon = make_app()
    seen = []

    def rerun(command):
        seen.append((command, threading.current_thread().name))
        return {"outcome": "succeeded", "message": f"ran {command['job']}"}

    def broken(command):
        raise ValueError("no such profile")

    mon.shipper.on_command("rerun", rerun)
    mon.shipper.on_command("profile", broken)
    mon.shipper.on_command("quiet", lambda command: None)
    console.send_commands(
        {"id": "c-1", "type": "rerun", "job": "nightly-report"},
        {"id": "c-2", "type": "profile", "seconds": 5},
        {"id": "c-3", "type": "teleport"},
        {"id": "c-4", "type": "quiet"},
        "not a command")
    results = console.wait_for(lambda: len(console.events("command_results")) >= 3 and
                               console.events("command_results"), timeout=4)
    assert seen == [({"id": "c-1", "type": "rerun", "job": "nightly-report"},
                     "ops-agent-shipper")]
    by_id = {r["id"]: r for r in results}
    assert set(by_id) == {"c-1", "c-2", "c-3"}  # a handler may answer nothing
    assert by_id["c-1"] == {"id": "c-1", "type": "rerun", "outcome": "succeeded",
                            "message": "ran nightly-report"}
    assert by_id["c-2"]["outcome"] == "failed"
    assert by_id["c-2"]["message"] == "ValueError: no such profile"
    assert by_id["c-3"]["outcome"] == "failed" and by_id["c-3"]["type"] == "teleport"
    # the shipper goes on after a handler failed
    before = len(console.accepted())
    console.wait_for(lambda: len(console.accepted()) > before, timeout=3)


def test_results_survive_an_outage(console, make_app):
    """A result is durable: when the batch carrying it fails it is sent again."""
    app, mon = make_app(interval=60.0)
    mon.shipper.on_command("rerun", lambda c: {"outcome": "succeeded"})
    console.send_commands({"id": "c-9", "type": "rerun"})
    assert mon.flush() is True          # the answer brings the command
    console.mode = "503"
    assert mon.flush() is False         # its result does not get through
    console.mode = "ok"
    assert mon.flush() is True
    sent = [a.batch["events"].get("command_results") for a in console.attempts]
    assert sent[1] == sent[2] == [{"id": "c-9", "type": "rerun", "outcome": "succeeded"}]
    assert console.events("command_results") == sent[2]


def test_a_slow_handler_never_delays_requests(console, make_app):
    app, mon = make_app()
    app.add_url_rule("/", "index", lambda: "ok")
    started, done = threading.Event(), threading.Event()

    def slow(command):
        started.set()
        done.wait(5)
        return {"outcome": "succeeded"}

    mon.shipper.on_command("slow", slow)
    console.send_commands({"id": "c-5", "type": "slow"})
    assert started.wait(4)
    client = app.test_client()
    t0 = time.perf_counter()
    for _ in range(20):
        assert client.get("/").status_code == 200
    assert time.perf_counter() - t0 < 2.0
    done.set()
    console.wait_for(lambda: console.events("command_results") and
                     len(console.events("requests")) >= 20, timeout=4)
    assert [r[1] for r in console.events("requests")] == ["/"] * 20
