"""Caption files read as story text (the schedule node's meaning), the pixel-key converter (golden
cases of the earlier reading), caching (each distinct caption encoded once), bucketing."""

from __future__ import annotations

import json

import pytest
import torch
from comfyui_framelevel.nodes.core import frames as fm
from comfyui_framelevel.nodes.core.prompts import compile_prompt_schedule
from comfyui_framelevel.training.data.cache import DataConfig, build_cache
from comfyui_framelevel.training.data.captions import (
    convert_caption_file,
    convert_pixel_keys,
    distinct_frame_prompts,
    story_text,
)
from comfyui_framelevel.training.data.dataset import BatchPlan, CachedData, collate, pad_rows, shard
from comfyui_framelevel.training.testing import (
    PatchMeanVAE,
    WordHashTextEncoder,
    tiny_umt5_encoder,
    write_latent_dataset,
)


def per_latent(story: str, latent_frames: int) -> list[str]:
    texts, routing = distinct_frame_prompts(story_text(story), latent_frames)
    return [texts[i] for i in routing]


def test_caption_files_mean_what_the_schedule_node_reads():
    story = json.dumps({"1": "x", "2": "y", "4": "x"})  # sparse 1-based latent keys
    assert per_latent(story, 5) == ["x", "y", "y", "x", "x"]
    texts, routing = distinct_frame_prompts(story, 5)
    assert texts == ["x", "y"] and routing == [0, 1, 1, 0, 0]
    for text in (story, "0: x\n4: y", "x\ny\nz"):  # any story syntax the node reads
        node = compile_prompt_schedule(text, length=fm.pixel_count(5))
        assert per_latent(text, 5) == list(node.prompts)


def test_latent_wrapper_is_read_and_pixel_keyed_files_are_refused():
    wrapped = json.dumps({"unit": "latent", "captions": {"1": "x", "3": "y"}})
    assert per_latent(wrapped, 4) == ["x", "x", "y", "y"]
    for legacy in ({"unit": "pixel", "captions": {"1": "x"}}, {"captions": {"1": "x"}}):
        with pytest.raises(ValueError, match="convert-captions --pixel-keys"):
            story_text(json.dumps(legacy), "old.json")
    with pytest.raises(ValueError, match="old.json: .*past the end.*convert-captions"):
        distinct_frame_prompts(json.dumps({"1": "a", "33": "b"}), 21, "old.json")  # a pixel-keyed bare file


# The trainer's earlier reading of pixel keys (a latent frame takes the caption covering most of its
# pixel frames, ties to the later caption), kept by the converter.
@pytest.mark.parametrize("captions, pixel_frames, expected", [
    ({"1": "a"}, 9, [0, 0, 0]),
    # latent 0 = pixel 1 (1-based); latent 1 = pixels 2-5; latent 2 = pixels 6-9
    ({"1": "a", "2": "b"}, 9, [0, 1, 1]),
    ({"1": "a", "6": "b"}, 9, [0, 0, 1]),
    ({"1": "a", "4": "b"}, 9, [0, 1, 1]),  # 2:2 tie in latent 1 goes to the later caption
    ({"1": "a", "5": "b"}, 9, [0, 0, 1]),  # pixels 2-4 'a' (3 of 4) win latent 1
    ({"1": "a", "3": "b", "4": "c"}, 9, [0, 2, 2]),  # latent 1: a,b,c,c -> c
    # 81 frames -> 21 latents; latent 8 = pixels 30-33 (a,a,a,b) stays 'a'; latent 20 = pixels 78-81
    ({"1": "a", "33": "b", "79": "c"}, 81, [0] * 9 + [1] * 11 + [2]),
    ({"1": "a", "33": "b", "81": "c"}, 81, [0] * 9 + [1] * 12),  # 'c' covers 1 of 4 pixels: never shown
])
def test_converter_keeps_the_earlier_meaning_of_pixel_keys(captions, pixel_frames, expected):
    story, dropped = convert_pixel_keys(captions, pixel_frames=pixel_frames)
    texts = list(captions.values())
    assert per_latent(json.dumps(story), fm.latent_count(pixel_frames)) == [texts[i] for i in expected]
    assert [d.split(":")[0] for d in dropped] == [f"pixel frame {k}" for i, k in enumerate(captions)
                                                  if i not in expected]


def test_convert_caption_file_rewrites_in_place(tmp_path):
    wrapped, bare = tmp_path / "a.json", tmp_path / "b.json"
    wrapped.write_text(json.dumps({"unit": "pixel", "captions": {"1": "x", "6": "y"}}))
    bare.write_text(json.dumps({"1": "x", "6": "y"}))
    assert convert_caption_file(wrapped) == [] and convert_caption_file(bare, pixel_keys=True) == []
    assert json.loads(wrapped.read_text()) == json.loads(bare.read_text()) == {"1": "x", "3": "y"}
    open_ended, _ = convert_pixel_keys({"1": "x", "5": "y"})  # y starts late in latent 1, holds latent 2
    assert open_ended == {"1": "x", "3": "y"}


