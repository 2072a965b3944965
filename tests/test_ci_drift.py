"""CI's drift report reads the pack's direct dependencies from pyproject and orders releases."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load():
    spec = importlib.util.spec_from_file_location("report_drift", ROOT / ".ci" / "report_drift.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_direct_dependencies_are_every_base_and_extra_name_once(tmp_path):
    drift = load()
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["torch>=2.4", "numpy>=1.25"]\n'
                         '[project.optional-dependencies]\ndev = ["pytest>=8", "numpy"]\n'
                         'train = ["tomli>=2.0; python_version < \'3.11\'"]\n')
    assert drift.direct_dependencies(pyproject) == ["torch", "numpy", "pytest", "tomli"]
    assert "transformers" in drift.direct_dependencies(ROOT / "pyproject.toml")


def test_release_order_ignores_local_labels():
    drift = load()
    assert drift.release_tuple("2.15.0") > drift.release_tuple("2.13.0+cpu")
    assert drift.release_tuple("1.58.1") > drift.release_tuple("1.27.10")
    assert drift.release_tuple("0.19.1") == drift.release_tuple("0.19.1")
