"""The user's own settings never reach the tests (tests/conftest.py clears them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = {
    "MEM_SESSION": "x",
    "MEM_LOCK_TIMEOUT": "0",
    "MEM_IDENTITY": "/nonexistent",
    "MEM_SOMETHING_NEW": "1",
    "GIT_DIR": "/nonexistent",
    "GIT_AUTHOR_DATE": "2001-01-01T00:00:00",
    "NO_COLOR": "1",
    "EDITOR": "false",
    "VISUAL": "false",
    "LC_ALL": "de_DE.UTF-8",
}


def test_a_test_sees_only_the_settings_the_tests_make() -> None:
    from memstore import locking

    assert locking.WRITE_LOCK_WAIT == 60  # read at import, before any fixture runs
    left = {
        name: value
        for name, value in os.environ.items()
        if name in {"EDITOR", "VISUAL", "NO_COLOR"} or name.startswith(("MEM_", "GIT_"))
    }
    assert sorted(left) == [
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_NOSYSTEM",
        "MEM_AUTHOR",
        "MEM_SEMANTIC",
        "MEM_WATCH",
    ]


def test_the_users_settings_do_not_change_a_test() -> None:
    """With MEM_SESSION set, the documented format gained a session line and the test failed."""
    tests = [
        "tests/test_isolation.py::test_a_test_sees_only_the_settings_the_tests_make",
        "tests/test_store.py::test_add_writes_the_documented_format_and_one_commit",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env={**os.environ, **HOSTILE},
        capture_output=True,
        encoding="utf-8",
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
