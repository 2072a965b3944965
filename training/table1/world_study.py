"""Why does a loop lose the world? Re-samples the frame-level stories of a finished run (its --work
folder) with variations of each loop's settings and prints how often the world is kept:

    python training/table1/world_study.py --comfyui /path/to/ComfyUI --work DIR [--stories 24]

Each variation changes one setting of `LoopSettings` (window overlap, slide, steps, FIFO partitions).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

VARIANTS = (  # (method, LoopSettings overrides, what it tests)
    ("pmwd", {}, "as in the table"),
    ("sliding", {}, "as in the table"),
    ("fifo", {}, "as in the table"),
    ("pmwd", {"pmwd_overlap": 6}, "more overlap: 13 windows"),
    ("pmwd", {"pmwd_overlap": 7}, "stride 1: 25 windows"),
    ("pmwd", {"fifo_partitions": 4}, "32 steps"),
    ("fifo", {"fifo_partitions": 1}, "queue = one window (8 steps): every window holds the queue's cleanest latents"),
    ("sliding", {"slide": 6}, "history of 2 latents"),
)


def study(work: Path, comfyui: str, stories: int, kind: str = "frame") -> list[str]:
    import dataclasses

    import numpy as np
    import torch
    from comfyui_framelevel.training.table1 import comfy_sampling as cs
    from comfyui_framelevel.training.table1.domain import evaluation_stories
    from comfyui_framelevel.training.table1.measure import read_worlds, world_consistency
    from comfyui_framelevel.training.table1.pipeline import Table1Settings, story_conditioning

    settings = Table1Settings()
    torch.set_num_threads(settings.sampling_threads)
    layouts = evaluation_stories(stories, settings.long_frames, settings.story_scenes, size=settings.size,
                                 seed=settings.seed + 1000)
    encode = cs.PromptEncoder(work / "umt5", settings.text_len)
    sampler = cs.ComfyLongSampler(comfyui, work / f"run_{kind}" / "model.safetensors", settings.loops)
    window = settings.train_frames
    short = evaluation_stories(stories, window, (1, 2), min_segment=3, size=settings.size, seed=settings.seed + 2000)
    same = [len(set(read_worlds(sampler.sample("pmwd", story_conditioning(sampler.adapter, encode, story, "frame"),
                                               window, settings.size, seed=i).permute(1, 0, 2, 3)).tolist())) == 1
            for i, story in enumerate(short)]
    lines = [f"one window ({window} latents, 1-2 scenes): one world throughout in {sum(same)} of {len(same)} videos"]
    print(lines[-1], flush=True)
    for method, overrides, why in VARIANTS:
        loops = dataclasses.replace(settings.loops, **overrides)
        sampler = cs.ComfyLongSampler(comfyui, work / f"run_{kind}" / "model.safetensors", loops)
        kept, worlds, start = [], [], time.perf_counter()
        for i, story in enumerate(layouts):
            positive = story_conditioning(sampler.adapter, encode, story, "frame")
            frames = sampler.sample(method, positive, story.frames, settings.size, seed=i).permute(1, 0, 2, 3)
            kept.append(world_consistency(frames))
            worlds.append(len(set(read_worlds(frames).tolist())))
        kept = np.array(kept)
        lines.append(f"{method:8s} {str(overrides or ''):26s} world kept {kept.mean():.3f} ± "
                     f"{kept.std(ddof=1) / np.sqrt(len(kept)):.3f}, worlds per video {np.mean(worlds):.2f} "
                     f"({why}; {time.perf_counter() - start:.0f} s)")
        print(lines[-1], flush=True)
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"))
    parser.add_argument("--work", required=True, help="the --work folder of a finished run.py")
    parser.add_argument("--stories", type=int, default=24)
    args = parser.parse_args(argv)
    spec = importlib.util.spec_from_file_location("table1_run", Path(__file__).with_name("run.py"))
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    run.bootstrap_package()   # registers the pack as `comfyui_framelevel`, as run.py does
    study(Path(args.work), args.comfyui, args.stories)


if __name__ == "__main__":
    main()
