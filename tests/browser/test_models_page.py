"""The ML models page in headless Chromium against a real console whose demo
registers its scikit-learn models and serves predictions: the list, metric
cards equal to the API's, the classifier's charts, a version comparison, the
regressor, live labels, and no browser errors."""
from __future__ import annotations

import json
import urllib.request

from tests.browser.conftest import sign_in_page, wait_js
from tests.conftest import ADMIN_PASSWORD


def api(base: str, path: str) -> dict:
    req = urllib.request.Request(
        f"{base}/api/auth/token", method="POST",
        data=json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        token = json.load(resp)["token"]
    req = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def test_models_page_metrics_charts_comparison_and_regressor(browser, console):
    context, page, watch = sign_in_page(browser, console)
    try:
        page.goto(f"{console}/models")
        page.wait_for_selector("#models-list .ag-row")
        names = page.locator("#models-list .ag-row [col-id='name']").all_inner_texts()
        assert sorted(names) == ["churn", "price"]

        # The classifier's newest version: cards say what the API says.
        page.wait_for_selector("#models-card-accuracy")
        expected = api(console, "/api/ml/model/churn/metrics")["metrics"]["accuracy"]
        shown = page.inner_text("#models-card-accuracy .ops-metric__value")
        assert abs(float(shown) - expected) < 0.01, (shown, expected)
        for graph in ("#models-confusion", "#models-roc", "#models-pr", "#models-versions",
                      "#models-importance"):
            page.wait_for_selector(f"{graph} .main-svg")
        assert "feature_importances_" in page.inner_text("#models-detail")

        # The demo registers an older, weaker version: compared side by side.
        assert page.input_value("#models-compare") == "0.9.0"
        page.wait_for_selector("#models-compare-table .ag-row")
        verdicts = page.locator("#models-compare-table [col-id='verdict']").all_inner_texts()
        assert "better" in verdicts
        page.select_option("#models-compare", "none")
        page.wait_for_selector("#models-compare-note")

        # The regressor: residual charts instead of the confusion matrix.
        page.select_option("#models-model", "price")
        page.wait_for_selector("#models-card-rmse")
        page.wait_for_selector("#models-residuals .main-svg")
        assert page.locator("#models-confusion").count() == 0

        # Live labels: the demo reports outcomes a few predictions later.
        page.select_option("#models-model", "churn")
        page.wait_for_selector("#models-confusion .main-svg")
        page.locator("label", has_text="Live labels").click()
        wait_js(page, 
            "document.querySelector('#models-card-accuracy .ops-metric__footnote')"
            "?.innerText.includes('labelled live') || "
            "document.querySelector('#models-notice')?.innerText.includes('labelled')")
        page.wait_for_selector("#models-drift .ag-row")
        watch.assert_clean("models page")
    finally:
        context.close()
