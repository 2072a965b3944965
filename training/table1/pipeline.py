"""The experiment end to end: data -> `cli.py cache` -> `cli.py train` (full export) -> ComfyUI long
sampling -> metrics -> table rows. `run_table1(settings, work, comfyui_path)` returns the result dict
that report.py prints and writes."""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...nodes.core.files import write_text_atomic  # noqa: TID252 - package-relative
from .comfy_sampling import (
    METHODS,
    ComfyLongSampler,
    LoopSettings,
    PromptEncoder,
    frame_conditioning,
    video_conditioning,
)
from .dataset import (
    KINDS,
    ModelShape,
    TrainSettings,
    distinct_captions,
    save_text_encoder,
    training_toml,
    write_config,
    write_dataset,
    write_initial_weights,
)
from .domain import (
    SCENES,
    ClipRecipe,
    ClipSpec,
    clean_scene_frames,
    evaluation_stories,
    render,
    training_clips,
    video_caption,
)
from .measure import SceneClassifier, mean_scores, score_clip

CLI = Path(__file__).resolve().parents[1] / "cli.py"
PROMPTS = ("video", "frame")


@dataclass(frozen=True)
class Table1Settings:
    clips: int = 512  # training clips (the same latents for both runs)
    train_frames: int = 8  # latent frames per training clip = the loops' window
    length_factor: int = 4  # generated length = factor x training length
    size: int = 8  # latent height = width
    text_len: int = 64  # prompt rows after zero padding (training and sampling)
    stories: int = 24  # long stories generated per row
    story_scenes: tuple[int, int] = (4, 6)
    train: TrainSettings = field(default_factory=TrainSettings)
    model: ModelShape = field(default_factory=ModelShape)
    loops: LoopSettings = field(default_factory=LoopSettings)
    baseline: bool = True  # also train and sample the video-caption / synchronous baseline
    classifier_frames_per_scene: int = 200
    # torch threads while sampling: this model's calls are tiny, and on a shared CPU 2 threads ran the
    # same samples 4-15x slower than 1 (oversubscription); training keeps torch's default
    sampling_threads: int = 1
    seed: int = 0

    @property
    def long_frames(self) -> int:
        return self.train_frames * self.length_factor

    def kinds(self) -> tuple[str, ...]:
        return KINDS if self.baseline else ("frame",)


QUICK = Table1Settings(clips=192, stories=3, baseline=False, train=TrainSettings(max_steps=250),
                       classifier_frames_per_scene=100)


def run_cli(args: list[str], log: Path) -> str:
    """Run training/cli.py with this interpreter; stdout+stderr go to `log`; raise with its tail."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(CLI), *args], capture_output=True, text=True, env=env)
    write_text_atomic(log, proc.stdout + proc.stderr)
    if proc.returncode:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"cli.py {' '.join(args[:1])} failed ({proc.returncode}); log {log}:\n{tail}")
    return proc.stdout


def prepare(settings: Table1Settings, work: Path) -> list[ClipSpec]:
    """Datasets, configs, the tiny UMT5 folder and the initial weights under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    recipe = ClipRecipe(frames=settings.train_frames, size=settings.size)
    clips = training_clips(settings.clips, recipe, seed=settings.seed)
    for kind in settings.kinds():
        write_dataset(work / f"data_{kind}", clips, kind, settings.size, seed=settings.seed)
        raw = training_toml(kind, work, settings.train_frames, settings.size, settings.text_len, settings.train)
        write_config(work / f"{kind}.toml", raw)
    save_text_encoder(work / "umt5", settings.text_len)
    write_initial_weights(work / "init.safetensors", settings.model, settings.seed)
    return clips


def cache_and_check(kind: str, work: Path, clips: list[ClipSpec]) -> dict:
    """`cli.py cache`; checks that each distinct caption was encoded exactly once."""
    out = run_cli(["cache", "--config", str(work / f"{kind}.toml"), "--text-encoder", str(work / "umt5")],
                  work / f"cache_{kind}.log")
    match = re.search(r"captions: (\d+) encoded, (\d+) already cached", out)
    distinct = len(distinct_captions(clips, kind))
    files = len(list((work / f"cache_{kind}" / "text").glob("*.safetensors")))
    if match is None or int(match.group(1)) + int(match.group(2)) != distinct or files != distinct:
        raise RuntimeError(f"cache of {kind!r}: {distinct} distinct captions, but the cache step reported "
                           f"{match.group(0) if match else out[-300:]!r} and wrote {files} text files")
    return {"distinct_captions": distinct, "encoded": int(match.group(1)), "text_files": files}


