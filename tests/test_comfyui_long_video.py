"""PMWD, sliding window and FIFO through ComfyUI's sampling stack on a tiny random Wan (CPU)."""

import comfy_support as cs
import pytest
import torch
from test_comfyui_diffusion_forcing import run_custom, sigmas_for

pytestmark = pytest.mark.comfyui
FRAMES, HEIGHT, WIDTH = 8, 4, 4


@pytest.fixture(scope="module")
def setup():
    cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import apply_frame_level_cross_attention
    model = cs.comfy_wan_from_dit(cs.tiny_dit(seed=4))
    contexts = [cs.padded_context(None, real, 32, seed=seed) for seed, real in enumerate((5, 9, 3))]
    return model, apply_frame_level_cross_attention(model), contexts


def latent():
    return {"samples": torch.zeros(1, 16, FRAMES, HEIGHT, WIDTH)}


def pmwd(window=4, num_windows=3, fusion="flat", batch=0):
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDSampler
    return FrameLevelPMWDSampler.execute(window, num_windows, 0, fusion, "euler", batch)[0]


def test_pmwd_equals_comfyui_context_windows_on_one_prompt(setup):
    comfy = cs.import_comfy()
    model, _, contexts = setup
    positive, negative = cs.conditioning(contexts[0]), cs.conditioning(contexts[1])
    # F = 8, W = 4: ComfyUI's standard_static with overlap 2 gives [0..3] [2..5] [4..7]; PMWD with K = 3 too
    # (without 0.33's causal window fix, which feeds later windows one more latent).
    windowed = comfy_context_windows(model)
    sigmas = sigmas_for(model, 4)
    theirs = run_custom(windowed, comfy.samplers.sampler_object("euler"), positive, negative, latent(), sigmas)
    ours = run_custom(model, pmwd(), positive, negative, latent(), sigmas)
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()


def test_pmwd_batched_equals_one_window_per_call(setup):
    _, patched, contexts = setup
    positive = cs.frame_conditioning(contexts, [0, 0, 1, 1, 1, 2, 2, 2])
    sigmas = sigmas_for(patched, 3)
    batched = run_custom(patched, pmwd(batch=3), positive, cs.conditioning(contexts[2]), latent(), sigmas)
    single = run_custom(patched, pmwd(batch=1), positive, cs.conditioning(contexts[2]), latent(), sigmas)
    assert (batched - single).abs().max() <= 1e-5 * single.abs().max()


def test_each_window_receives_the_prompts_of_its_own_latents(setup):
    from comfyui_framelevel.nodes.comfy_adapter import FRAME_INDEX_OPTION, PACKED_TEXT_OPTION
    _, patched, contexts = setup
    schedule = [0, 0, 1, 1, 1, 2, 2, 2]
    probe = patched.clone()
    original = probe.get_model_object("diffusion_model.blocks.0.cross_attn.forward")
    calls = []

    def record(x, context, context_img_len=None, transformer_options=None, **kwargs):
        packed, _ = transformer_options[PACKED_TEXT_OPTION]
        index = transformer_options[FRAME_INDEX_OPTION]
        chunk = transformer_options["cond_or_uncond"].index(0)   # rows of the positive (frame-level) cond
        rows = slice(chunk * index.shape[0], (chunk + 1) * index.shape[0])
        calls.append((index.clone(), packed.frame_prompt[rows].clone()))
        return original(x, context, context_img_len=context_img_len, transformer_options=transformer_options, **kwargs)
    probe.add_object_patch("diffusion_model.blocks.0.cross_attn.forward", record)
    run_custom(probe, pmwd(), cs.frame_conditioning(contexts, schedule), cs.conditioning(contexts[2]), latent(),
               sigmas_for(probe, 2))
    assert calls
    windows_seen = set()
    for frame_index, routing in calls:
        for row in range(frame_index.shape[0]):
            frames = frame_index[row].tolist()
            windows_seen.add(tuple(frames))
            for a in range(len(frames)):
                for b in range(len(frames)):
                    same_prompt = schedule[frames[a]] == schedule[frames[b]]
                    assert same_prompt == bool(routing[row, a] == routing[row, b])
    assert windows_seen == {(0, 1, 2, 3), (2, 3, 4, 5), (4, 5, 6, 7)}


