"""The experts benchmark's ratios come from its measured medians and call counts (no timing asserted)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_experts  # noqa: E402


def test_ratios_divide_the_medians_and_price_a_mixed_call():
    medians = {"official_two_samplers": 4.0, "experts_df_synchronous": 4.2, "experts_df_staircase": 9.0,
               "one_expert_df_staircase": 6.0}
    rows = bench_experts.ratio_rows(medians, calls=12, mixed=6)
    assert [round(ratio, 6) for _, ratio, _ in rows] == [1.05, 1.5, 2.0]   # 6 extra evaluations of 0.5 s each
    assert "6 of 12 calls mixed" in rows[1][0] and "1.500" in rows[1][2]


def test_benchmark_script_shows_its_usage():
    with pytest.raises(SystemExit) as stop:
        bench_experts.main(["--help"])
    assert stop.value.code == 0
