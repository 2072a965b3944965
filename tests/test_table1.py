"""Table 1 in miniature (training/table1): the synthetic domain, its caption files as the trainer reads
them, caching each caption once, the scene classifier and metrics against closed forms, the loop
layouts, and (slow, ComfyUI) the reduced end-to-end run with loose thresholds."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from comfyui_framelevel.training.data.cache import DataConfig, build_cache
from comfyui_framelevel.training.data.captions import distinct_frame_prompts, load_captions
from comfyui_framelevel.training.table1 import dataset as ds
from comfyui_framelevel.training.table1 import domain, measure
from comfyui_framelevel.training.table1.comfy_sampling import METHODS, LoopSettings, planner_for
from comfyui_framelevel.training.table1.report import markdown_table, write_results
from comfyui_framelevel.training.testing import WordHashTextEncoder


@pytest.fixture(scope="module")
def classifier():
    frames, labels = domain.clean_scene_frames(60, seed=1)
    return measure.SceneClassifier().fit(frames, labels)


def test_domain_is_deterministic_and_clips_follow_the_recipe():
    a, b = domain.training_clips(40, seed=3), domain.training_clips(40, seed=3)
    assert a == b and a != domain.training_clips(40, seed=4)
    assert torch.equal(domain.render(a[0], seed=5), domain.render(b[0], seed=5))
    for spec in a:
        lengths = np.diff([s.start for s in spec.segments] + [spec.frames])
        assert spec.segments[0].start == 0 and lengths.min() >= 2 and len(spec.caption_scenes()) == 8
        assert len(set(spec.scenes)) == len(spec.scenes) <= 3
    assert {len(s.segments) for s in a} == {1, 2, 3} and any(any(s.morphs) for s in a)


def test_segment_weights_cut_and_morph():
    spec = domain.ClipSpec(6, (domain.Segment(0, 0, (0, 0)), domain.Segment(1, 3, (0, 0))), (True,))
    weights = domain.segment_weights(spec)
    assert torch.allclose(weights.sum(0), torch.ones(6))
    assert torch.allclose(weights[1], torch.tensor([0, 0, 1 / 3, 2 / 3, 1, 1]))
    cut = domain.segment_weights(domain.ClipSpec(6, spec.segments, (False,)))
    assert torch.equal(cut[1], torch.tensor([0.0, 0, 0, 1, 1, 1]))


def test_evaluation_stories_are_cut_only_distinct_scenes():
    stories = domain.evaluation_stories(20, 32, seed=2)
    for story in stories:
        lengths = np.diff([s.start for s in story.segments] + [32])
        assert 4 <= len(story.scenes) <= 6 and len(set(story.scenes)) == len(story.scenes)
        assert lengths.min() >= 4 and not any(story.morphs)


def test_caption_files_give_the_trainer_one_caption_per_latent_frame(tmp_path):
    spec = domain.training_clips(12, seed=0)[5]
    for kind in ds.KINDS:
        path = ds.write_caption_file(tmp_path / f"{kind}.json", ds.clip_captions(spec, kind))
        raw = json.loads(path.read_text())   # the paper's JSON object: 1-based latent keys
        assert list(raw)[0] == "1"
        texts, routing = distinct_frame_prompts(load_captions(path), spec.frames)
        if kind == "frame":
            assert [domain.scene_of_caption(texts[i]) for i in routing] == spec.caption_scenes()
            assert list(raw) == [str(s.start + 1) for s in spec.segments]
        else:
            assert texts == [domain.video_caption(spec.scenes)] and routing == [0] * spec.frames


def test_cache_encodes_each_distinct_caption_once(tmp_path):
    clips = domain.training_clips(10, seed=1)
    for kind in ds.KINDS:
        ds.write_dataset(tmp_path / kind, clips, kind)
        encoder = WordHashTextEncoder(8)
        config = DataConfig(dataset_dir=str(tmp_path / kind), cache_dir=str(tmp_path / f"cache_{kind}"))
        report = build_cache(config, encoder)
        assert sorted(encoder.seen) == sorted(ds.distinct_captions(clips, kind))
        assert report.clips == 10
        again = WordHashTextEncoder(8)
        build_cache(config, again)
        assert again.seen == []


def test_saved_tiny_umt5_loads_like_the_cache_step_and_separates_captions(tmp_path):
    from comfyui_framelevel.training.data.encoders import UMT5TextEncoder
    folder = ds.save_text_encoder(tmp_path / "umt5", max_length=32, width=32)   # the run uses width 4096
    encoder = UMT5TextEncoder.from_pretrained(str(folder))     # what `cli.py cache --text-encoder` calls
    captions = [s.caption for s in domain.SCENES[:3]] + [domain.video_caption([0, 1])]
    out = encoder.encode(captions)
    assert [o.shape for o in out] == [(6, 32)] * 3 + [(12, 32)]   # words + </s>
    flat = [o.flatten() for o in out[:3]]
    assert all((flat[i] - flat[j]).abs().max() > 1e-2 for i in range(3) for j in range(i))


def test_training_configs_validate(tmp_path):
    from comfyui_framelevel.training.config import config_from_dict
    ds.write_initial_weights(tmp_path / "init.safetensors", ds.ModelShape(num_layers=1))
    for kind in ds.KINDS:
        config = config_from_dict(ds.training_toml(kind, tmp_path, 8, 8, 64, ds.TrainSettings()))
        assert config.lora is None and config.data.frame_buckets == (29,)
        assert (config.objective.df_ratio > 0) == (kind == "frame")


def test_classifier_and_fidelity_on_clean_frames(classifier):
    frames, labels = domain.clean_scene_frames(20, seed=9)
    assert classifier.accuracy(frames, labels) >= 0.99
    right, _ = measure.place_objects(frames, labels)
    wrong, _ = measure.place_objects(frames, (labels + 1) % len(domain.SCENES))
    assert 0.85 < float(right.mean()) < 0.97 and float(wrong.max()) < 0.5


def test_rendered_story_scores_perfectly(classifier):
    story = domain.evaluation_stories(1, 32, seed=4)[0]
    scores = measure.score_clip(story, domain.render(story, seed=1), classifier)
    assert scores.adherence == 1.0 and scores.drift == 0.0 and scores.frame_consistency > 0.99
    assert scores.confusion_degree < 0.1 and scores.motion_coherence == 1.0 and scores.world_consistency == 1.0
    reversed_in_segments = [f for frames in measure.segment_frames(story) for f in reversed(frames)]
    backwards = measure.score_clip(story, domain.render(story, seed=1)[:, reversed_in_segments], classifier)
    assert backwards.adherence == 1.0 and backwards.motion_coherence == 0.0   # every object moves the wrong way


def test_one_static_scene_gives_the_closed_form_cd(classifier):
    """A video that shows one scene throughout: every visual unit is the same vector, so the pack's CD
    is (N - 1) - mean of off-diagonal prompt cosines = N - 1 for one-hot prompts (whatever the floor)."""
    story = domain.evaluation_stories(1, 32, seed=6)[0]
    frame = domain.render(domain.ClipSpec(1, (domain.Segment(story.scenes[0], 0, (2, 3)),)), seed=2)
    scores = measure.score_clip(story, frame.expand(-1, 32, -1, -1), classifier)
    n = len(story.segments)
    first = story.segments[1].start
    assert scores.confusion_degree == pytest.approx(n - 1, abs=1e-2)
    assert scores.adherence == pytest.approx(first / 32)
    drifting = measure.score_clip(story, domain.render(
        domain.ClipSpec(32, story.segments[:1] + (domain.Segment(7 - story.scenes[0], 24, (0, 0)),)), seed=2),
        classifier)
    assert drifting.adherence_last_quarter < 1.0 and drifting.drift > 0


def test_world_is_read_back_and_a_changed_world_counts_as_lost(classifier):
    import dataclasses
    story = domain.evaluation_stories(1, 32, seed=5)[0]
    worlds = [domain.render(dataclasses.replace(story, tint=t), seed=t) for t in range(domain.TINTS)]
    for tint, latent in enumerate(worlds):
        assert measure.read_worlds(latent.permute(1, 0, 2, 3)).tolist() == [tint] * 32
    switched = torch.cat([worlds[0][:, :16], worlds[2][:, 16:]], dim=1)
    scores = measure.score_clip(story, switched, classifier)
    assert scores.world_consistency == 0.0 and scores.adherence == 1.0


def test_loop_layouts_cover_the_long_video():
    loops = LoopSettings()
    sigmas = torch.linspace(1, 0, loops.steps + 1)
    for method in METHODS:
        plan = planner_for(method, loops)(sigmas, 32, ())
        assert plan.sigmas.shape[1] == 32 and float(plan.sigmas[-1].abs().max()) == 0.0
        assert all(len(w.frames) == loops.window for step in plan.windows for w in step)
    assert len(planner_for("pmwd", loops)(sigmas, 32, ()).windows[0]) == 7


def test_report_writes_json_and_markdown(tmp_path):
    row = {"training": "frame", "prompt": "frame", "method": "pmwd", "adherence": 0.9, "adherence_sem": 0.01,
           "confusion_degree": 0.2, "frame_consistency": 0.9, "adherence_first_quarter": 1.0,
           "adherence_last_quarter": 0.8, "drift": 0.2, "fidelity_first_quarter": 0.9,
           "fidelity_last_quarter": 0.8, "fidelity_drift": 0.1, "motion_coherence": 0.7, "world_consistency": 1.0,
           "world_consistency_sem": 0.0}
    table = markdown_table([row])
    assert "| frame captions + DF | frame-level | PMWD | 0.900 |" in table and "+0.200" in table
    from comfyui_framelevel.training.table1.pipeline import QUICK, settings_dict
    result = {"rows": [row], "settings": settings_dict(QUICK), "timings_s": {"total": 80.0},
              "classifier_accuracy": 1.0, "cache": {}, "machine": "test"}
    paths = write_results(result, tmp_path / "out" / "table1")
    assert json.loads(paths[0].read_text())["rows"] == [row]
    text = paths[1].read_text()
    assert table in text and "32 latent frames (4x)" in text and "250 steps x batch 16" in text


@pytest.mark.slow
@pytest.mark.comfyui
def test_reduced_table1_shows_frame_prompts_beat_video_prompts_and_pmwd_does_not_drift(tmp_path):
    """The quick run (~2 min): trainer CLI, ComfyUI sampling, metrics. Loose thresholds, stated:
    frame-level adherence exceeds video-level adherence by 0.4 and its CD is lower by 1 for every
    loop; PMWD frame-level adherence >= 0.7; PMWD's drift at most 0.15 above sliding's and FIFO's."""
    from comfyui_framelevel.training.table1.pipeline import QUICK, run_table1
    result = run_table1(QUICK, tmp_path, os.environ["COMFYUI_PATH"], progress=lambda line: None)
    rows = {(r["training"], r["prompt"], r["method"]): r for r in result["rows"]}
    assert result["classifier_accuracy"] >= 0.98
    for method in METHODS:
        frame, video = rows["frame", "frame", method], rows["frame", "video", method]
        assert frame["adherence"] >= video["adherence"] + 0.4, (method, frame, video)
        assert frame["confusion_degree"] <= video["confusion_degree"] - 1.0, (method, frame, video)
    pmwd = rows["frame", "frame", "pmwd"]
    assert pmwd["adherence"] >= 0.7
    for other in ("sliding", "fifo"):
        assert pmwd["drift"] <= rows["frame", "frame", other]["drift"] + 0.15
