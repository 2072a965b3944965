"""AOT-compile the Triton kernel for sm_80 and sm_90 with no GPU (Triton's bundled ptxas).

Catches GPU-only compile failures and guards the chosen tiles against register spills and
shared-memory overflow.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("triton")

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                reason="AOT compile needs the compiled (non-interpreter) kernel")

# Shared memory a single program may use: A100 (sm_80) 163 KiB, H100/H200 (sm_90) 227 KiB.
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}


@pytest.mark.parametrize("arch", [80, 90])
def test_default_half_precision_tiles_compile_without_spills(arch):
    from comfyui_framelevel.kernels.aot_compile import default_tiles, report

    result = report(arch, "bf16", default_tiles("bf16", arch))
    assert result.spill_store_bytes == 0 and result.spill_load_bytes == 0, result.line()
    assert result.registers <= 255 and result.shared_bytes <= SHARED_LIMIT[arch], result.line()
    assert result.mma == ("wgmma" if arch == 90 else "mma.sync"), result.line()


def test_script_prints_a_report_line_per_configuration(capsys):
    from comfyui_framelevel.kernels.aot_compile import main

    assert main(["--arch", "90", "--dtype", "fp16", "--tiles", "64x32x4x2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sm_")]
    assert len(lines) == 1 and "regs" in lines[0] and "spill" in lines[0] and "M64" in lines[0]
