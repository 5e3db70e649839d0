"""create_app(): every module has a page, every piece hangs off one Ops object."""
from __future__ import annotations

import dash

from dashapp.modules import MODULES
from tests.helpers import sign_in


def test_every_module_has_a_registered_page(app):
    paths = {page["path"] for page in dash.page_registry.values()}
    assert {m.path for m in MODULES} <= paths


def test_pages_are_served_after_sign_in(app, client):
    sign_in(client)
    for module in MODULES:
        resp = client.get(module.path)
        assert resp.status_code == 200, module.path
        # The HTML shell loads only vendored, same-origin assets.
        html = resp.get_data(as_text=True)
        assert "cdn." not in html and "unpkg" not in html and "googleapis" not in html


def test_close_is_idempotent(app):
    ops = app.extensions["ops"]
    ops.close()
    ops.close()


def test_console_scheduler_runs_rollups_and_retention(settings, redis_client):
    from dashapp import create_app
    ops = create_app(settings.model_copy(update={"scheduler": True})).server.extensions["ops"]
    try:
        assert ops.scheduler.running
        assert {j.id for j in ops.scheduler.get_jobs()} == {"ops_rollup", "ops_retention",
                                                          "ops_redis_sample", "ops_ingest",
                                                          "ops_backup_schedules", "ops_alerts"}
    finally:
        ops.close()
    assert not ops.scheduler.running
