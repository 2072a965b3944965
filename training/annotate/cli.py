"""Command line: `python -m comfyui_framelevel.training.annotate {annotate,plan,metrics} ...`.

annotate  caption a folder of videos into a frame-level dataset (resumable; see pipeline.py)
plan      print the clips and captioned frames a video would give, without any model
metrics   Confusion Degree and text-video consistency of a video against its story (frame prompts)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...nodes.story.client import ChatClient, ClientOptions, LLMError  # noqa: TID252 - package-relative
from .caption import CaptionOptions
from .dedup import DedupOptions
from .sampling import SAMPLING_MODES, SamplingOptions


def _add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("clip sampling")
    group.add_argument("--mode", choices=SAMPLING_MODES, default="paper",
                       help="paper: caption 1 frame in 8 at 24 fps; latent: one frame per latent frame")
    group.add_argument("--clip-seconds", type=float, default=8.0, help="length of each clip (s)")
    group.add_argument("--segments", type=int, default=4, help="clips per video, one per segment")
    group.add_argument("--margin", type=float, default=0.1, help="fraction skipped at each end")
    group.add_argument("--out-fps", type=float, default=16.0, help="frame rate of written clips")
    group.add_argument("--caption-fps", type=float, default=24.0, help="paper mode: frame grid (fps)")
    group.add_argument("--caption-every", type=int, default=8, help="paper mode: caption 1 in this many")


def _sampling_options(args) -> SamplingOptions:
    return SamplingOptions(mode=args.mode, clip_seconds=args.clip_seconds, segments=args.segments,
                           margin=args.margin, out_fps=args.out_fps, caption_fps=args.caption_fps,
                           caption_every=args.caption_every)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m comfyui_framelevel.training.annotate",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    annotate = commands.add_parser("annotate", help="caption videos into a frame-level dataset")
    annotate.add_argument("--videos", type=Path, required=True, help="folder of source videos (recursive)")
    annotate.add_argument("--out", type=Path, required=True, help="dataset folder (created; resumable)")
    annotate.add_argument("--base-url", default="http://127.0.0.1:11434/v1", help="OpenAI-compatible /v1 URL")
    annotate.add_argument("--model", required=True, help="vision-language model name on the server")
    annotate.add_argument("--api-key-env", default="", help="NAME of the env variable holding the API key: FRAMELEVEL_LLM_* or one listed in "
                          "FRAMELEVEL_LLM_KEY_ENVS (plain http:// only to loopback or FRAMELEVEL_LLM_ALLOW_HTTP hosts)")
    annotate.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    annotate.add_argument("--retries", type=int, default=3, help="retries on 429/5xx/connection errors")
    annotate.add_argument("--backoff", type=float, default=1.0, help="first retry delay (s), doubling")
    annotate.add_argument("--cache-dir", type=Path, default=None, help="reply cache (default OUT/.cache/llm)")
    annotate.add_argument("--no-structured", action="store_true", help="never send response_format")
    annotate.add_argument("--max-images", type=int, default=24, help="frames per request")
    annotate.add_argument("--alike-bits", type=int, default=4,
                          help="pHash distance under which consecutive frames share a caption")
    annotate.add_argument("--dedup-bits", type=int, default=10,
                          help="pHash distance under which two videos' frames count as the same")
    annotate.add_argument("--temperature", type=float, default=0.2)
    annotate.add_argument("--seed", type=int, default=0)
    annotate.add_argument("--no-trainer-view", action="store_true", help="skip OUT/train/")
    _add_sampling_arguments(annotate)

    plan = commands.add_parser("plan", help="show clip positions and captioned frames, no model")
    plan.add_argument("video", type=Path)
    _add_sampling_arguments(plan)

    metrics = commands.add_parser("metrics", help="Confusion Degree and consistency of one video")
    metrics.add_argument("--video", type=Path, required=True, help="the generated video")
    metrics.add_argument("--prompts", type=Path, required=True,
                         help='story text file, read as FrameLevelPromptSchedule reads it (e.g. the paper\'s JSON '
                              '{"1": ..., "8": ...} with 1-based LATENT frame keys) over the video\'s length')
    metrics.add_argument("--format", default="auto", help="story format (as the schedule node's format input)")
    metrics.add_argument("--key-unit", default="pixel", help="unit of keyframe-line keys: latent, pixel, seconds")
    metrics.add_argument("--fps", type=float, default=None, help="fps for keys in seconds (default: the video's)")
    metrics.add_argument("--checkpoint", type=Path, required=True, help="local transformers CLIP folder")
    metrics.add_argument("--video-prompt", default="", help="video-level prompt (text, or @file)")
    metrics.add_argument("--normalize", choices=("row", "col", "sym", "none"), default="row")
    metrics.add_argument("--frames-per-prompt", type=int, default=1, help="pixel frames per prompt")
    metrics.add_argument("--device", default="cpu")
    metrics.add_argument("--json", action="store_true", help="print only the JSON numbers")
    return parser


def run_annotate(args) -> int:
    from .pipeline import AnnotateOptions, run_annotation

    client = ChatClient(ClientOptions(
        base_url=args.base_url, model=args.model, api_key_env=args.api_key_env, timeout_s=args.timeout,
        max_retries=args.retries, backoff_s=args.backoff, cache_dir=args.cache_dir or args.out / ".cache" / "llm"))
    options = AnnotateOptions(
        videos=args.videos, out=args.out, sampling=_sampling_options(args),
        caption=CaptionOptions(max_images=args.max_images, alike_bits=args.alike_bits,
                               temperature=args.temperature, seed=args.seed, structured=not args.no_structured),
        dedup=DedupOptions(max_bits=args.dedup_bits), trainer_view=not args.no_trainer_view)
    report = run_annotation(options, client, log=lambda line: print(line, flush=True))
    print(f"done: {len(report.written)} written, {len(report.resumed)} already finished, "
          f"{len(report.duplicates)} duplicate videos skipped, {len(report.failed)} failed", flush=True)
    return 1 if report.failed else 0


def run_plan(args) -> int:
    from .sampling import plan_clips
    from .video_io import probe

    info = probe(args.video)
    plans = plan_clips(info.duration_s, _sampling_options(args))
    rows = [{"clip": p.index, "start_s": round(p.start_s, 4), "pixel_frames": p.pixel_frames,
             "latent_frames": p.latent_frames, "caption_times_s": [round(t, 4) for t in p.caption_times],
             "latent_caption": list(p.latent_caption)} for p in plans]
    print(json.dumps({"video": str(args.video), "duration_s": info.duration_s, "fps": info.fps, "clips": rows},
                     indent=1))
    return 0


def run_metrics(args) -> int:
    import numpy as np

    from ...nodes.story.embedders import load_embedder  # noqa: TID252 - package-relative
    from ...nodes.story.evaluate import MetricsOptions, evaluate_video, story_spans  # noqa: TID252 - package-relative
    from .video_io import decode_window, probe

    video_prompt = args.video_prompt
    if video_prompt.startswith("@"):
        video_prompt = Path(video_prompt[1:]).read_text(encoding="utf-8")
    info = probe(args.video)
    _, frames = decode_window(args.video, 0.0, info.duration_s + 1.0)
    spans = story_spans(args.prompts.read_text(encoding="utf-8"), len(frames), fps=args.fps or info.fps,
                        fmt=args.format, key_unit=args.key_unit)
    report = evaluate_video(np.stack(frames), spans, load_embedder(args.checkpoint, args.device), video_prompt,
                            MetricsOptions(normalize=args.normalize, frames_per_prompt=args.frames_per_prompt))
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.format())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"annotate": run_annotate, "plan": run_plan, "metrics": run_metrics}
    try:
        return handlers[args.command](args)
    except (FileNotFoundError, ValueError, LLMError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