@pytest.mark.parametrize("bad, needle", [
    ({"2": "a"}, "first keyframe"), ({"0": "a"}, "1-based"), ({"1": ""}, "empty"),
    ({"unit": "seconds", "captions": {"1": "a"}}, "convert"), ([], "list is empty"),
])
def test_caption_errors_name_the_problem(bad, needle):
    with pytest.raises(ValueError, match=needle):
        distinct_frame_prompts(story_text(json.dumps(bad)), 4)


def test_umt5_path_trims_real_rows_and_cache_encodes_each_distinct_caption_once(tmp_path):
    clips = [{"name": "c1", "captions": {"1": "red fox runs", "3": "blue sky"}},
             {"name": "c2", "captions": {"1": "blue sky"}},
             {"name": "c3", "captions": {"1": "red fox runs", "2": "blue sky", "3": "green tree"}}]
    write_latent_dataset(tmp_path / "data", clips)
    encoder = tiny_umt5_encoder("red fox runs blue sky green tree".split())
    calls = []
    original = encoder.encode
    encoder.encode = lambda texts: (calls.extend(texts), original(texts))[1]
    config = DataConfig(dataset_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), text_len=16)
    report = build_cache(config, encoder)
    assert sorted(calls) == ["blue sky", "green tree", "red fox runs"]
    assert report.captions_encoded == 3 and report.clips == 3
    report = build_cache(config, encoder)  # second run: nothing new to encode
    assert len(calls) == 3 and report.captions_reused == 3
    data = CachedData(tmp_path / "cache")
    red = data.text(data.items[0]["captions"][0])
    assert red.shape == (4, 32)  # 3 words + </s>, trimmed (no pad rows stored)
    padded = pad_rows(red, 16)
    assert padded.shape == (16, 32) and (padded[4:] == 0).all()


def test_pixel_clips_are_encoded_bucketed_and_normalised(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    torch.save(torch.randint(0, 255, (11, 40, 56, 3), dtype=torch.uint8), folder / "clip.pt")
    (folder / "clip.json").write_text(json.dumps({"1": "one", "3": "two"}))  # latent frame 2 of 3
    config = DataConfig(dataset_dir=str(folder), cache_dir=str(tmp_path / "cache"), text_len=8,
                        resolutions=((32, 32), (32, 48)), frame_buckets=(5, 9))
    build_cache(config, WordHashTextEncoder(32), PatchMeanVAE())
    item = CachedData(tmp_path / "cache").items[0]
    assert (item["frames"], item["height"], item["width"], item["pixel_frames"]) == (3, 4, 6, 9)
    assert item["frame_prompt"] == [0, 0, 1]


def test_batch_plan_is_deterministic_single_bucket_and_shards_evenly():
    buckets = [(3, 4, 4)] * 5 + [(5, 4, 6)] * 4
    plan = BatchPlan(buckets, global_batch=2, seed=7)
    assert plan.batches_per_epoch == 2 + 2
    epoch = plan.epoch(0)
    assert epoch == BatchPlan(buckets, 2, 7).epoch(0) and epoch != plan.epoch(1)
    assert all(len({buckets[i] for i in batch}) == 1 for batch in epoch)
    stream = plan.from_position(3)
    assert next(stream) == (3, plan.epoch(0)[3]) and next(stream) == (4, plan.epoch(1)[0])
    assert shard([10, 11, 12, 13], 1, 2) == ([12, 13], [2, 3])
    with pytest.raises(ValueError, match="global_batch_size"):
        BatchPlan([(1, 1, 1)], global_batch=2, seed=0)


def test_collate_packs_distinct_prompts_of_the_batch(tmp_path):
    clips = [{"name": "a", "captions": {"1": "x y", "2": "z"}}, {"name": "b", "captions": {"1": "z"}}]
    write_latent_dataset(tmp_path / "data", clips)
    config = DataConfig(dataset_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), text_len=8)
    build_cache(config, WordHashTextEncoder(32))
    data = CachedData(tmp_path / "cache")
    batch = collate(data, [0, 1], [0, 1], text_len=8)
    assert batch.latents.shape == (2, 16, 3, 4, 4)
    assert batch.frame_text.num_segments == 2  # "x y" and "z", each once
    assert batch.frame_text.frame_prompt.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert batch.frame_text.key_bias.tolist().count(0.0) == 3  # 2 + 1 real rows; pad rows carry ln(n)


def test_umt5_encoder_pads_to_the_longest_caption_and_matches_wans_512_padding():
    """Real rows equal those of a run padded to max_length (Wan's reference), and a caption's rows do
    not depend on the other captions of its batch."""
    words = "red fox runs over the blue sky past a green tree at dawn".split()
    encoder = tiny_umt5_encoder(words, max_length=64)
    texts = ["red fox runs", " ".join(words), "blue  sky"]
    rows = encoder.encode(texts)
    tokens = encoder.tokenizer([" ".join(t.split()) for t in texts], padding="max_length", max_length=64,
                               truncation=True, return_tensors="pt")
    with torch.no_grad():
        reference = encoder.encoder(input_ids=tokens["input_ids"],
                                    attention_mask=tokens["attention_mask"]).last_hidden_state
    for i, got in enumerate(rows):
        n = int(tokens["attention_mask"][i].sum())
        assert got.shape == (n, 32)
        torch.testing.assert_close(got, reference[i, :n], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got, encoder.encode([texts[i]])[0], rtol=1e-5, atol=1e-6)
