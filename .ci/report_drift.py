"""Drift report for CI's log: the pack's direct dependencies, the version CI installed (from the lock)
and the newest release the package index offers, so an upstream release that may break users is
seen here first. It reports and never fails: an index that does not answer is said, not fatal.

    python .ci/report_drift.py [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def direct_dependencies(pyproject: Path) -> list[str]:
    """Names of the base dependencies and every extra's, in order, each once."""
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    names = []
    for spec in specs:
        match = NAME.match(spec)
        if match and match.group(1).lower() not in (n.lower() for n in names):
            names.append(match.group(1))
    return names


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def newest_version(name: str, timeout: float) -> str | None:
    """The newest release `pip index versions` names, or None when the index does not answer."""
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name], capture_output=True,
                             text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(rf"^{re.escape(name)}\s*\(([^)]+)\)", out.stdout, flags=re.IGNORECASE | re.MULTILINE)
    return match.group(1) if match else None


def release_tuple(version: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:4])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per index query")
    parser.add_argument("--budget", type=float, default=180.0, help="seconds for the whole report")
    args = parser.parse_args(argv)
    names = direct_dependencies(ROOT / "pyproject.toml")
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:   # the index queries, side by side
        asked = {name: pool.submit(newest_version, name, args.timeout) for name in names}
        done, _ = concurrent.futures.wait(asked.values(), timeout=args.budget)
    rows, behind = [], 0
    for name in names:
        installed = installed_version(name)
        newest = asked[name].result() if asked[name] in done else None
        if newest is None:
            note = "index did not answer"
        elif installed is None:
            note = "not installed in this venv"
        elif release_tuple(newest) > release_tuple(installed):
            note, behind = "NEWER RELEASE", behind + 1
        else:
            note = "current"
        rows.append((name, installed or "-", newest or "?", note))
    width = max(len(row[0]) for row in rows)
    print(f"{'dependency':<{width}}  {'CI installs':<14} {'newest':<14} ")
    for name, installed, newest, note in rows:
        print(f"{name:<{width}}  {installed:<14} {newest:<14} {note}")
    print(f"drift: {behind} of {len(rows)} direct dependencies have a newer release than CI's lock"
          + (" (to test them: FRAMELEVEL_CI_RELOCK=1 bash .ci/run, then commit .ci/lock/)" if behind else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
