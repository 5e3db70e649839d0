"""The Configuration page's callbacks called directly, as the signed-in user
of a request: the role rules the Dash endpoint cannot enforce by itself,
masking, live validation and save/rollback from the page."""
from __future__ import annotations

import sys

import dash
import pytest
from sqlalchemy import select

from dashapp.store.models import AuditEvent, ConfigAudit
from tests.integration.test_cache_api import as_user, toast_of

SHOP = "shop:\n  name: Demo\n  max_cart_items: 50\ndatabase:\n  password: page-secret-1\n"


def page():
    """The page module Dash loaded (importing it again would register twice)."""
    return sys.modules[next(p["module"] for p in dash.page_registry.values()
                            if p["path"] == "/config")]


@pytest.fixture
def folder(app):
    path = app.extensions["ops"].settings.config_folder
    path.mkdir(parents=True, exist_ok=True)
    (path / "shop.yaml").write_text(SHOP)
    (path / "shop.schema.json").write_text(
        '{"properties": {"shop": {"properties": {"max_cart_items": {"minimum": 1}}}}}')
    return path


def _text(component) -> str:
    return str(component.to_plotly_json() if hasattr(component, "to_plotly_json")
               else component)


def test_viewer_sees_masked_read_only_file_and_cannot_save(app, folder):
    mod = page()
    with as_user(app, "viewer", "vera") as props:
        layout = mod.layout(file="shop.yaml")
        text = _text(layout)
        assert "page-secret-1" not in text and "Read-only" in text
        doc = mod.open_doc("shop.yaml")
        assert doc["masked"] and not doc["editable"]
        assert mod.save(doc, SHOP.replace("Demo", "Hacked"), "because") is None
        assert "needs the admin role" in toast_of(props)
        history = _text(mod.load_history("shop.yaml"))
        assert "page-secret-1" not in history
    assert folder.joinpath("shop.yaml").read_text() == SHOP
    with app.extensions["ops"].store.session() as sess:
        denied = sess.scalars(select(AuditEvent).where(
            AuditEvent.action == "permission_denied")).all()
    assert [(e.actor, e.outcome) for e in denied] == [("vera", "denied")]


def test_operator_cannot_roll_back(app, folder):
    mod = page()
    with as_user(app, "admin", "ada"):
        doc = mod.open_doc("shop.yaml")
        assert mod.save(doc, SHOP.replace("Demo", "Two"), "rename") is not None
    with app.extensions["ops"].store.session() as sess:
        baseline = sess.scalars(select(ConfigAudit).where(ConfigAudit.kind == "baseline")).one()
    with as_user(app, "operator", "otto") as props:
        assert mod.run_rollback({"name": "shop.yaml", "version": baseline.version_after}) is None
        assert "needs the admin role" in toast_of(props)
    assert "Two" in folder.joinpath("shop.yaml").read_text()


def test_draft_validation_marks_the_line_and_blocks_save(app, folder):
    mod = page()
    with as_user(app, "admin", "ada"):
        doc = mod.open_doc("shop.yaml")
        assert doc["content"] == SHOP and doc["editable"]
        broken = {"name": "shop.yaml", "content": SHOP.replace("name: Demo", "name: [Demo")}
        marks, status, errors, save_disabled = mod.check_draft(broken, doc)
        assert marks[0]["line"] == 3 and save_disabled is True   # where YAML noticed
        assert "1 error" in _text(status) and "data-config-line" in _text(errors)
        schema_bad = {"name": "shop.yaml", "content": SHOP.replace("50", "0")}
        marks, _status, _errors, save_disabled = mod.check_draft(schema_bad, doc)
        assert marks[0]["source"] == "schema" and marks[0]["line"] == 3 and save_disabled
        good = {"name": "shop.yaml", "content": SHOP.replace("50", "60")}
        marks, status, _errors, save_disabled = mod.check_draft(good, doc)
        assert marks == [] and save_disabled is False and "Unsaved changes" in _text(status)
        unchanged = {"name": "shop.yaml", "content": SHOP}
        assert mod.check_draft(unchanged, doc)[3] is True     # nothing to save


def test_admin_saves_then_rolls_back_from_the_page(app, folder):
    mod = page()
    with as_user(app, "admin", "ada") as props:
        doc = mod.open_doc("shop.yaml")
        assert mod.save(doc, SHOP.replace("50", "0"), "invalid") is None
        assert "error" in toast_of(props)
        assert mod.save(doc, SHOP.replace("50", "70"), "") is None
        assert "reason" in toast_of(props).lower()
        result = mod.save(doc, SHOP.replace("50", "70"), "more items")
        assert result["changed"] and "Saved shop.yaml" in toast_of(props)
        stale = mod.save(doc, SHOP.replace("50", "80"), "stale tab")   # doc is old now
        assert stale is None and "changed since you read it" in toast_of(props)
        assert "max_cart_items: 70" in folder.joinpath("shop.yaml").read_text()
        pending = {"name": "shop.yaml", "version": doc["version"], "expected": result["version"]}
        assert mod.run_rollback(pending) is not None
        assert "Rolled shop.yaml back" in toast_of(props)
    assert folder.joinpath("shop.yaml").read_text() == SHOP
    with app.extensions["ops"].store.session() as sess:
        actions = [(e.action, e.outcome) for e in sess.scalars(
            select(AuditEvent).where(AuditEvent.action.like("config_%"))
            .order_by(AuditEvent.id))]
    assert actions == [("config_save", "failure"), ("config_save", "failure"),
                       ("config_save", "success"), ("config_save", "failure"),
                       ("config_rollback", "success")]