@pytest.mark.parametrize("loop", ["sliding", "fifo"])
def test_loops_run_end_to_end_through_the_nodes(setup, loop):
    from comfyui_framelevel.nodes.long_video_nodes import (
        FrameLevelFIFOSampler,
        FrameLevelSlidingWindowSampler,
    )
    _, patched, contexts = setup
    if loop == "sliding":
        sampler = FrameLevelSlidingWindowSampler.execute(4, 2, 0.0, "euler", 0)[0]
    else:
        sampler = FrameLevelFIFOSampler.execute(4, 1, False, "euler", 0)[0]
    out = run_custom(patched, sampler, cs.frame_conditioning(contexts, [0, 0, 1, 1, 1, 2, 2, 2]),
                     cs.conditioning(contexts[2]), latent(), sigmas_for(patched, 4))
    assert out.shape == (1, 16, FRAMES, HEIGHT, WIDTH) and torch.isfinite(out).all()
    assert out.abs().mean() > 0.1


def test_schedule_view_draws_the_plan(setup):
    from comfyui_framelevel.nodes.core.prompts import compile_prompt_schedule
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelScheduleView
    model, _, _ = setup
    schedule = compile_prompt_schedule("0: a\n2: b", length=FRAMES, unit="latent", key_unit="latent")
    picture, summary = FrameLevelScheduleView.execute(pmwd(), sigmas_for(model, 4), latent(), schedule)
    assert picture.ndim == 4 and picture.shape[-1] == 3 and picture.shape[0] == 1
    assert "pmwd" in summary.lower()


# --------------------------------------------------------------------- PMWD as a MODEL patch


def pmwd_model(model, window=4, num_windows=3, fusion="flat", batch=0):
    from comfyui_framelevel.nodes.long_video_nodes import FrameLevelPMWDModel
    return FrameLevelPMWDModel.execute(model, window, num_windows, 0, fusion, batch)[0]


def comfy_context_windows(model):
    """Core's windows [0..3] [2..5] [4..7], comparable with PMWD's (causal window fix off on 0.33+)."""
    return cs.context_windows(model, 4, 2, causal_window_fix=False if cs.has_causal_window_fix() else None)


@pytest.mark.parametrize("sampler", ["euler", "uni_pc", "dpmpp_2m"])
def test_pmwd_patch_runs_stock_samplers_like_comfyui_context_windows(setup, sampler):
    comfy = cs.import_comfy()
    model, _, contexts = setup
    positive, negative = cs.conditioning(contexts[0]), cs.conditioning(contexts[1])
    stock = comfy.samplers.sampler_object(sampler)
    sigmas = sigmas_for(model, 4)
    theirs = run_custom(comfy_context_windows(model), stock, positive, negative, latent(), sigmas)
    ours = run_custom(pmwd_model(model), stock, positive, negative, latent(), sigmas)
    plain = run_custom(model, stock, positive, negative, latent(), sigmas)
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()
    assert (ours - plain).abs().max() > 1e-3 * plain.abs().max()   # the windows really changed the run


@pytest.mark.parametrize("fusion", ["flat", "pyramid", "linear"])
def test_pmwd_patch_with_euler_equals_the_pmwd_sampler_with_frame_prompts(setup, fusion):
    comfy = cs.import_comfy()
    _, patched, contexts = setup
    positive = cs.frame_conditioning(contexts, [0, 0, 1, 1, 1, 2, 2, 2])
    negative = cs.conditioning(contexts[2])
    sigmas = sigmas_for(patched, 3)
    ours = run_custom(pmwd_model(patched, fusion=fusion), comfy.samplers.sampler_object("euler"), positive, negative,
                      latent(), sigmas)
    reference = run_custom(patched, pmwd(fusion=fusion), positive, negative, latent(), sigmas)
    assert (ours - reference).abs().max() <= 1e-5 * reference.abs().max()


