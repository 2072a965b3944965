"""CI's strict mode (tests/ci_strict.py): only `gpu` tests and the live LLM test may skip; a missing
ComfyUI is an error, not a skip. Each case runs a real pytest session in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ci_strict
import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

SAMPLE = '''
import pytest

def test_runs():
    assert 1 + 1 == 2

def test_skips_for_a_missing_tool():
    pytest.skip("needs a tool that is not installed")

@pytest.mark.gpu
def test_needs_cuda():
    pytest.skip("needs a CUDA GPU")
'''


def _pytest(args, cwd, strict: bool, **env_changes):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != ci_strict.ENV}
    if strict:
        env[ci_strict.ENV] = "1"
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def sample_dir(tmp_path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import ci_strict

        def pytest_configure(config):
            config.addinivalue_line("markers", "gpu: needs CUDA")
            ci_strict.register(config)
    '''))
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    return tmp_path


def test_outside_ci_a_skip_is_only_reported(sample_dir):
    result = _pytest([], sample_dir, strict=False)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 skipped" in result.stdout


def test_under_ci_a_skip_other_than_gpu_fails_the_run_and_is_named(sample_dir):
    result = _pytest([], sample_dir, strict=True)
    assert result.returncode == 1, result.stdout
    assert "1 passed, 2 skipped" in result.stdout
    assert "test_sample.py::test_skips_for_a_missing_tool: needs a tool that is not installed" in result.stdout
    assert "test_needs_cuda" not in result.stdout.split("forbidden skip")[-1]


@pytest.mark.slow
def test_under_ci_a_comfyui_test_without_comfyui_errors(tmp_path):
    args = ["tests/test_comfyui_text_encode.py::test_each_distinct_prompt_goes_through_the_text_encoder_once"]
    relaxed = _pytest(args, ROOT, strict=False, COMFYUI_PATH=None)
    assert relaxed.returncode == 0 and "1 skipped" in relaxed.stdout, relaxed.stdout
    strict = _pytest(args, ROOT, strict=True, COMFYUI_PATH=str(tmp_path / "no-comfyui"))
    assert strict.returncode == 1 and "1 error" in strict.stdout, strict.stdout
    assert "needs a ComfyUI checkout" in strict.stdout and "CI must run this test" in strict.stdout


def test_ci_run_without_the_comfyui_archive_fails_naming_it(tmp_path):
    result = subprocess.run(["bash", str(ROOT / ".ci/run")], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "FRAMELEVEL_SHARED": str(tmp_path / "shared")})
    assert result.returncode != 0
    assert "ComfyUI-0.3.64-a125cd84.tar.gz is missing" in result.stderr, result.stderr
    assert str(tmp_path / "shared" / "comfyui") in result.stderr
    assert "venv" not in result.stdout                                  # failed before any install
