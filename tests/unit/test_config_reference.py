"""The configuration reference is generated from the settings model, so the
README's table and .env.example cannot drift from what the console reads."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field

from dashapp import config_reference as ref
from dashapp.config import ROOT, Settings, _variable_for, load_settings

STALE = "run scripts/config-reference"


def _readme_table(text: str) -> str:
    start, end = text.index(ref.START), text.index(ref.END)
    return text[start + len(ref.START):end].strip("\n") + "\n"


def test_readme_table_is_up_to_date():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ref.START in readme and ref.END in readme, \
        f"README.md lacks the configuration markers: {STALE}"
    assert _readme_table(readme) == ref.markdown(), \
        f"README.md's configuration table is out of date: {STALE}"


def test_env_example_is_up_to_date():
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == ref.env_example(), \
        f".env.example is out of date: {STALE}"


def test_every_setting_appears_once_in_model_order():
    variables = [_variable_for(name) for name in Settings.model_fields]
    listed = [doc.variable for _, docs in ref.describe() for doc in docs]
    assert listed == variables
    table = ref.markdown()
    example = ref.env_example()
    for variable in variables:
        assert table.count(f"| `{variable}` |") == 1, variable
        assert example.count(f"\n# {variable}=") == 1, variable


def test_sections_split_the_model_in_order():
    sections = ref.describe()
    titles = [title for title, _ in sections]
    assert titles[0] == "Store and Redis"
    assert len(titles) == len(set(titles)), "a section title appears twice"
    assert all(docs for _, docs in sections), "an empty section"
    table = ref.markdown()
    positions = [table.index(f"#### {title}\n") for title in titles]
    assert positions == sorted(positions)


def test_defaults_and_bounds_come_from_the_model():
    rows = {line.split(" | ")[0].strip("| `"): line for line in ref.markdown().splitlines()
            if line.startswith("| `")}
    assert "`8051`" in rows["OPS_DEMO_PORT"] and "from 1 to 65535" in rows["OPS_DEMO_PORT"]
    assert "&gt; 0" in rows["OPS_SLOW_QUERY_MS"]
    assert "`development`, `production`" in rows["OPS_ENV"]
    assert "`true` or `false`" in rows["OPS_DEMO"]
    assert "at least 8 characters" in rows["OPS_ADMIN_PASSWORD"]
    assert "`redis://`" in rows["REDIS_URL"]
    # A default given only in words, not lost, and paths shown relative.
    assert "&lt;instance&gt;/backups" in rows["OPS_BACKUP_DIR"]
    assert "`./instance`" in rows["OPS_INSTANCE_DIR"]
    assert str(ROOT) not in ref.markdown() + ref.env_example()


def test_every_field_validator_is_put_in_words():
    """A new validator needs a line in config_reference.VALIDATOR_RULES, or
    its rule would be missing from the reference."""
    assert ref.unexplained_validators() == []


class _WithSecrets(Settings):
    api_password: str = Field("hunter2-hunter2", validation_alias=AliasChoices("X_PASSWORD"),
                              description="A password with a default. Default: hunter2.")
    signing_secret: str = Field("s3cr3t-default", validation_alias=AliasChoices("X_SECRET"),
                                description="A secret.")
    colour: Literal["red", "blue"] = Field("red", validation_alias=AliasChoices("X_COLOUR"),
                                           description="A colour.",
                                           json_schema_extra={"section": "Extras"})


def test_secret_defaults_are_never_printed():
    table, example = ref.markdown(_WithSecrets), ref.env_example(_WithSecrets)
    for secret in ("hunter2-hunter2", "s3cr3t-default"):
        assert secret not in table and secret not in example
    assert "| `X_SECRET` | (hidden) |" in table
    assert "\n# X_SECRET=\n" in example
    # A field may open a section of its own.
    assert "#### Extras" in table and "`red`, `blue`" in table


def test_env_example_values_are_all_valid(tmp_path, monkeypatch):
    """Uncomment every line of .env.example: the console accepts all of it."""
    lines = [line[2:] for line in ref.env_example().splitlines()
             if line.startswith("# ") and "=" in line.split(" ")[1]
             and line[2:].split("=")[0].isupper()]
    assert len(lines) == len(Settings.model_fields)
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    for name in Settings.model_fields:
        monkeypatch.delenv(_variable_for(name), raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.database_url == ref.EXAMPLES["database_url"]
    assert settings.report_schedule == ref.EXAMPLES["report_schedule"]


def test_the_script_checks_and_rewrites(tmp_path):
    """--check fails naming the stale files; a run rewrites them; --check passes."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    readme = (tmp_path / "README.md").read_text()
    start, end = readme.index(ref.START), readme.index(ref.END)
    (tmp_path / "README.md").write_text(
        readme[:start + len(ref.START)] + "\n| stale |\n" + readme[end:])
    (tmp_path / ".env.example").write_text("# old\n")
    script = [str(ROOT / "scripts" / "config-reference"), "--root", str(tmp_path)]

    check = subprocess.run(script + ["--check"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 1
    assert "README.md is out of date: run scripts/config-reference" in check.stderr
    assert ".env.example is out of date" in check.stderr

    run = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert subprocess.run(script + ["--check"], timeout=60).returncode == 0
    text = (tmp_path / "README.md").read_text()
    assert text.startswith(readme[:start]) and text.endswith(readme[end:]), \
        "only the part between the markers changes"
    assert (tmp_path / ".env.example").read_text() == ref.env_example()


def test_module_entry_point_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "dashapp.config_reference", "--markdown"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout == ref.markdown()


def test_missing_markers_are_reported(tmp_path):
    (tmp_path / "README.md").write_text("# no markers\n")
    (tmp_path / ".env.example").write_text("")
    proc = subprocess.run([str(ROOT / "scripts" / "config-reference"), "--root", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "lacks the markers" in proc.stderr and "Traceback" not in proc.stderr
    assert Path(tmp_path / "README.md").read_text() == "# no markers\n"
