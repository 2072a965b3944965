"""Confusion Degree and consistency: closed-form cases, properties, and the scoring pipeline."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from comfyui_framelevel.nodes.core.prompts import PromptScheduleError
from comfyui_framelevel.nodes.story.evaluate import MetricsOptions, evaluate_video, story_spans
from comfyui_framelevel.nodes.story.metrics import (
    confusion_degree,
    frame_level_consistency,
    frames_in_span,
    middle_of_segment_indices,
    video_level_consistency,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

E = np.eye(8)


def test_aligned_frames_with_a_shared_nuisance_direction_give_zero():
    text, visual = E[:4], E[:4] + 0.7 * E[5]
    assert confusion_degree(text, visual).value == pytest.approx(0.0, abs=1e-12)
    assert frame_level_consistency(text, visual) == pytest.approx(1 / math.sqrt(1.49))


def test_static_video_reduces_to_prompt_similarity():
    text = E[:4]
    static = np.tile(np.ones(8), (4, 1))
    assert confusion_degree(text, static).value == pytest.approx(3.0)  # (N-1) - mean off-diagonal S_TT
    rng = np.random.default_rng(3)
    correlated = rng.normal(size=(5, 8)) + 2.0
    unit = correlated / np.linalg.norm(correlated, axis=1, keepdims=True)
    s_tt = unit @ unit.T
    expected = 4 - (s_tt.sum() - np.trace(s_tt)) / 5
    frame = np.abs(rng.normal(size=8)) + 0.5
    assert confusion_degree(correlated, np.tile(frame, (5, 1))).value == pytest.approx(expected)


@pytest.mark.parametrize("a, b, expected", [(0.8, 0.6, 0.75), (0.6, 0.8, 4 / 3)])
def test_partially_swapped_frames_give_b_over_a(a, b, expected):
    text = E[:2]
    visual = np.stack([a * E[0] + b * E[1], b * E[0] + a * E[1]])
    assert confusion_degree(text, visual).value == pytest.approx(expected)


def test_swapping_two_of_four_frames_scales_by_two_over_n():
    a, b = 0.8, 0.6
    visual = E[:4].copy()
    visual[0], visual[1] = a * E[0] + b * E[1], b * E[0] + a * E[1]
    assert confusion_degree(E[:4], visual).value == pytest.approx(0.375)


def test_modality_gap_offset_shared_by_all_frames_changes_nothing():
    rho, u = 0.6, E[6]
    text = math.sqrt(rho) * u + math.sqrt(1 - rho) * E[:4]
    visual = text + 0.9 * E[7]  # offset orthogonal to every prompt
    assert confusion_degree(text, visual).value == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("alpha, beta, gamma, expected", [(1, 2, 1, 0.5), (1, 3, 0.5, 1.2), (2, 1, 1, 0.0)])
def test_hinge_matches_closed_form(alpha, beta, gamma, expected):
    u = E[6]
    text, visual = E[:4] + gamma * u, alpha * E[:4] + beta * u
    assert confusion_degree(text, visual).value == pytest.approx(expected, abs=1e-12)


def test_single_prompt_has_zero_confusion():
    assert confusion_degree(E[:1], E[:1] + E[1]).value == 0.0


def test_frames_orthogonal_to_their_prompt_are_undefined_unless_clamped():
    text, visual = E[:3], E[[1, 0, 2]]  # prompts 1 and 2 see only the other's frame
    strict = confusion_degree(text, visual)
    assert math.isnan(strict.value) and strict.undefined_rows == [0, 1]
    assert math.isnan(strict.per_prompt[0]) and strict.per_prompt[2] == 0.0
    clamped = confusion_degree(text, visual, on_nonpositive="clamp")
    assert clamped.value > 1e5  # dividing by eps makes the confusion explode, as it should


@pytest.mark.parametrize("text, visual, problem", [
    (E[:3], E[:2], "as many visual units"),
    (np.zeros((2, 4)), np.ones((2, 4)), "all zeros"),
    (np.full((2, 3), np.nan), np.ones((2, 3)), "NaN"),
])
def test_bad_inputs_raise(text, visual, problem):
    with pytest.raises(ValueError, match=problem):
        confusion_degree(text, visual)


def test_other_normalisations_are_selectable_and_checked():
    text, visual = E[:2], np.stack([0.8 * E[0] + 0.6 * E[1], 0.28 * E[0] + 0.96 * E[1]])  # unit frames
    values = {mode: confusion_degree(text, visual, normalize=mode).value for mode in ("row", "col", "sym", "none")}
    # S_TF = [[0.8, 0.28], [0.6, 0.96]] (rows: prompts, columns: frames), S_TT = I
    assert values["none"] == pytest.approx((0.28 + 0.6) / 2)
    assert values["row"] == pytest.approx((0.28 / 0.8 + 0.6 / 0.96) / 2)
    assert values["col"] == pytest.approx((0.28 / 0.96 + 0.6 / 0.8) / 2)
    assert values["sym"] == pytest.approx((0.28 + 0.6) / math.sqrt(0.8 * 0.96) / 2)
    with pytest.raises(ValueError, match="normalize"):
        confusion_degree(text, visual, normalize="diag")


positive_embeddings = st.integers(2, 6).flatmap(lambda n: st.tuples(
    arrays(np.float64, (n, 5), elements=st.floats(0.05, 3.0)),
    arrays(np.float64, (n, 5), elements=st.floats(0.05, 3.0)),
    st.permutations(list(range(n))),
    arrays(np.float64, (n,), elements=st.floats(0.1, 10.0))))


@settings(max_examples=60, deadline=None)
@given(positive_embeddings)
def test_cd_is_nonnegative_permutation_equivariant_and_scale_invariant(case):
    text, visual, order, scales = case
    result = confusion_degree(text, visual)
    assert result.value >= 0 and np.all(result.per_prompt >= 0)
    permuted = confusion_degree(text[order], visual[order])
    assert permuted.value == pytest.approx(result.value, rel=1e-9, abs=1e-12)
    assert np.allclose(permuted.per_prompt, result.per_prompt[order])
    rescaled = confusion_degree(text * scales[:, None], visual * scales[::-1, None])
    assert rescaled.value == pytest.approx(result.value, rel=1e-9, abs=1e-12)


def test_video_level_consistency_is_a_cosine():
    assert video_level_consistency([1.0, 0.0], [3.0, 3.0]) == pytest.approx(1 / math.sqrt(2))
    with pytest.raises(ValueError, match="differ in size"):
        video_level_consistency([1.0, 0.0], [1.0, 0.0, 0.0])


def test_frame_sampling_helpers():
    assert middle_of_segment_indices(80, 8) == [5, 15, 25, 35, 45, 55, 65, 75]
    assert middle_of_segment_indices(3, 8) == [0, 0, 0, 1, 1, 2, 2, 2]
    assert [frames_in_span(0, 27), frames_in_span(27, 54), frames_in_span(54, 81)] == [[13], [40], [67]]
    assert frames_in_span(40, 80, 4) == [45, 55, 65, 75]
    assert frames_in_span(5, 7, 4) == [5, 5, 6, 6]  # a short span repeats frames
    with pytest.raises(ValueError, match="non-empty span"):
        frames_in_span(3, 3)


class ColourEmbedder:
    """Text 'red'/'green'/'blue' -> basis vector plus a small shared part; frames -> mean colour."""

    NAMES = {"red": 0, "green": 1, "blue": 2}

    def encode_text(self, texts):
        return np.stack([np.eye(3)[self.NAMES[t.split()[-1]]] + 0.1 for t in texts])

    def encode_visual(self, clips):
        return np.stack([np.asarray(c, dtype=np.float64).reshape(-1, 3).mean(axis=0) + 1e-3 for c in clips])


def coloured_video(order, frames_each=4) -> np.ndarray:
    """Pixel frame 0 in the first colour, then `frames_each` frames per colour (latent frames 1, 2, ...)."""
    video = np.zeros((1 + (len(order) - 1) * frames_each, 6, 6, 3), dtype=np.float32)
    video[0, ..., order[0]] = 1.0
    for k, channel in enumerate(order[1:]):
        video[1 + k * frames_each:1 + (k + 1) * frames_each, ..., channel] = 1.0
    return video


STORY = '{"1": "a field of red", "2": "a field of green", "3": "a field of blue"}'


def test_evaluate_video_rewards_the_right_order():
    spans = story_spans(STORY, 9)  # 9 pixel frames = latent frames 0, 1, 2
    assert spans == [(0, 1, "a field of red"), (1, 5, "a field of green"), (5, 9, "a field of blue")]
    right = evaluate_video(coloured_video([0, 1, 2]), spans, ColourEmbedder(), "a field of red")
    wrong = evaluate_video(coloured_video([1, 0, 2]), spans, ColourEmbedder())
    assert right.confusion_degree == pytest.approx(0.0, abs=1e-6)
    assert wrong.confusion_degree > 1.0 and right.frame_consistency > wrong.frame_consistency
    assert right.video_consistency is not None and wrong.video_consistency is None
    text = right.format()
    assert text.startswith("Confusion Degree") and json.loads(text[text.index("{"):])["prompts"] == 3


def test_story_spans_read_the_story_as_the_schedule_does():
    # sparse 1-based latent keys hold until the next key; the last run takes trailing pixel frames
    assert story_spans('{"1": "a", "3": "b"}', 15) == [(0, 5, "a"), (5, 15, "b")]
    assert story_spans("0: a\n8: b", 12) == [(0, 5, "a"), (5, 12, "b")]  # keyframe keys in pixel frames
    assert story_spans("a\nb", 9) == [(0, 5, "a"), (5, 9, "b")]  # 2 lines over 3 latent frames: a, a, b
    with pytest.raises(PromptScheduleError, match="past the end"):
        story_spans('{"1": "a", "4": "b"}', 9)


def test_options_are_checked():
    with pytest.raises(ValueError, match="normalize"):
        MetricsOptions(normalize="bad")
