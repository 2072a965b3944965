"""Schedule picture: ComfyUI IMAGE layout, colours where the plan says, works without Pillow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from comfyui_framelevel.nodes.core import schedule_picture as sp
from comfyui_framelevel.nodes.core.df_schedule import DFSchedule, df_plan, df_sigma_matrix
from comfyui_framelevel.nodes.core.sigmas import flow_sigmas


def luminance(rgb):
    return rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722


def test_noisier_is_darker_and_every_level_has_its_own_colour():
    """Reading the picture needs an order: clean latents light, noisy ones dark, no two levels alike."""
    levels = np.linspace(0.0, 1.0, 41)
    colours = sp.sigma_colour(levels).astype(float)
    assert colours.shape == (41, 3) and colours.min() >= 0 and colours.max() <= 255
    assert np.all(np.diff(luminance(colours)) < 0)
    assert len({tuple(c) for c in colours.round().astype(int)}) == 41
    anchor = np.array(sp._ANCHOR, dtype=float)
    assert np.abs(colours - anchor).sum(axis=1).min() > 60      # anchors never look like a noise level


@pytest.mark.parametrize("pil", [True, False])
def test_picture_layout_and_cells(monkeypatch, pil):
    monkeypatch.setattr(sp, "_HAVE_PIL", pil and sp._HAVE_PIL)
    plan = df_plan(flow_sigmas(4), 6, DFSchedule(1.0, anchors=(0, 5)))
    img = sp.render_schedule(plan, prompt_index=[0, 0, 1, 1, 2, 2])
    assert img.ndim == 4 and img.shape[0] == 1 and img.shape[3] == 3
    assert img.dtype == torch.float32 and 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    pixels = (img[0].numpy() * 255).round().astype(int)
    anchor_red = np.all(pixels == sp._ANCHOR, axis=-1)
    assert anchor_red.any()
    # the anchor strip is red over latent 0 and 5 only: compare the red columns with the heat map
    cw, _ = sp._cell_size(6, plan.sigmas.shape[0])
    red_cols = sorted(set(np.nonzero(anchor_red)[1].tolist()))
    left = red_cols[0]
    assert red_cols == list(range(left, left + cw)) + list(range(left + 5 * cw, left + 6 * cw))
    # the noisiest colour (sigma 1) appears, and so does clean (sigma 0)
    assert np.all(pixels == sp.sigma_colour(np.array(1.0)), axis=-1).any()
    assert np.all(pixels == sp.sigma_colour(np.array(0.0)), axis=-1).any()


def test_bare_matrix_and_errors():
    img = sp.render_schedule(df_sigma_matrix(flow_sigmas(3), 4, DFSchedule(0.5)))
    assert img.shape[0] == 1
    with pytest.raises(ValueError, match="prompt_index"):
        sp.render_schedule(df_plan(flow_sigmas(3), 4), prompt_index=[0, 1])
