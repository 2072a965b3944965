"""Annotation CLI: clip positions and frame counts, perceptual de-duplication, shared captions,
the dataset layout, and resuming after the process is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from comfyui_framelevel.nodes.core import frames as fm  # noqa: E402
from comfyui_framelevel.nodes.prompt_nodes import FrameLevelPromptSchedule  # noqa: E402
from comfyui_framelevel.nodes.story.client import ChatClient, ClientOptions  # noqa: E402
from comfyui_framelevel.training.annotate.dedup import dhash, hamming, phash  # noqa: E402
from comfyui_framelevel.training.annotate.pipeline import AnnotateOptions, run_annotation  # noqa: E402
from comfyui_framelevel.training.annotate.sampling import SamplingOptions, plan_clips  # noqa: E402
from comfyui_framelevel.training.data.captions import distinct_frame_prompts, load_captions  # noqa: E402
from story_helpers import (  # noqa: E402
    ScriptedServer,
    caption_server_script,
    cli_command,
    make_video,
    pattern_frame,
)

CLI = "training.annotate"


def decoded_frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# ---- pure sampling ------------------------------------------------------------------------------
def test_paper_recipe_positions_and_counts():
    plans = plan_clips(50.0, SamplingOptions())
    assert [p.start_s for p in plans] == pytest.approx([6.0, 16.0, 26.0, 36.0])  # 10% margins, 4 segments
    for plan in plans:
        assert len(plan.caption_times) == 24  # one in 8 frames at 24 fps over 8 s
        assert np.diff(plan.caption_times) == pytest.approx(np.full(23, 1 / 3))
        assert plan.pixel_frames == 129 and plan.latent_frames == fm.latent_count(129) == 33
        assert plan.caption_times[0] >= 5.0 and plan.pixel_times()[-1] <= 45.0
        assert len(plan.latent_caption) == 33 and list(plan.latent_caption) == sorted(plan.latent_caption)


def test_latent_mode_captions_one_frame_per_latent():
    plan = plan_clips(30.0, SamplingOptions(mode="latent", clip_seconds=5.0, out_fps=16.0))[0]
    assert plan.pixel_frames == 81 and plan.latent_frames == 21
    assert list(plan.latent_caption) == list(range(21))
    middles = [plan.start_s + (r[0] + r[-1]) / 2 / 16.0 for r in map(fm.pixel_range_of_latent, range(21))]
    assert list(plan.caption_times) == pytest.approx(middles)


def test_short_segments_shorten_the_clip():
    plans = plan_clips(10.0, SamplingOptions(clip_seconds=8.0))
    assert len(plans) == 4 and all(p.pixel_times()[-1] - p.start_s <= 2.0 + 1e-9 for p in plans)
    assert all(fm.is_valid_pixel_count(p.pixel_frames) for p in plans)


# ---- hashing ----------------------------------------------------------------------------------
def test_perceptual_hashes_separate_unrelated_frames_and_keep_near_copies():
    base, other = pattern_frame(1), pattern_frame(2)
    brighter = np.clip(base.astype(int) + 12, 0, 255).astype(np.uint8)
    for hasher in (phash, dhash):
        assert hamming(hasher(base), hasher(base)) == 0
        assert hamming(hasher(base), hasher(brighter)) <= 6
        assert hamming(hasher(base), hasher(other)) >= 16


# ---- the run ----------------------------------------------------------------------------------
def make_client(server, cache_dir) -> ChatClient:
    return ChatClient(ClientOptions(base_url=server.base_url, model="vlm", timeout_s=5, max_retries=1,
                                    backoff_s=0.0, cache_dir=cache_dir), sleep=lambda s: None)


def test_paper_run_writes_the_dataset_drops_duplicates_and_shares_captions(tmp_path):
    videos = tmp_path / "videos"
    make_video(videos / "a.mp4", 50, seed=1)
    make_video(videos / "a_copy.mp4", 50, seed=1, brightness=8)  # near-duplicate of a
    make_video(videos / "b.mp4", 50, seed=2)
    out = tmp_path / "dataset"
    with ScriptedServer(caption_server_script()) as server:
        report = run_annotation(AnnotateOptions(videos, out), make_client(server, tmp_path / "cache"),
                                log=lambda line: None)
        requests = server.chat_requests()
    assert report.duplicates == {"a_copy.mp4": "a.mp4"} and not report.failed
    assert len(report.written) == 8
    # 24 captioned frames per clip, 3 per one-second scene: 8 distinct scenes shown, 8 images per request
    images = [sum(p.get("type") == "image_url" for p in r["body"]["messages"][1]["content"]) for r in requests]
    assert images == [8] * 8
    index = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert sorted(r["clip_id"] for r in index) == sorted(report.written)
    for record in index:
        folder = out / "clips" / record["clip_id"]
        story = (folder / "captions.json").read_text()
        assert decoded_frame_count(folder / "clip.mp4") == 129 == record["pixel_frames"]
        # the story, the trainer's reading of its view and the schedule node give the same prompts
        schedule, _ = FrameLevelPromptSchedule.execute(story, length=129, length_unit="pixel")
        texts, routing = distinct_frame_prompts(load_captions(out / "train" / f"{record['clip_id']}.json"), 33)
        captions = list(schedule.prompts)
        assert captions == [texts[i] for i in routing] == record["frame_captions"]
        assert len(set(captions)) == 8 and (folder / "DONE").exists()
        assert len(json.loads(story)) < 33  # one key per change of caption, not per latent frame
        scene_of_latent = [int(record["caption_times_s"][k]) for k in record["caption_of_latent"]]
        for i in range(32):  # neighbours share a caption exactly when they show the same scene
            assert (captions[i] == captions[i + 1]) == (scene_of_latent[i] == scene_of_latent[i + 1])
    assert json.loads((out / "duplicates.jsonl").read_text()) == {"video": "a_copy.mp4", "duplicate_of": "a.mp4"}


def test_plan_command_prints_clip_positions(tmp_path):
    video = make_video(tmp_path / "v.mp4", 12, seed=3)
    result = subprocess.run(cli_command(CLI, "plan", video, "--clip-seconds", "2"), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [c["start_s"] for c in plan["clips"]] == pytest.approx([1.4, 3.8, 6.2, 8.6])  # kept 1.2..10.8 s, 2.4 s segments
    assert all(c["pixel_frames"] == 33 and len(c["caption_times_s"]) == 6 for c in plan["clips"])


def _done_markers(out: Path) -> dict[str, int]:
    return {m.parent.name: m.stat().st_mtime_ns for m in (out / "clips").glob("*/DONE")}


def test_resume_after_sigkill_loses_and_redoes_nothing(tmp_path):
    videos = tmp_path / "videos"
    for seed in (4, 5, 6):
        make_video(videos / f"v{seed}.mp4", 12, seed=seed)
    out = tmp_path / "dataset"
    args = ["annotate", "--videos", videos, "--out", out, "--model", "vlm", "--clip-seconds", "2",
            "--timeout", "5", "--retries", "1"]
    with ScriptedServer(caption_server_script(delay_s=0.25)) as slow:
        child = subprocess.Popen(cli_command(CLI, *args, "--base-url", slow.base_url),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 45
        while len(_done_markers(out)) < 3 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    before = _done_markers(out)
    assert 3 <= len(before) < 12, child.stderr.read().decode()
    with ScriptedServer(caption_server_script()) as fast:
        result = subprocess.run(cli_command(CLI, *args, "--base-url", fast.base_url), capture_output=True,
                                text=True, timeout=90)
        second_run_requests = len(fast.chat_requests())
    assert result.returncode == 0, result.stderr
    after = _done_markers(out)
    assert len(after) == 12 and all(after[name] == stamp for name, stamp in before.items())
    assert second_run_requests <= 12 - len(before)
    index = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert sorted(r["clip_id"] for r in index) == sorted(after)
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.partial*"))
