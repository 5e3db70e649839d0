"""The agent is a distribution of its own: it imports nothing of the
console, and its syntax is Python 3.9's (it runs in its hosts' environments).
The agent's own suite (agent/tests, run by scripts/agent-venvs on 3.9 and
the newest Python) proves it works there; this catches a slip at once."""
from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent" / "ops_agent"


def _modules():
    files = sorted(AGENT.rglob("*.py"))
    assert len(files) >= 10, files
    return files


def test_the_agent_imports_nothing_of_the_console():
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names
                          if n == "dashapp" or n.startswith("dashapp.")]
    assert offenders == []


def test_the_agent_parses_as_python_3_9():
    for path in _modules():
        ast.parse(path.read_text(), str(path), feature_version=(3, 9))


def test_runtime_annotations_need_no_newer_python():
    """`X | None` in an annotation is fine only where annotations are not
    evaluated: every agent module defers them."""
    for path in _modules():
        source = path.read_text()
        if "|" in source and ("-> " in source or ": " in source):
            assert "from __future__ import annotations" in source or \
                "|" not in "".join(line for line in source.splitlines()
                                   if "def " in line), path
