"""Every command in README's and docs/development.md's ```bash blocks is one the project runs.

RUNS is the table: each documented command pattern names the test(s) or the `.ci/run` line(s) that
run it (or run it with its network or GPU part replaced, said in `how`). The tests fail when a doc
gains a command that is in no row, when a row matches no documented command any more, when a row
names a test that does not exist or a CI line that `.ci/run` lacks. No ComfyUI needed.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli comes with the train extra
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/development.md")
CI = ROOT / ".ci" / "run"
sys.path.insert(0, str(ROOT / "tools"))
import run_workflow  # noqa: E402


@dataclass(frozen=True)
class Runs:
    pattern: str               # regex, matched in full against one documented command (spaces normalised)
    runners: tuple[str, ...]   # "tests/FILE.py::test_name" or "ci: <text of a line in .ci/run>"
    how: str                   # what the runner does with it


RUNS = (
    # ---- README: Install into ComfyUI
    Runs(r"cd ComfyUI/custom_nodes",
         ("tests/test_workflow_runner.py::test_missing_models_are_named_with_their_folder",),
         "run_workflow.main links the pack into a checkout's custom_nodes/comfyui-framelevel"),
    Runs(r"git clone <this repository> comfyui-framelevel",
         ("tests/test_readme_commands.py::test_git_clone_makes_the_pack_folder_readme_names",
          "tests/test_checkout_folder.py::test_readme_test_command_runs_from_any_checkout_folder"),
         "this repository cloned (locally) into custom_nodes/comfyui-framelevel; the suite run from a "
         "checkout folder of that name"),
    Runs(r'pip install -e (comfyui-framelevel|"comfyui-framelevel\[train\]")',
         ('ci: "$venv/bin/pip" install -q $(lock_args "$lock") -e ".[dev,train]"',),
         "CI installs the pack editable with the train extra (and dev)"),
    Runs(r'pip install -e "comfyui-framelevel\[triton\]"',
         ('ci: "$venv/bin/pip" install -q --no-deps "triton==3.9.0"',
          "tests/test_readme_commands.py::test_extras_named_in_the_docs_admit_what_ci_installs"),
         "CI installs the Triton the `triton` extra admits"),
    Runs(r'DS_BUILD_OPS=0 pip install --no-build-isolation -e "comfyui-framelevel\[deepspeed\]"',
         ('ci: DS_BUILD_OPS=0 "$venv_base/bin/pip" install -q --no-build-isolation $(lock_args '
          '"comfyui-$first_version") "deepspeed==0.19.8"',
          "tests/test_readme_commands.py::test_extras_named_in_the_docs_admit_what_ci_installs"),
         "CI installs, the same way, the DeepSpeed the `deepspeed` extra admits"),
    # ---- README: the main job and the install check
    Runs(r"python tools/run_workflow.py --comfyui /path/to/ComfyUI workflows/api/story_pmwd_30s\.api\.json --download",
         ("tests/test_model_download.py::test_runner_downloads_the_missing_models_of_a_workflow",
          "tests/test_comfyui_smoke.py::test_smoke_command_runs_the_main_workflow_on_tiny_weights",
          "tests/test_readme_commands.py::test_run_workflow_commands_parse_and_name_real_workflows"),
         "--download against a loopback Hub (with --check-only); the same workflow queued through a "
         "ComfyUI server by --smoke; the exact arguments parsed. Not run with the real 10 GB weights"),
    Runs(r"python tools/run_workflow.py --comfyui /path/to/ComfyUI --smoke",
         ("tests/test_comfyui_smoke.py::test_smoke_command_runs_the_main_workflow_on_tiny_weights",),
         "the same command against COMFYUI_PATH"),
    # ---- README: the tests
    Runs(r"python -m venv \.venv", ('ci: python3 -m venv "$venv"',), "CI makes one venv per ComfyUI"),
    Runs(r"\. \.venv/bin/activate", ('ci: (. "$2/bin/activate" && COMFYUI_PATH=$3',), "CI activates it"),
    Runs(r"pip install torch", ('ci: "$venv/bin/pip" install -q "$torch_pin"',), "CI installs its pinned torch"),
    Runs(r'pip install -e "\.\[dev,train\]"', ('ci: "$venv/bin/pip" install -q $(lock_args "$lock") -e ".[dev,train]"',),
         "the same install"),
    Runs(r"python -m pytest -q",
         ("ci: COMFYUI_PATH=$3 PYTEST_ADDOPTS=${4:-} python -m pytest -q",
          "tests/test_checkout_folder.py::test_readme_test_command_runs_from_any_checkout_folder"),
         "CI's test command (with COMFYUI_PATH); from a checkout copy on a small selection"),
    # ---- docs/development.md
    Runs(r"tar -xzf \.\./shared/comfyui/ComfyUI-0\.3\.64-a125cd84\.tar\.gz -C /somewhere",
         ('ci: tar -xzf "$shared/comfyui/$archive" -C "$work/$version"',
          'ci: comfyuis=("0.3.64:ComfyUI-0.3.64-a125cd84.tar.gz"'), "CI extracts that archive"),
    Runs(r"\.ci/setup_comfyui\.sh /somewhere/ComfyUI",
         ('ci: FRAMELEVEL_PIP_ARGS=$(lock_args "$lock") bash .ci/setup_comfyui.sh "$comfy_dir" "$venv/bin/python"',),
         "CI prepares each ComfyUI with it"),
    Runs(r"apt-get install chromium",
         ("ci: DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",), "CI installs Debian's chromium"),
    Runs(r"COMFYUI_PATH=/somewhere/ComfyUI python -m pytest -q",
         ("ci: COMFYUI_PATH=$3 PYTEST_ADDOPTS=${4:-} python -m pytest -q",), "CI's test command"),
    Runs(r"pip install --target /tmp/fe-new --no-deps comfyui-frontend-package==<newest>",
         ('ci: "$venv_base/bin/pip" install -q --target "$work/frontend-newest" --no-deps '
          '"comfyui-frontend-package==$newest"',), "CI installs the newest frontend the same way"),
    Runs(r"FRAMELEVEL_NEWEST_FRONTEND_ROOT=/tmp/fe-new/comfyui_frontend_package/static python -m pytest -q "
         r"tests/test_comfyui_timeline\.py",
         ('ci: export FRAMELEVEL_NEWEST_FRONTEND_ROOT="$work/frontend-newest/comfyui_frontend_package/static"',
          "tests/test_comfyui_timeline.py::test_timeline_follows_the_typed_story"),
         "CI exports the variable and runs the whole suite, this file included"),
    Runs(r"bash \.ci/run", ("ci: # CI: everything but the GPU, from a clean clone",), "the CI script itself"),
    Runs(r"COMFYUI_PATH=/path/to/ComfyUI python tests/run_gpu_checks\.py",
         ("tests/test_gpu_checks.py::test_dry_run_runs_every_step_and_writes_the_ratios",),
         "every step of the same script, on the CPU (--dry-run); the GPU run itself needs a GPU"),
    Runs(r"python tests/run_gpu_checks\.py --dry-run",
         ("tests/test_gpu_checks.py::test_dry_run_runs_every_step_and_writes_the_ratios",), "the same command"),
)


def documented_commands() -> list[tuple[str, str]]:
    """(doc, command) for every command line in the docs' ```bash blocks: continuation lines joined,
    comments dropped, `a && b` split."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"^```bash\n(.*?)^```", (ROOT / doc).read_text(encoding="utf-8"), re.M | re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"(^|\s)#.*$", "", line).strip()
                found += [(doc, " ".join(part.split())) for part in line.split("&&") if part.strip()]
    return found


