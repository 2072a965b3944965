"""The worked example of docs/long_video_api.md §4 (a new loop as a planner) runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from comfyui_framelevel.nodes.core.df_schedule import DFSchedule, df_plan
from comfyui_framelevel.nodes.core.executor import execute_plan
from comfyui_framelevel.nodes.core.plan import initial_latents, summarize_plan, window_evaluations
from comfyui_framelevel.nodes.core.schedule_picture import render_schedule
from comfyui_framelevel.nodes.core.sigmas import flow_sigmas

DOC = Path(__file__).resolve().parents[1] / "docs" / "long_video_api.md"


def load_reverse_plan():
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## 4."):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["reverse_plan"]


def per_latent_denoiser(x, sigma, frame_index):
    s = sigma.view(sigma.shape[0], 1, -1, 1, 1).to(x.dtype)
    return (1 - s) * 0.5 / ((1 - s) ** 2 * 0.5 + s * s) * x


def test_reverse_planner_from_the_doc():
    reverse_plan = load_reverse_plan()
    base = flow_sigmas(3)
    plan = reverse_plan(base, 4, step_size=1.0, anchors=(0,))
    # hand-derived: latent 3 starts first, latent 1 last, anchor 0 held; progress rows
    # 0000 -> 0001 -> 0012 -> 0123 -> 0233 -> 0333 with the anchor column at 3 (clean)
    progress = torch.tensor([[3, 0, 0, 0], [3, 0, 0, 1], [3, 0, 1, 2], [3, 1, 2, 3], [3, 2, 3, 3], [3, 3, 3, 3]])
    assert torch.equal(plan.sigmas, base[progress])
    assert window_evaluations(plan) == 5
    assert "reverse plan" in summarize_plan(plan)
    assert render_schedule(plan).shape[-1] == 3

    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 2, 4, 1, 1, generator=gen, dtype=torch.float64)
    clean = torch.randn(1, 2, 4, 1, 1, generator=gen, dtype=torch.float64)
    got = execute_plan(plan, per_latent_denoiser, initial_latents(plan, noise, clean))
    sync = df_plan(base, 4, DFSchedule(0.0, anchors=(0,)))
    want = execute_plan(sync, per_latent_denoiser, initial_latents(sync, noise, clean))
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    assert torch.equal(got[:, :, 0], clean[:, :, 0])
