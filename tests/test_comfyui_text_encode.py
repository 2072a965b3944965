"""FrameLevelTextEncode through a real ComfyUI CLIP (a tiny UMT5 of ComfyUI's own Wan text-encoder
classes, its sentencepiece vocabulary trained by the test): each distinct prompt goes through the
text encoder exactly once, and every latent frame gets exactly what ComfyUI's CLIPTextEncode gives
for its prompt."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import tiny_weights as tiny_umt5  # noqa: E402  (the pack's stand-in builders: tools/tiny_weights.py)
from comfy_support import import_comfy  # noqa: E402

pytestmark = pytest.mark.comfyui

# Four beats over 8 latent frames; the first beat comes back, so 3 distinct prompts.
STORY_LINES = ("a red fox runs through the snowy forest at dawn",
               "an old man reads a letter by the window",
               "a red fox runs through the snowy forest at dawn",
               "rain falls on the city street while cars pass by")
LATENT_FRAMES = 8


@pytest.fixture(scope="module")
def clip():
    import_comfy()
    return tiny_umt5.tiny_wan_clip()


@pytest.fixture(scope="module")
def comfy_nodes():
    """ComfyUI's own node module (CLIPTextEncode, CLIPLoader), imported in-process."""
    import_comfy()
    import nodes
    return nodes


def _schedule():
    from comfyui_framelevel.nodes.prompt_nodes import FrameLevelPromptSchedule
    schedule, _ = FrameLevelPromptSchedule.execute("\n".join(STORY_LINES), LATENT_FRAMES, "latent",
                                                     format="lines")
    return schedule


def _count_encoder_calls(clip, monkeypatch) -> list[tuple[int, ...]]:
    """Record the token ids of every pass through the CLIP's text-encoder model."""
    calls: list[tuple[int, ...]] = []
    model = clip.cond_stage_model
    original = model.encode_token_weights

    def encode_token_weights(token_weight_pairs):
        ids = tuple(token for token, _ in token_weight_pairs[tiny_umt5.MODEL_NAME][0])
        calls.append(ids)
        return original(token_weight_pairs)

    monkeypatch.setattr(model, "encode_token_weights", encode_token_weights)
    return calls


def _ids(clip, prompt) -> tuple[int, ...]:
    return tuple(token for token, _ in clip.tokenize(prompt)[tiny_umt5.MODEL_NAME][0])


def _frame_text(conditioning):
    from comfyui_framelevel.nodes.comfy_adapter import FRAME_TEXT_KEY
    (_, values), = conditioning
    return values[FRAME_TEXT_KEY]


def test_each_distinct_prompt_goes_through_the_text_encoder_once(clip, monkeypatch):
    from comfyui_framelevel.nodes.prompt_nodes import FrameLevelTextEncode
    schedule = _schedule()
    assert len(schedule.prompts) == LATENT_FRAMES and len(set(schedule.prompts)) == 3
    calls = _count_encoder_calls(clip, monkeypatch)
    (conditioning,) = FrameLevelTextEncode.execute(clip, schedule)
    assert len(calls) == 3, f"{len(calls)} text-encoder passes for 3 distinct prompts"
    assert sorted(calls) == sorted(_ids(clip, prompt) for prompt in set(STORY_LINES))
    assert len(_frame_text(conditioning).contexts) == 3


def test_every_frame_gets_exactly_the_conditioning_of_clip_text_encode(clip, comfy_nodes):
    from comfyui_framelevel.nodes.prompt_nodes import FrameLevelTextEncode
    schedule = _schedule()
    (conditioning,) = FrameLevelTextEncode.execute(clip, schedule)
    frame_text = _frame_text(conditioning)
    reference = {prompt: comfy_nodes.CLIPTextEncode().encode(clip, prompt)[0][0][0][0]
                 for prompt in set(STORY_LINES)}
    first = reference[STORY_LINES[0]]
    assert first.shape == (512, tiny_umt5.TinyUMT5().width)                    # Wan's 512-token layout
    assert not torch.equal(first, reference[STORY_LINES[1]])                   # prompts differ
    for frame, prompt in enumerate(schedule.prompts):
        context = frame_text.contexts[frame_text.index[frame]]
        assert torch.equal(context, reference[prompt]), f"latent frame {frame} ({prompt!r})"
    # What a model without the frame-level patch sees: the first frame's prompt, as CLIPTextEncode.
    assert torch.equal(conditioning[0][0][0], first)


def test_clip_loader_type_wan_loads_the_tiny_text_encoder_file(clip, comfy_nodes, tmp_path, monkeypatch):
    import folder_paths
    name = "tiny_umt5.safetensors"
    tiny_umt5.write_text_encoder(tmp_path / name)
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "text_encoders", ([str(tmp_path)], {".safetensors"}))
    with tiny_umt5.tiny_files_load_in_clip_loader():
        (loaded,) = comfy_nodes.CLIPLoader().load_clip(name, type="wan")
    prompt = STORY_LINES[1]
    expected = comfy_nodes.CLIPTextEncode().encode(clip, prompt)[0][0][0]
    assert torch.equal(comfy_nodes.CLIPTextEncode().encode(loaded, prompt)[0][0][0], expected)