def test_pmwd_patch_one_window_per_call_equals_batched_and_leaves_the_model_alone(setup):
    _, patched, contexts = setup
    positive, negative = cs.frame_conditioning(contexts, [0, 0, 1, 1, 1, 2, 2, 2]), cs.conditioning(contexts[2])
    noise = torch.randn(1, 16, FRAMES, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(3))
    before = cs.sample(patched, noise, positive, negative, steps=3, cfg=4.0)
    batched = cs.sample(pmwd_model(patched, batch=3), noise, positive, negative, steps=3, cfg=4.0, sampler="uni_pc")
    single = cs.sample(pmwd_model(patched, batch=1), noise, positive, negative, steps=3, cfg=4.0, sampler="uni_pc")
    after = cs.sample(patched, noise, positive, negative, steps=3, cfg=4.0)
    assert (batched - single).abs().max() <= 1e-5 * single.abs().max()
    assert torch.equal(before, after)


def test_pmwd_patch_refuses_impossible_windows_before_the_model_runs(setup):
    from comfyui_framelevel.nodes.validation import FrameLevelInputError
    model, _, contexts = setup
    probe = pmwd_model(model, window=12, num_windows=2)   # 12-latent windows in an 8-latent video
    calls = []
    original = probe.get_model_object("diffusion_model.forward")
    probe.add_object_patch("diffusion_model.forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    with pytest.raises(FrameLevelInputError, match="window") as err:
        cs.sample(probe, torch.randn(1, 16, FRAMES, HEIGHT, WIDTH), cs.conditioning(contexts[0]),
                  cs.conditioning(contexts[1]))
    assert "12" in str(err.value) and not calls


def test_pmwd_patch_and_context_windows_together_are_refused(setup):
    from comfyui_framelevel.nodes.validation import FrameLevelInputError
    model, _, contexts = setup
    with pytest.raises(FrameLevelInputError, match="context windows"):
        cs.sample(comfy_context_windows(pmwd_model(model)), torch.randn(1, 16, FRAMES, HEIGHT, WIDTH),
                  cs.conditioning(contexts[0]), cs.conditioning(contexts[1]))


def test_our_samplers_build_no_autograd_graph(setup):
    """Like ComfyUI's own samplers, ours run without autograd even when called outside the server's
    inference mode (a graph would keep every window's activations alive until the step ends)."""
    model, _, contexts = setup
    probe = model.clone()
    original = probe.get_model_object("diffusion_model.forward")
    grad_modes = []
    probe.add_object_patch("diffusion_model.forward",
                           lambda *a, **k: grad_modes.append(torch.is_grad_enabled()) or original(*a, **k))
    # so that a graph would be built (0.3.64 leaves parameters trainable, 0.33 freezes them on load)
    frozen = [p for p in model.model.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        out = run_custom(probe, pmwd(), cs.conditioning(contexts[0]), cs.conditioning(contexts[1]), latent(),
                         sigmas_for(probe, 2))
    finally:
        for p in frozen:
            p.requires_grad_(False)
    assert grad_modes and not any(grad_modes) and not out.requires_grad


def test_automatic_windows_per_call_is_one_on_cpu_and_fills_free_memory_on_a_gpu(setup, monkeypatch):
    comfy = cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import auto_windows_per_batch
    model, _, _ = setup
    base = model.model
    shape = (2, 16, 4, HEIGHT, WIDTH)
    assert auto_windows_per_batch(base, shape, torch.device("cpu")) == 1
    per_window = base.memory_required(list(shape))
    monkeypatch.setattr(comfy.model_management, "get_free_memory", lambda device=None, *a, **k: 5.5 * per_window)
    assert auto_windows_per_batch(base, shape, torch.device("cuda", 0)) == 4   # 90% of 5.5 windows
    if hasattr(type(model), "get_free_memory"):
        # 0.33+: core batches conds by the current patcher's reading (DynamicVRAM adds what it can give
        # back), and so do our windows; 0.3.64 has only model_management's (above).
        monkeypatch.setattr(base, "current_patcher", model, raising=False)
        monkeypatch.setattr(model, "get_free_memory", lambda device: 9.5 * per_window)
        assert auto_windows_per_batch(base, shape, torch.device("cuda", 0)) == 8   # 90% of 9.5 windows


def test_pmwd_patch_logs_its_layout_before_sampling_and_stops_between_window_batches(setup, caplog):
    import logging
    comfy = cs.import_comfy()
    model, _, contexts = setup
    probe = pmwd_model(model, batch=1)
    calls = []
    original = probe.get_model_object("diffusion_model.forward")

    def forward(*args, **kwargs):
        calls.append(len(calls))
        if len(calls) == 2:   # the user presses Cancel while the first step's windows run
            comfy.model_management.interrupt_current_processing(True)
        return original(*args, **kwargs)
    probe.add_object_patch("diffusion_model.forward", forward)
    with caplog.at_level(logging.INFO):
        try:
            with pytest.raises(comfy.model_management.InterruptProcessingException):
                cs.sample(probe, torch.randn(1, 16, FRAMES, HEIGHT, WIDTH), cs.conditioning(contexts[0]),
                          cs.conditioning(contexts[1]), steps=3, cfg=4.0)
        finally:
            comfy.model_management.interrupt_current_processing(False)
    assert len(calls) == 2   # 3 windows, one per call: stopped before the third
    layout = [r.getMessage() for r in caplog.records if "PMWD model patch" in r.getMessage()]
    assert layout and "3 windows of 4 (starts 0 2 4" in layout[0]


def test_pmwd_patch_gathers_per_latent_conditioning_and_repeats_the_rest_per_window():
    """I2V-style inputs: c_concat [N, C, F, H, W] is cut per window at the same latents as x; text,
    CLIP-vision features, frame text and the batch bookkeeping are repeated once per window."""
    cs.import_comfy()
    from comfyui_framelevel.nodes.comfy_adapter import _make_pmwd_apply_model
    from comfyui_framelevel.nodes.core.windows import PMWDOptions
    from comfyui_framelevel.nodes.model_calls import (
        FRAME_INDEX_OPTION,
        FRAME_TIMESTEPS_OPTION,
        FrameTextBatch,
    )
    rows, frames = 2, 8   # cond + uncond of one video
    position = torch.arange(frames, dtype=torch.float32).view(1, 1, -1, 1, 1).expand(rows, 1, frames, 2, 2)
    seen = []

    def executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs):
        seen.append((x.shape, t, c_crossattn, transformer_options, kwargs))
        assert torch.equal(transformer_options[FRAME_INDEX_OPTION].float(), c_concat[:, 0, :, 0, 0])
        return x + c_concat[:, :1]
    executor.class_obj = None
    wrapper = _make_pmwd_apply_model(PMWDOptions(window=4, num_windows=3), max_windows_per_batch=2)
    text, clip_fea = torch.randn(rows, 5, 8), torch.randn(rows, 3, 6)
    options = {"cond_or_uncond": [0, 1], "uuids": ["a", "b"], "sigmas": torch.tensor([0.5, 0.5]),
               FRAME_TIMESTEPS_OPTION: torch.arange(frames, dtype=torch.float32).expand(1, frames) * 10}
    out = wrapper(executor, torch.zeros(rows, 1, frames, 2, 2), torch.tensor([0.5, 0.5]), c_concat=position,
                  c_crossattn=text, transformer_options=options, clip_fea=clip_fea,
                  fl_frame_text=FrameTextBatch(["cond", "uncond"]))
    assert torch.equal(out, position)          # every latent got the conditioning of its own index
    assert [s[0][0] for s in seen] == [4, 2]    # 3 windows, at most 2 per call, rows window-major
    assert [len(s[1]) for s in seen] == [4, 2]
    shape, t, c_crossattn, transformer_options, kwargs = seen[0]
    assert torch.equal(c_crossattn, torch.cat([text, text])) and torch.equal(kwargs["clip_fea"], torch.cat([clip_fea] * 2))
    assert list(kwargs["fl_frame_text"]) == ["cond", "uncond", "cond", "uncond"]
    assert transformer_options["cond_or_uncond"] == [0, 1, 0, 1] and len(transformer_options["uuids"]) == 4
    assert transformer_options[FRAME_TIMESTEPS_OPTION][:, 0].tolist() == [0, 0, 20, 20]   # windows start 0, 2
    assert transformer_options[FRAME_INDEX_OPTION][2].tolist() == [2, 3, 4, 5]
