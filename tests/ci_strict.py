"""CI's strict mode (FRAMELEVEL_CI_STRICT_SKIPS=1, set by .ci/run): nothing CI can run may skip.

Locally, a test that needs something absent (a ComfyUI checkout, Chromium, a package) skips with the
reason shown. Under CI that would hide a broken set-up behind a green run, so in strict mode:
- a test that needs an absent ComfyUI, Chromium or package errors instead of skipping
  (`unavailable`, and the `comfyui` marker in conftest.py);
- any skip other than a `gpu` test or the opt-in live LLM test fails the session, listed by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "FRAMELEVEL_CI_STRICT_SKIPS"
LIVE_LLM_TEST = ("test_story_expand.py", "test_live_server_expands_a_vbench_prompt")
ALLOWED = "only `gpu` tests and the opt-in live LLM test (tests/test_story_expand.py) may skip"


def active() -> bool:
    return os.environ.get(ENV, "") not in ("", "0")


def unavailable(reason: str):
    """Skip for `reason`, or in strict mode fail: CI must have everything but a GPU."""
    if active():
        pytest.fail(f"{reason} [{ENV}=1: CI must run this test, so its set-up must provide this]",
                    pytrace=False)
    pytest.skip(reason)


def _is_allowed(report) -> bool:
    if "gpu" in getattr(report, "keywords", {}):
        return True
    path, _, name = report.nodeid.partition("::")
    return (Path(path).name, name.split("[")[0]) == LIVE_LLM_TEST


def _reason(report) -> str:
    longrepr = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


class SkipGuard:
    """Session plugin: collects forbidden skips, lists them and turns the exit status into a failure."""

    def __init__(self):
        self.forbidden: list[tuple[str, str]] = []

    def _check(self, report):
        if report.skipped and not hasattr(report, "wasxfail") and not _is_allowed(report):
            self.forbidden.append((report.nodeid or str(report.fspath), _reason(report)))

    def pytest_collectreport(self, report):
        self._check(report)

    def pytest_runtest_logreport(self, report):
        self._check(report)

    def pytest_sessionfinish(self, session, exitstatus):
        if self.forbidden and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.forbidden:
            return
        terminalreporter.section(f"{ENV}: {len(self.forbidden)} forbidden skip(s)", red=True, bold=True)
        terminalreporter.write_line(f"Under CI {ALLOWED}; these skipped, so the run fails:")
        for nodeid, reason in self.forbidden:
            terminalreporter.write_line(f"  {nodeid}: {reason}")


def register(config) -> None:
    if active():
        config.pluginmanager.register(SkipGuard(), "framelevel-ci-strict-skips")
