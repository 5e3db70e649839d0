"""The configuration reference, generated from `dashapp.config.Settings`.

The README's configuration table (between `<!-- config:start -->` and
`<!-- config:end -->`) and `.env.example` are written from the settings
model, so they cannot drift from what the console reads: each field's
variable name, default, allowed values and bounds come from the model, its
meaning from the field's description. `scripts/config-reference` (or
`python -m dashapp.config_reference`) rewrites both; `--check` only reports
whether they are up to date (a unit test runs the same check).

Secrets' defaults are never printed: a field whose name says it holds a
secret (password, secret, token, DSN) is shown as "unset" or "(hidden)".
"""
from __future__ import annotations

import argparse
import re
import sys
import textwrap
import typing
from dataclasses import dataclass
from pathlib import Path

from dashapp.config import ROOT, Settings, _variable_for
from dashapp.core.scrub import is_secret_name

START = "<!-- config:start -->"
END = "<!-- config:end -->"
SCRIPT = "scripts/config-reference"

# A section begins at each of these fields and runs, in the model's order,
# until the next one. A setting added later lands in the section of the
# field before it; a field may also start a section of its own with
# Field(..., json_schema_extra={"section": "Title"}).
SECTION_STARTS: dict[str, str] = {
    "instance_dir": "Store and Redis",
    "secret_key": "Sign-in",
    "demo": "Demo application",
    "env": "Environment and logging",
    "app_database_url": "SQL queries and retention",
    "scheduler": "Background work and migrations",
    "backup_targets": "Backups",
    "config_dir": "Configuration files",
    "log_files": "Logs",
    "workers": "Deployment",
    "rate_limit_enabled": "Rate limits",
    "sentry_dsn": "Error reporting and metrics",
    "alert_interval": "Alerts",
    "report_dir": "Reports",
}

# Example values for .env.example where the default is unset (a field's own
# `examples=[...]` wins). Each must be a valid value: a test loads them all.
EXAMPLES: dict[str, str] = {
    "database_url": "postgresql+psycopg://ops:secret@127.0.0.1:5432/ops",
    "redis_url": "redis://127.0.0.1:6379/0",
    "redis_instances": "sessions=redis://10.0.0.5:6379/0,queue=redis://10.0.0.6:6379/1",
    "secret_key": "change-me-to-64-random-hex-characters",
    "admin_password": "at-least-8-characters",
    "app_database_url": "postgresql+psycopg://app:secret@127.0.0.1:5432/app",
    "backup_targets": "shop=postgresql+psycopg://app@db.internal/shop",
    "backup_dir": "/var/backups/ops-console",
    "config_dir": "/etc/myapp",
    "log_files": "/var/log/myapp/*.log,/var/log/myapp/worker.jsonl",
    "log_dirs": "/var/log/myapp",
    "sentry_dsn": "https://public-key@o0.ingest.sentry.io/0",
    "metrics_token": "a-long-random-scrape-token",
    "report_dir": "/var/lib/ops-console/reports",
    "report_schedule": "0 7 * * *",
    "chromium_path": "/usr/bin/chromium",
}

# What each field validator of Settings accepts, in words (validators are
# code, not metadata). Keyed by the validator's name; a dict maps field names
# ("*": any other field). A test fails when a validator is missing here.
VALIDATOR_RULES: dict[str, str | dict[str, str]] = {
    "_password_strength": "at least 8 characters",
    "_rate_limit_shape": "limits such as `10/minute` or `100 per hour;1000 per day`",
    "_crontab_shape": "a 5-field crontab line (UTC)",
    "_instances_shape": "comma-separated `name=url` pairs of `redis://`, "
                        "`rediss://` or `unix://` URLs; not `default`",
    "_backup_targets_shape": "comma-separated `name=url` pairs of SQLite files "
                             "or PostgreSQL databases",
    "_url_shape": {"redis_url": "a `redis://`, `rediss://` or `unix://` URL",
                   "*": "a SQLAlchemy database URL"},
}

DEFAULT_SENTENCE = re.compile(r"\s*Default:\s*(?P<value>.+?)(?:\.(?=\s|$)|$)")


@dataclass(frozen=True)
class SettingDoc:
    """One setting as the reference shows it."""

    field: str
    variable: str
    default: str        # as shown (markdown-free), "unset" when there is none
    allowed: str        # values/bounds in words, "" when anything goes
    meaning: str        # the description without its "Default: ..." sentence
    secret: bool
    env_value: str      # the value written in .env.example ("" = none)


