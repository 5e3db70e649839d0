"""Exports pass every text cell through the console's scrubber: a row that
holds a secret or a database error's values (recorded before they were
scrubbed, or pasted into a view) never reaches the CSV or HTML file."""
from __future__ import annotations

import io
import zipfile

import pytest

ROWS = [
    [1, "OperationalError: connect postgres://app:exp0rt-pw@db/shop failed"],
    [2, "(sqlite3.IntegrityError) UNIQUE constraint failed: account.email\n"
        "[SQL: INSERT INTO account (email) VALUES (?)]\n[parameters: ('ann.x@example.com',)]"],
    [3, "retry with api_key=k-exp0rt-77"],
    [4, "cache key products:42 miss"],
]
EXPORT = {"page": "Jobs", "time_range": "24 h",
          "tables": [{"title": "Runs", "columns": [{"field": "id", "header": "Run"},
                                                    {"field": "error", "header": "Error"}],
                      "rows": ROWS}]}
SECRETS = ("exp0rt-pw", "ann.x@example.com", "k-exp0rt-77")


@pytest.mark.parametrize("fmt", ["html", "zip"])
def test_exported_tables_hold_no_secrets(client, viewer, fmt):
    resp = client.post("/api/reports/export", json={**EXPORT, "format": fmt}, headers=viewer)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
            text = "\n".join(zf.read(n).decode("utf-8-sig") for n in zf.namelist()
                             if n.endswith((".csv", ".html", ".txt")))
    else:
        text = resp.get_data(as_text=True)
    assert [s for s in SECRETS if s in text] == []
    assert "postgres://app:***@db/shop" in text and "[parameters: ***]" in text
    assert "cache key products:42 miss" in text and "INSERT INTO account" in text
