"""The Configuration page in headless Chromium against a real console
(python app.py) whose config folder the test fills: open a file in the
CodeMirror editor (highlighting, line numbers), type a syntax error (the line
is marked, Save is refused), fix it, save with a reason, see the change in
the history with its diff, and roll back with confirmation."""
from __future__ import annotations

import hashlib

import pytest

from tests.browser.conftest import running_console, sign_in_page, wait_js

SHOP = """\
# Demo shop settings
shop:
  name: Browser Shop
  max_cart_items: 50
database:
  password: browser-secret-1
"""
SCHEMA = '{"type": "object", "required": ["shop"]}\n'


@pytest.fixture(scope="module")
def config_console(tmp_path_factory, redis_url):
    """`python app.py` (demo off) with OPS_CONFIG_DIR on a folder of the test."""
    root = tmp_path_factory.mktemp("config-console")
    folder = root / "config"
    folder.mkdir()
    (folder / "shop.yaml").write_text(SHOP)
    (folder / "shop.schema.json").write_text(SCHEMA)
    (folder / "worker.toml").write_text("[worker]\nconcurrency = 4\n")
    env = {"OPS_DEMO": "false", "REDIS_URL": redis_url, "OPS_CONFIG_DIR": str(folder)}
    with running_console(root / "instance", env) as base:
        yield base, folder


def _type_at_end_of_line(page, line: int, text: str) -> None:
    page.locator(".CodeMirror-code > div").nth(line - 1).click()
    page.keyboard.press("End")
    page.keyboard.type(text)


def test_edit_validate_save_history_and_rollback(browser, config_console):
    base, folder = config_console
    context, page, watch = sign_in_page(browser, base)
    try:
        page.goto(f"{base}/config?file=shop.yaml")
        page.wait_for_selector("#config-editor .CodeMirror-line")
        # Line numbers and YAML highlighting; the admin sees the real secret.
        numbers = page.locator("#config-editor .CodeMirror-linenumber").all_inner_texts()
        assert [n for n in numbers if n][:3] == ["1", "2", "3"]
        assert page.locator("#config-editor .cm-comment").first.inner_text() \
            .startswith("# Demo shop")
        assert page.locator("#config-editor .cm-number").first.inner_text() == "50"
        assert "browser-secret-1" in page.inner_text("#config-editor")
        page.wait_for_selector("#config-valid")
        assert page.is_disabled("#config-save")            # nothing changed yet

        # A syntax error: its line is marked before saving, and Save is refused.
        _type_at_end_of_line(page, 3, ": [oops")
        page.wait_for_selector("#config-invalid")
        page.wait_for_selector("#config-editor .config-cm-error-line")
        assert page.locator("#config-editor .config-cm-error-line").count() == 1
        marked = page.locator("#config-editor .config-cm-error-line").inner_text()
        assert "Browser Shop: [oops" in marked                 # the line typed on
        assert page.locator("#config-editor .config-cm-marker").count() == 1
        error = page.locator("#config-error-list [data-config-line]")
        assert error.get_attribute("data-config-line") == "3"
        assert "Line 3, column 21" in error.inner_text()
        page.fill("#config-reason", "try to save a broken file")
        assert page.is_disabled("#config-save")
        assert folder.joinpath("shop.yaml").read_text() == SHOP

        # Fix it, then change a value: valid again, Save enabled.
        _type_at_end_of_line(page, 3, "")
        for _ in range(len(": [oops")):
            page.keyboard.press("Backspace")
        page.wait_for_selector("#config-valid")
        assert page.locator("#config-editor .config-cm-error-line").count() == 0
        _type_at_end_of_line(page, 4, "")
        page.keyboard.press("Backspace")
        page.keyboard.press("Backspace")
        page.keyboard.type("60")
        page.wait_for_selector("#config-dirty")
        page.fill("#config-reason", "more items per cart")
        wait_js(page, "!document.querySelector('#config-save').disabled")
        page.click("#config-save")
        page.locator(".ops-toast", has_text="Saved shop.yaml").wait_for()
        saved = folder.joinpath("shop.yaml").read_text()
        assert saved == SHOP.replace("max_cart_items: 50", "max_cart_items: 60")

        # The history: the edit (current) above the baseline, with its diff.
        entries = page.locator("#config-history .config-change")
        entries.first.wait_for()
        wait_js(page, 
            "document.querySelectorAll('#config-history .config-change').length === 2")
        newest = entries.nth(0)
        assert "more items per cart" in newest.inner_text()
        assert "current" in newest.inner_text()
        newest.locator("summary").click()
        diff = newest.locator(".config-diff").inner_text()
        assert "-  max_cart_items: 50" in diff and "+  max_cart_items: 60" in diff

        # Roll back to the baseline, with confirmation: exactly the old bytes.
        entries.nth(1).locator("button", has_text="Roll back").click()
        dialog = page.locator(".ops-confirm", has_text="Roll back this file?")
        dialog.wait_for()
        assert "shop.yaml" in page.inner_text("#config-rollback-text")
        dialog.locator("button", has_text="Roll back").click()
        page.locator(".ops-toast", has_text="Rolled shop.yaml back").wait_for()
        assert hashlib.sha256(folder.joinpath("shop.yaml").read_bytes()).hexdigest() == \
            hashlib.sha256(SHOP.encode()).hexdigest()
        wait_js(page, 
            "document.querySelectorAll('#config-history .config-change').length === 3")
        assert "Rollback" in entries.nth(0).inner_text()
        wait_js(page, 
            "document.querySelector('#config-editor').innerText.includes('max_cart_items: 50')")

        # Unsaved edits are not dropped silently: opening another file asks
        # first; declining keeps the edit, accepting opens the other file.
        _type_at_end_of_line(page, 1, " (draft)")
        page.wait_for_selector("#config-dirty")
        answers = []

        def answer(dialog):
            answers.append(dialog.message)
            dialog.accept() if len(answers) > 1 else dialog.dismiss()
        page.on("dialog", answer)
        page.locator(".config-file", has_text="worker.toml").click()
        page.wait_for_timeout(500)
        assert answers == ["Discard your unsaved changes to shop.yaml?"]
        assert page.get_attribute("#config-editor", "data-config-file") == "shop.yaml"
        assert "(draft)" in page.inner_text("#config-editor")

        # Another file from the browser: TOML, its own mode.
        page.locator(".config-file", has_text="worker.toml").click()
        wait_js(page, 
            "document.querySelector('#config-editor').getAttribute('data-config-file')"
            " === 'worker.toml'")
        assert page.locator("#config-editor .cm-number").first.inner_text() == "4"
        watch.assert_clean("config page")
    finally:
        context.close()