def train(kind: str, work: Path) -> Path:
    """`cli.py train`; the trainer exports full original-named weights at the end."""
    run_cli(["train", "--config", str(work / f"{kind}.toml")], work / f"train_{kind}.log")
    weights = work / f"run_{kind}" / "model.safetensors"
    if not weights.is_file():
        raise RuntimeError(f"training {kind!r} ended without {weights}")
    return weights


def fit_classifier(settings: Table1Settings) -> tuple[SceneClassifier, float]:
    frames, labels = clean_scene_frames(settings.classifier_frames_per_scene, settings.size, seed=7)
    held_frames, held_labels = clean_scene_frames(50, settings.size, seed=8)
    classifier = SceneClassifier().fit(frames, labels)
    return classifier, classifier.accuracy(held_frames, held_labels)


def story_conditioning(adapter, encode: PromptEncoder, story: ClipSpec, prompt: str) -> list:
    if prompt == "frame":
        return frame_conditioning(adapter, encode, [SCENES[s].caption for s in story.caption_scenes()])
    return video_conditioning(encode, video_caption(story.scenes))


def sample_rows(kind: str, weights: Path, settings: Table1Settings, stories: list[ClipSpec],
                classifier: SceneClassifier, work: Path, comfyui_path: str, progress=print) -> list[dict]:
    """Every (prompt, method) row of one trained model; story i uses noise seed i in every row."""
    sampler = ComfyLongSampler(comfyui_path, weights, settings.loops)
    encode = PromptEncoder(work / "umt5", settings.text_len)
    rows = []
    for method in METHODS:
        for prompt in PROMPTS:
            scores = []
            for i, story in enumerate(stories):
                positive = story_conditioning(sampler.adapter, encode, story, prompt)
                latent = sampler.sample(method, positive, story.frames, settings.size, seed=i)
                scores.append(score_clip(story, latent, classifier))
            rows.append({"training": kind, "prompt": prompt, "method": method, **mean_scores(scores)})
            progress(f"[table1] {kind}-trained, {prompt}-level prompts, {method}: adherence "
                     f"{rows[-1]['adherence']:.3f}, CD {rows[-1]['confusion_degree']:.3f}")
    return rows


def reference_row(stories: list[ClipSpec], classifier: SceneClassifier, size: int) -> dict:
    """The metrics of the rendered stories themselves: the best a generator can score."""
    scores = [score_clip(story, render(story, size, seed=10_000 + i), classifier) for i, story in enumerate(stories)]
    return {"training": "reference", "prompt": "-", "method": "-", **mean_scores(scores)}


def machine() -> str:
    try:
        load = "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        load = "load average unknown"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {load} at the end"


def settings_dict(settings: Table1Settings) -> dict:
    out = dataclasses.asdict(settings)
    out.update(long_frames=settings.long_frames, scenes=len(SCENES))
    out["loops"]["steps"] = settings.loops.steps
    return out


def run_table1(settings: Table1Settings, work: Path, comfyui_path: str, progress=print) -> dict:
    timings, cache, weights = {}, {}, {}
    start = time.perf_counter()

    def lap(name):
        now = time.perf_counter()
        timings[name] = now - lap.last
        lap.last = now
        progress(f"[table1] {name}: {timings[name]:.0f} s")
    lap.last = start
    clips = prepare(settings, work)
    lap("prepare")
    for kind in settings.kinds():
        cache[kind] = cache_and_check(kind, work, clips)
        lap(f"cache {kind}")
        weights[kind] = train(kind, work)
        lap(f"train {kind}")
    classifier, accuracy = fit_classifier(settings)
    stories = evaluation_stories(settings.stories, settings.long_frames, settings.story_scenes,
                                 size=settings.size, seed=settings.seed + 1000)
    rows = [reference_row(stories, classifier, settings.size)]
    lap("classifier")
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.sampling_threads)
    try:
        for kind in settings.kinds():
            rows += sample_rows(kind, weights[kind], settings, stories, classifier, work, comfyui_path, progress)
            lap(f"sample+measure {kind}")
    finally:
        torch.set_num_threads(threads)
    timings["total"] = time.perf_counter() - start
    return {"rows": rows, "settings": settings_dict(settings), "classifier_accuracy": accuracy, "cache": cache,
            "timings_s": timings, "machine": machine(),
            "stories": [{"scenes": s.scenes, "starts": [seg.start for seg in s.segments]} for s in stories]}
