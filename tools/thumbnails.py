"""Template-browser thumbnails: each workflow's schedule picture, drawn before any model runs.

The picture is the one the pack's Schedule View node draws (nodes/core/schedule_picture.py): the noise
level of every latent frame at every iteration (top = start), the windows each iteration writes, the
anchors held clean and the story's prompt strip. It is computed from the workflow's own settings by
the pack's planners: the latent length, the steps and shift of a "simple" schedule, the sampler's
window settings (PMWD, sliding window, FIFO, Diffusion Forcing; one shared noise level for a plain
KSampler) and the prompt schedule. ComfyUI's template browser shows `NAME.jpg` beside `NAME.json`.

Needs torch and Pillow (the pack's own requirements); the pack is imported as `comfyui_framelevel`
from this checkout.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "comfyui_framelevel"
THUMBNAIL_WIDTH = 512
DEFAULT_SHIFT = 8.0


def pack():
    """The pack as the package `comfyui_framelevel`, loaded from this checkout (never from the root on
    sys.path: ComfyUI owns a top-level `nodes`)."""
    module = sys.modules.get(PACKAGE)
    if module is None or Path(module.__file__).resolve().parent != ROOT:
        spec = importlib.util.spec_from_file_location(PACKAGE, ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
    return module


def pack_module(name: str):
    """A module of the pack, e.g. pack_module("nodes.core.windows")."""
    pack()
    return importlib.import_module(f"{PACKAGE}.{name}")


def _first(api: dict, *classes: str) -> dict | None:
    return next((node["inputs"] for _, node in sorted(api.items(), key=lambda i: int(i[0]))
                 if node["class_type"] in classes), None)


def _steps(api: dict) -> int:
    for cls in ("BasicScheduler", "KSampler", "KSamplerAdvanced", "FrameLevelDiffusionForcing"):
        inputs = _first(api, cls)
        if inputs is not None:
            return int(inputs["steps"])
    raise ValueError("the workflow has no BasicScheduler, KSampler(Advanced) or FrameLevelDiffusionForcing to read steps from")


def _anchors(api: dict, frames: int) -> tuple[int, ...]:
    start = _first(api, "Wan22ImageToVideoLatent")   # the 5B's start image: latent 0 held clean
    if start is not None and "start_image" in start:
        return (0,)
    anchor = _first(api, "FrameLevelAnchorFrames")
    if anchor is None:
        return ()
    return tuple(f for f, key in ((0, "start_image"), (frames - 1, "end_image")) if key in anchor)


def _planner(api: dict):
    """planner(sigmas, frames, anchors) -> Plan for the workflow's sampler settings."""
    windows = pack_module("nodes.core.windows")
    pmwd = _first(api, "FrameLevelPMWDSampler", "FrameLevelPMWDModel")
    if pmwd is not None:
        count = {"num_windows": pmwd["num_windows"]} if pmwd["num_windows"] else {"overlap": pmwd["overlap"]}
        return lambda s, f, a: windows.pmwd_plan(s, f, windows.PMWDOptions(window=pmwd["window"], fusion=pmwd["fusion"],
                                                                             anchors=a, **count))
    sliding = _first(api, "FrameLevelSlidingWindowSampler")
    if sliding is not None:
        return lambda s, f, a: windows.sliding_plan(s, f, windows.SlidingOptions(
            window=sliding["window"], slide=sliding["slide"], history_sigma=sliding["history_sigma"], anchors=a))
    fifo = _first(api, "FrameLevelFIFOSampler")
    if fifo is not None:
        return lambda s, f, a: windows.fifo_plan(s, f, windows.FIFOOptions(
            window=fifo["window"], partitions=fifo["partitions"], lookahead=fifo["lookahead"], anchors=a))
    df = _first(api, "FrameLevelDiffusionForcing", "FrameLevelDiffusionForcingSampler") or {"step_size": 0.0}
    return pack_module("nodes.df_nodes").df_planner(df["step_size"], df.get("causal_block_size", 1), df.get("window", 0))


def schedule_picture(api: dict):
    """The workflow's schedule picture as a PIL image."""
    from PIL import Image

    latent = _first(api, "EmptyHunyuanLatentVideo", "Wan22ImageToVideoLatent", "WanImageToVideo",
                    "WanFirstLastFrameToVideo")
    frames = pack_module("nodes.core.frames").latent_count(int(latent["length"]))
    shift = (_first(api, "ModelSamplingSD3") or {"shift": DEFAULT_SHIFT})["shift"]
    sigmas = pack_module("nodes.core.sigmas").flow_sigmas(_steps(api), shift)
    plan = _planner(api)(sigmas, frames, _anchors(api, frames))
    story = _first(api, "FrameLevelPromptSchedule")
    index = None
    if story is not None:
        schedule = pack_module("nodes.core.prompts").compile_prompt_schedule(story["text"], length=story["length"],
                                                        unit=story["length_unit"], fps=story.get("fps", 16.0))
        index = schedule.index_for(frames)
    picture = pack_module("nodes.core.schedule_picture").render_schedule(plan, prompt_index=index)[0].numpy()
    return Image.fromarray((picture * 255).round().astype("uint8"))


def thumbnail(api: dict):
    image = schedule_picture(api)
    height = round(image.height * THUMBNAIL_WIDTH / image.width)
    return image.resize((THUMBNAIL_WIDTH, height), resample=3)   # 3 = bicubic in every Pillow


def write_thumbnail(api: dict, path: Path) -> Path:
    with pack_module("nodes.core.files").atomic_path(path) as temp:   # the pack's one way to write a file
        thumbnail(api).save(temp, format="JPEG", quality=90)
    return path