def is_secret(field: str) -> bool:
    """By the console's one deny-list (dashapp.core.scrub)."""
    return is_secret_name(field)


def _number(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _plain(value) -> str:
    """A default as a user would type it into the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Path):
        try:
            return "./" + str(value.resolve().relative_to(ROOT))
        except ValueError:
            return str(value)
    return str(value)


def _validator_rules(model: type) -> dict[str, list[str]]:
    """{field: [rule, ...]} from the model's field validators."""
    rules: dict[str, list[str]] = {}
    decorators = model.__pydantic_decorators__.field_validators
    for name, decorator in decorators.items():
        rule = VALIDATOR_RULES.get(name)
        for field in decorator.info.fields:
            text = rule.get(field, rule.get("*")) if isinstance(rule, dict) else rule
            if text:
                rules.setdefault(field, []).append(text)
    return rules


def unexplained_validators(model: type = Settings) -> list[str]:
    """Field validators of `model` that VALIDATOR_RULES does not put in words."""
    return sorted(set(model.__pydantic_decorators__.field_validators) - set(VALIDATOR_RULES))


def _allowed(info, rules: list[str] = ()) -> str:
    annotation = info.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if len(args) == 1 else annotation
    if typing.get_origin(base) is typing.Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typing.get_args(base))
    if base is bool:
        return "`true` or `false`"
    low = high = None
    low_open = high_open = False
    parts: list[str] = []
    for meta in info.metadata:
        if getattr(meta, "ge", None) is not None:
            low = meta.ge
        elif getattr(meta, "gt", None) is not None:
            low, low_open = meta.gt, True
        if getattr(meta, "le", None) is not None:
            high = meta.le
        elif getattr(meta, "lt", None) is not None:
            high, high_open = meta.lt, True
        if getattr(meta, "min_length", None) is not None:
            parts.append(f"at least {meta.min_length} characters")
        if getattr(meta, "max_length", None) is not None:
            parts.append(f"at most {meta.max_length} characters")
        if getattr(meta, "pattern", None):
            parts.append(f"matches `{meta.pattern}`")
    kind = {int: "integer", float: "number"}.get(base)
    if low is not None and high is not None and not (low_open or high_open):
        parts.insert(0, f"{kind or 'value'} from {_number(low)} to {_number(high)}")
    elif low is not None or high is not None:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '≥'} {_number(low)}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '≤'} {_number(high)}")
        parts.insert(0, f"{kind or 'value'} {' and '.join(bounds)}")
    elif kind:
        parts.insert(0, kind)
    elif base is Path:
        parts.insert(0, "a path")
    parts[len(parts):] = [r for r in rules if r not in parts]
    return "; ".join(parts)


def describe(model: type = Settings) -> list[tuple[str, list[SettingDoc]]]:
    """[(section title, [SettingDoc, ...]), ...] in the model's order."""
    sections: list[tuple[str, list[SettingDoc]]] = []
    rules = _validator_rules(model)
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        title = extra.get("section") or SECTION_STARTS.get(name)
        if title or not sections:
            sections.append((title or "General", []))
        description = " ".join((info.description or "").split())
        found = DEFAULT_SENTENCE.search(description)
        default_text = found.group("value").strip() if found else ""
        meaning = DEFAULT_SENTENCE.sub("", description).strip() if found else description
        secret = is_secret(name)
        field_default = info.get_default(call_default_factory=True)
        if field_default is None:
            default = default_text or "unset"
        elif secret:
            default = "(hidden)"
        else:
            default = _plain(field_default)
        if info.examples:
            example = _plain(info.examples[0])
        elif name in EXAMPLES:
            example = EXAMPLES[name]
        elif field_default is not None and not secret:
            example = _plain(field_default)
        else:
            example = ""
        variable = _variable_for(name) if model is Settings else _alias_of(model, name)
        sections[-1][1].append(SettingDoc(
            field=name, variable=variable, default=default, allowed=_allowed(info, rules.get(name, [])),
            meaning=meaning, secret=secret, env_value=example))
    return sections


