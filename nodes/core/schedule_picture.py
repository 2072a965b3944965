"""Draw a plan (or a bare sigma matrix) as a picture, in ComfyUI's IMAGE layout [1, H, W, 3].

Layout, top to bottom: a title line (with Pillow), the anchor strip (red cells = latents held
clean), the prompt strip (one colour per prompt index, with the number when it fits), then the
heat map: one row per iteration (top = start), one column per latent, dark blue at sigma 1 to
yellow at sigma 0. With a Plan, a small white dot marks every latent some window *writes* in that
iteration, and a bar on the right shows how many windows the iteration evaluates. Below: a sigma
colour bar. Without Pillow the same picture is drawn without any text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .plan import Plan, summarize_plan

try:  # Pillow is optional: text labels only
    from PIL import Image, ImageDraw, ImageFont
    _HAVE_PIL = True
except ImportError:  # pragma: no cover - depends on the environment
    _HAVE_PIL = False

# sigma 0 -> 1 colour stops (a viridis-like ramp, reversed so clean is bright)
_STOPS = np.array([[253, 231, 37], [94, 201, 98], [33, 145, 140], [59, 82, 139], [68, 1, 84]], dtype=np.float64)
_PROMPT_COLOURS = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
                            [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190], [0, 128, 128],
                            [170, 110, 40], [128, 128, 0]], dtype=np.uint8)
_ANCHOR = np.array([220, 30, 30], dtype=np.uint8)
_BACKGROUND = 24


def sigma_colour(sigma: np.ndarray) -> np.ndarray:
    """uint8 RGB for sigmas in [0, 1] (any shape -> shape + (3,))."""
    pos = np.clip(np.asarray(sigma, dtype=np.float64), 0, 1) * (len(_STOPS) - 1)
    low = np.floor(pos).astype(int).clip(0, len(_STOPS) - 2)
    frac = (pos - low)[..., None]
    return np.round(_STOPS[low] * (1 - frac) + _STOPS[low + 1] * frac).astype(np.uint8)


def _cell_size(frames: int, rows: int) -> tuple[int, int]:
    width = int(np.clip(900 // max(frames, 1), 3, 28))
    height = int(np.clip(600 // max(rows, 1), 2, 18))
    return width, height


def render_schedule(plan: Plan | torch.Tensor, prompt_index: Sequence[int] | None = None,
                    anchors: Sequence[int] | None = None, title: str | None = None) -> torch.Tensor:
    """Picture of a plan or of a sigma matrix [I + 1, F] as a float tensor [1, H, W, 3] in [0, 1].

    prompt_index: optional prompt number per latent (length F), drawn as a coloured strip.
    anchors: latents to mark (default: the plan's anchors). title: defaults to the plan summary's
    first line."""
    sigmas = plan.sigmas if isinstance(plan, Plan) else torch.as_tensor(plan, dtype=torch.float64)
    if sigmas.ndim != 2:
        raise ValueError(f"expected a Plan or an [iterations + 1, frames] sigma matrix, got shape {tuple(sigmas.shape)}")
    rows, frames = sigmas.shape
    if prompt_index is not None and len(prompt_index) != frames:
        raise ValueError(f"prompt_index has {len(prompt_index)} entries but the plan has {frames} latents")
    if anchors is None:
        anchors = plan.anchors if isinstance(plan, Plan) else ()
    if title is None and isinstance(plan, Plan):
        title = summarize_plan(plan).splitlines()[0]
    cw, ch = _cell_size(frames, rows)
    text = _HAVE_PIL
    left = 44 if text else 4
    top = (16 if text and title else 2)
    strip = max(6, min(ch, 14))
    prompt_h = (14 if text else 8) if prompt_index is not None else 0
    bar_w = 12 if isinstance(plan, Plan) else 0
    map_top = top + strip + prompt_h + 2
    map_h, map_w = rows * ch, frames * cw
    height = map_top + map_h + (34 if text else 14)
    ramp_w = max(map_w, 60)
    width = max(left + map_w + bar_w + 8, left + ramp_w + (90 if text else 4), 260 if text else 0)
    img = np.full((height, width, 3), _BACKGROUND, dtype=np.uint8)

    heat = sigma_colour(sigmas.numpy())
    img[map_top:map_top + map_h, left:left + map_w] = np.repeat(np.repeat(heat, ch, axis=0), cw, axis=1)
    for a in anchors:
        img[top:top + strip, left + a * cw:left + (a + 1) * cw] = _ANCHOR
    if prompt_index is not None:
        colours = _PROMPT_COLOURS[np.asarray(prompt_index, dtype=int) % len(_PROMPT_COLOURS)]
        y = top + strip + 1
        img[y:y + prompt_h - 1, left:left + map_w] = np.repeat(colours[None], cw, axis=1)
    if isinstance(plan, Plan):
        _mark_windows(img, plan, left, map_top, cw, ch, bar_w)
    legend_y = map_top + map_h + (18 if text else 4)
    ramp = sigma_colour(np.linspace(1, 0, ramp_w))
    img[legend_y:legend_y + 8, left:left + len(ramp)] = ramp[None]
    if text:
        img = _draw_labels(img, title, prompt_index, rows, frames, left, top, strip, map_top, cw, ch, legend_y,
                           len(ramp))
    return torch.from_numpy(img.astype(np.float32) / 255.0).unsqueeze(0)


def _mark_windows(img, plan: Plan, left, map_top, cw, ch, bar_w):
    most = max(len(ws) for ws in plan.windows)
    bar_x = left + plan.num_frames * cw + 3
    for i, ws in enumerate(plan.windows):
        y = map_top + i * ch + ch // 2
        if cw >= 4 and ch >= 4:
            for w in ws:
                for f in w.written_frames():
                    x = left + f * cw + cw // 2
                    img[y - 1:y + 1, x - 1:x + 1] = 255
        length = max(1, round((bar_w - 4) * len(ws) / most))
        img[map_top + i * ch:map_top + (i + 1) * ch - (1 if ch > 3 else 0), bar_x:bar_x + length] = 200


def _draw_labels(img, title, prompt_index, rows, frames, left, top, strip, map_top, cw, ch, legend_y, ramp_w):
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default()
    white = (235, 235, 235)
    if title:
        draw.text((4, 2), title[: max(20, pil.width // 6)], fill=white, font=font)
    draw.text((2, top), "anchor", fill=white, font=font)
    if prompt_index is not None:
        draw.text((2, top + strip + 1), "prompt", fill=white, font=font)
        if cw >= 12:
            for f, p in enumerate(prompt_index):
                if f == 0 or prompt_index[f - 1] != p:
                    draw.text((left + f * cw + 1, top + strip + 1), str(p), fill=(0, 0, 0), font=font)
    step_label = max(1, rows // 8)
    for i in range(0, rows, step_label):
        draw.text((2, map_top + i * ch), f"it {i}", fill=white, font=font)
    step_f = max(1, frames // 10)
    for f in range(0, frames, step_f):
        draw.text((left + f * cw, legend_y - 16), str(f), fill=white, font=font)
    draw.text((left + ramp_w + 4, legend_y - 2), "sigma 1 -> 0", fill=white, font=font)
    draw.text((2, legend_y - 16), "latent", fill=white, font=font)
    return np.asarray(pil)