COMMANDS = documented_commands()


def test_the_docs_have_commands():
    docs = {doc for doc, _ in COMMANDS}
    assert docs == set(DOCS), f"no ```bash commands found in {set(DOCS) - docs}"


@pytest.mark.parametrize("doc,command", COMMANDS, ids=[f"{d}:{c[:50]}" for d, c in COMMANDS])
def test_every_documented_command_is_in_the_table(doc, command):
    rows = [row for row in RUNS if re.fullmatch(row.pattern, command)]
    assert rows, (f"{doc} documents `{command}`, which no row of RUNS in {Path(__file__).name} maps to a test or "
                  "a .ci/run line: add a test that runs it (or a --help / --dry-run of it) and a row, or rephrase it")


def test_every_row_still_matches_a_documented_command():
    stale = [row.pattern for row in RUNS if not any(re.fullmatch(row.pattern, c) for _, c in COMMANDS)]
    assert not stale, f"rows of RUNS that match no command in {DOCS}: {stale}"


def test_every_runner_exists():
    ci_lines = [line.strip() for line in CI.read_text(encoding="utf-8").splitlines()]
    missing = []
    for row in RUNS:
        for runner in row.runners:
            if runner.startswith("ci: "):
                text = runner[4:]
                if not any(text in line for line in ci_lines):
                    missing.append(f".ci/run has no line with {text!r}")
                continue
            path, _, name = runner.partition("::")
            source = ROOT / path
            if not source.is_file() or not re.search(rf"^def {re.escape(name)}\(", source.read_text(), re.M):
                missing.append(f"no test {runner}")
    assert not missing, "\n".join(missing)


def test_run_workflow_commands_parse_and_name_real_workflows():
    runs = [c for _, c in COMMANDS if c.startswith("python tools/run_workflow.py ")]
    assert runs
    for command in runs:
        args = run_workflow.parse_args(shlex.split(command)[2:])
        assert args.comfyui
        if args.workflow:
            assert run_workflow.workflow_path(Path(args.workflow)).is_file(), command


def test_extras_named_in_the_docs_admit_what_ci_installs():
    from packaging.requirements import Requirement

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {extra for _, c in COMMANDS for group in re.findall(r"\[([a-z,]+)\]", c) for extra in group.split(",")}
    assert named and named <= set(extras), f"the docs install extras pyproject.toml lacks: {named - set(extras)}"
    ci = CI.read_text(encoding="utf-8")
    for package in ("triton", "deepspeed"):
        (pin,) = re.findall(rf'"{package}==([\d.]+)"', ci)
        (spec,) = [Requirement(r) for r in extras[package] if Requirement(r).name == package]
        assert spec.specifier.contains(pin), f"CI's {package}=={pin} is outside the extra's {spec}"


def test_git_clone_makes_the_pack_folder_readme_names(tmp_path):
    """README's clone, from this repository instead of the network: the pack lands as a folder ComfyUI loads."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.fail("this test clones the checkout with git, which found no commit here")
    target = tmp_path / "ComfyUI" / "custom_nodes" / "comfyui-framelevel"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(target)],
                   check=True, capture_output=True, timeout=120)
    assert (target / "__init__.py").is_file() and (target / "pyproject.toml").is_file()
