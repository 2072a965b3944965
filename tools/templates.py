"""How the shipped workflows present themselves in ComfyUI's template browser: one table, in the
order the browser lists them (the main 30 s story first), with a human title and a one-line
description each.

No supported frontend reads a title or description for a custom node's template: ComfyUI's
/workflow_templates route answers file names only, and the frontends (1.27, 1.48, 1.58) show the
file name as the title and the file name with its `_` as spaces as the description. Until one does,
the thumbnails (thumbnails.py) carry these titles in the picture; rewriting the frontend's cards from
an extension was tried and left out (it would watch and rewrite the whole page's text).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (file name without .json, title, description), in the order the template browser lists them
TEMPLATES = (
    ("story_pmwd_30s", "30 s story · PMWD",
     "Start here: an eight-scene, 30-second story on Wan 2.1 1.3B, sampled by PMWD in 7 windows."),
    ("story_pmwd_ksampler_30s", "30 s story · PMWD in KSampler",
     "The same story with the stock KSampler: PMWD's windows moved into the model."),
    ("story_sliding_30s", "30 s story · sliding window",
     "The same story by a sliding window of 21 latent frames."),
    ("story_fifo_30s", "30 s story · FIFO",
     "The same story by FIFO diffusion: a queue of 21 latent frames."),
    ("frame_prompts_t2v", "5 s, four prompts",
     "81 frames with a four-beat story: stock loaders and KSampler plus frame-level prompts."),
    ("df_t2v", "5 s · Diffusion Forcing",
     "A three-scene 5 s clip by Diffusion Forcing: a staircase of noise levels."),
    ("story_pmwd_30s_wan22", "30 s story · Wan 2.2 A14B",
     "The 30 s story on Wan 2.2 A14B: both experts with frame-level prompts."),
    ("story_5b_ti2v", "10 s story from an image · Wan 2.2 5B",
     "Four scenes from a start image (start_image.png) on Wan 2.2 TI2V 5B."),
    ("first_last_frame_wan22_i2v", "First to last frame · Wan 2.2 I2V",
     "From first_frame.png to last_frame.png on Wan 2.2 I2V A14B, prompts for the beats between."),
    ("first_last_frame_t2v", "First to last frame · Diffusion Forcing",
     "first_frame.png and last_frame.png held clean by Diffusion Forcing on the T2V model."),
)


def title_of(name: str) -> str:
    return next(title for key, title, _ in TEMPLATES if key == name)