def _alias_of(model: type, name: str) -> str:
    alias = getattr(model.model_fields[name], "validation_alias", None)
    choices = getattr(alias, "choices", None)
    return str(choices[0]) if choices else name.upper()


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped; outside `code`, <, > and * too
    (GitHub would take <instance> for an HTML tag and drop it)."""
    pieces = text.replace("|", "\\|").replace("\n", " ").split("`")
    for i in range(0, len(pieces), 2):
        pieces[i] = (pieces[i].replace("&", "&amp;").replace("<", "&lt;")
                     .replace(">", "&gt;").replace("*", "\\*"))
    return "`".join(pieces)


def _code_default(default: str, field_default) -> str:
    if field_default is None or default == "(hidden)":
        return _cell(default)
    return f"`{_cell(default)}`"


def markdown(model: type = Settings) -> str:
    """The README's configuration reference: one table per section."""
    out = [f"<!-- Generated by {SCRIPT} from dashapp/config.py; do not edit by hand. -->"]
    for title, docs in describe(model):
        out += ["", f"#### {title}", "",
                "| Variable | Default | Allowed | Meaning |", "|---|---|---|---|"]
        for doc in docs:
            default = _code_default(
                doc.default, model.model_fields[doc.field].get_default(call_default_factory=True))
            out.append(f"| `{doc.variable}` | {default} | {_cell(doc.allowed)} "
                       f"| {_cell(doc.meaning)} |")
    return "\n".join(out) + "\n"


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, width=76, initial_indent="# ", subsequent_indent="# ",
                         break_long_words=False, break_on_hyphens=False)


def env_example(model: type = Settings) -> str:
    """The whole of .env.example: every variable, commented out."""
    out = [
        "# Ops Console settings. Copy to .env (or export the variables); every one",
        "# is optional. Invalid values stop start-up with one line naming the",
        "# variable. Values shown are the defaults, or examples where the default",
        "# is unset.",
        f"# Generated by {SCRIPT} from dashapp/config.py:",
        "# edit the descriptions there and run the script, not this file.",
    ]
    for title, docs in describe(model):
        out += ["", f"# ===== {title} " + "=" * max(3, 68 - len(title))]
        for doc in docs:
            out.append("")
            text = doc.meaning
            if doc.default not in ("", "unset") and doc.default != doc.env_value:
                text += f" Default: {doc.default.replace('`', '')}."
            elif doc.default == "unset":
                text += " Default: unset."
            if doc.allowed:
                text += f" Allowed: {doc.allowed.replace('`', '')}."
            out += _comment(text)
            out.append(f"# {doc.variable}={_env_quote(doc.env_value)}")
    return "\n".join(out) + "\n"


def _env_quote(value: str) -> str:
    return f"'{value}'" if any(c in value for c in " #*\"") else value


def replace_between_markers(text: str, table: str) -> str:
    """README text with the generated table between the markers."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the markers {START} ... {END}")
    return text[:start + len(START)] + "\n" + table + text[end:]


def outdated(root: Path = ROOT, model: type = Settings) -> list[str]:
    """Files under `root` that differ from what the generator writes."""
    stale = []
    readme = (root / "README.md").read_text(encoding="utf-8")
    if replace_between_markers(readme, markdown(model)) != readme:
        stale.append("README.md")
    example = root / ".env.example"
    if not example.exists() or example.read_text(encoding="utf-8") != env_example(model):
        stale.append(".env.example")
    return stale


def write(root: Path = ROOT, model: type = Settings) -> list[str]:
    """Rewrite README.md's table and .env.example; return the files changed."""
    changed = outdated(root, model)
    if "README.md" in changed:
        path = root / "README.md"
        path.write_text(replace_between_markers(path.read_text(encoding="utf-8"),
                                                markdown(model)), encoding="utf-8")
    if ".env.example" in changed:
        (root / ".env.example").write_text(env_example(model), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=SCRIPT, description="Write the configuration reference (README.md's "
        "table and .env.example) from dashapp.config.Settings.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true",
                       help="only report whether the files are up to date (exit 1 if not)")
    group.add_argument("--markdown", action="store_true", help="print the table")
    group.add_argument("--env-example", action="store_true", help="print .env.example")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown())
        return 0
    if args.env_example:
        sys.stdout.write(env_example())
        return 0
    try:
        if args.check:
            stale = outdated(args.root)
            for name in stale:
                print(f"{name} is out of date: run {SCRIPT}", file=sys.stderr)
            return 1 if stale else 0
        changed = write(args.root)
    except ValueError as exc:  # README.md without the markers
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("updated: " + ", ".join(changed) if changed else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
