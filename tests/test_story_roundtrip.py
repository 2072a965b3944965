"""One story format, one meaning: what the annotator writes, the trainer reads and the schedule node
compiles are the same per-latent prompts."""

from __future__ import annotations

import pytest
from comfyui_framelevel.nodes.prompt_nodes import FrameLevelPromptSchedule
from comfyui_framelevel.training.annotate.pipeline import clip_record, clip_story, latent_captions
from comfyui_framelevel.training.annotate.sampling import SamplingOptions, plan_clips
from comfyui_framelevel.training.data.captions import distinct_frame_prompts, story_text


@pytest.mark.parametrize("options", [SamplingOptions(), SamplingOptions(mode="latent", clip_seconds=5.0)],
                         ids=["paper", "latent"])
def test_annotator_story_gives_the_same_prompts_in_trainer_and_schedule_node(options):
    for plan in plan_clips(50.0, options):
        # neighbouring captioned frames of one scene share a caption, as the VLM step makes them
        captions = [f"wide shot, scene {k // 3} of clip {plan.index}" for k in range(len(plan.caption_times))]
        frame_captions = latent_captions(plan, captions)
        assert len(set(frame_captions)) > 2
        story = clip_story(clip_record("clip", "video.mp4", plan, frame_captions, options.mode))
        texts, routing = distinct_frame_prompts(story_text(story), plan.latent_frames)
        schedule, _ = FrameLevelPromptSchedule.execute(story, length=plan.pixel_frames, length_unit="pixel")
        assert [texts[i] for i in routing] == list(schedule.prompts) == frame_captions
        assert schedule.latent_frames == plan.latent_frames
