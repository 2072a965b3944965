"""pyproject.toml is ready for the Comfy registry: the fields its spec asks for, in the forms that
comfy-cli's parser accepts (comfy_cli/registry/config_parser.py warns and drops a field otherwise), the
icon shipped in the repository, and the pack's real requirements (ComfyUI 0.3.64, the frontends the
browser test runs). With comfy-cli installed ($FRAMELEVEL_COMFY_CLI or `comfy` on PATH), `comfy node
validate` itself runs, offline, and must pass without a warning."""

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT, COMFY = CONFIG["project"], CONFIG["tool"]["comfy"]
SEMVER = re.compile(r"\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?")
RANGE_PART = re.compile(r"(?:(==|>=|<=|!=|~=|>|<|<>|=)\s*)?(\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?)")
REGISTRY_OS = ("Microsoft", "POSIX", "MacOS", "OS Independent")
REGISTRY_ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend",
                         "GPU :: Apple Metal"}
# what CI runs (.ci/run): ComfyUI 0.3.64 and 0.33.0, each with its pinned frontend (and the newest one)
TESTED = {"comfyui": [(0, 3, 64), (0, 33, 0)], "comfyui-frontend-package": [(1, 27, 10), (1, 48, 7)]}


def _satisfies(version: tuple[int, ...], spec: str) -> bool:
    ops = {">=": tuple.__ge__, "<=": tuple.__le__, ">": tuple.__gt__, "<": tuple.__lt__, "==": tuple.__eq__,
           "!=": tuple.__ne__}
    for part in spec.split(","):
        op, number = RANGE_PART.fullmatch(part.strip()).groups()
        if not ops[op or "=="](version, tuple(int(x) for x in number.split("-")[0].split("."))):
            return False
    return True


def test_node_id_version_and_licence():
    name = PROJECT["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*", name)
    assert SEMVER.fullmatch(PROJECT["version"])
    assert PROJECT["license"] in ({"text": "Apache-2.0"}, {"file": "LICENSE"})
    assert PROJECT["description"] and PROJECT["urls"]["Repository"].startswith("https://")


def test_classifiers_are_ones_the_registry_reads():
    classifiers = PROJECT["classifiers"]
    systems = [c.removeprefix("Operating System :: ") for c in classifiers if c.startswith("Operating System :: ")]
    accelerators = [c.removeprefix("Environment :: ") for c in classifiers if c.startswith("Environment ::")]
    assert systems and all(s.startswith(REGISTRY_OS) for s in systems)
    assert accelerators and set(accelerators) <= REGISTRY_ACCELERATORS


def test_comfyui_and_frontend_ranges_hold_what_the_tests_run():
    comfyui = COMFY["requires-comfyui"]
    frontend = next(d for d in PROJECT["dependencies"] if d.startswith("comfyui-frontend-package"))
    frontend = frontend.removeprefix("comfyui-frontend-package")
    for spec in (comfyui, frontend):
        assert all(RANGE_PART.fullmatch(part.strip()) for part in spec.split(",")), spec
    assert all(_satisfies(version, comfyui) for version in TESTED["comfyui"]) and not _satisfies((0, 3, 63), comfyui)
    assert _satisfies((0, 45, 0), comfyui)   # the newest release whose files docs/comfyui_versions.md reads
    assert all(_satisfies(version, frontend) for version in TESTED["comfyui-frontend-package"])


def test_tool_comfy_fields_and_the_icon_in_the_repository():
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", COMFY["PublisherId"])
    assert COMFY["DisplayName"]
    assert all((ROOT / path).exists() for path in COMFY["includes"])
    repository = PROJECT["urls"]["Repository"].removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{repository}/main/"
    assert COMFY["Icon"].startswith(prefix)
    icon = ROOT / COMFY["Icon"].removeprefix(prefix)
    svg = ET.parse(icon).getroot()
    assert svg.tag.endswith("svg") and svg.get("width") == svg.get("height") and int(svg.get("width")) <= 400


def _comfy_cli() -> str | None:
    return os.environ.get("FRAMELEVEL_COMFY_CLI") or shutil.which("comfy")


@pytest.mark.skipif(_comfy_cli() is None, reason="comfy-cli is not installed: pip install comfy-cli ruff "
                    "(in its own venv) and set FRAMELEVEL_COMFY_CLI to its `comfy`")
def test_comfy_node_validate_passes_offline(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}     # comfy-cli keeps its settings in the home folder
    result = subprocess.run([_comfy_cli(), "--skip-prompt", "--no-enable-telemetry", "node", "validate"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All validation checks passed" in output and "Warning" not in output, output
