"""Window gathering and fusion (nodes/core/fusion.py) against a float64 reference."""

import pytest
import torch
from comfyui_framelevel.nodes.core.fusion import WindowFusion, gather_windows
from comfyui_framelevel.nodes.core.plan import Window
from hypothesis import given, settings
from hypothesis import strategies as st


def reference_fusion(like, windows, preds):
    """Plain float64 weighted mean per latent; unwritten latents keep `like`."""
    out = like.double().clone()
    frames = like.shape[2]
    for f in range(frames):
        num, den = torch.zeros_like(out[:, :, f]), 0.0
        for w, pred in zip(windows, preds, strict=True):
            for p, (frame, weight) in enumerate(zip(w.frames, w.weights, strict=True)):
                if frame == f and weight > 0:
                    num += weight * pred[:, :, p].double()
                    den += weight
        if den:
            out[:, :, f] = num / den
    return out


windows_strategy = st.lists(
    st.lists(st.tuples(st.integers(0, 9), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])), min_size=1, max_size=6,
             unique_by=lambda fw: fw[0]),
    min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(windows_strategy, st.integers(0, 2**31 - 1))
def test_fusion_equals_the_float64_weighted_mean(spec, seed):
    generator = torch.Generator().manual_seed(seed)
    like = torch.randn(2, 3, 10, 2, 2, generator=generator)
    windows = [Window(tuple(f for f, _ in w), tuple(wt for _, wt in w)) for w in spec]
    preds = [torch.randn(2, 3, w.length, 2, 2, generator=generator) for w in windows]
    fusion = WindowFusion(like)
    for w, pred in zip(windows, preds, strict=True):
        fusion.add(w, pred)
    fused, written = fusion.result()
    expected = reference_fusion(like, windows, preds)
    assert torch.allclose(fused.double(), expected, atol=1e-6, rtol=1e-6)
    for f in range(10):
        assert bool(written[f]) == any(f in w.written_frames() for w in windows)


def test_a_latent_with_one_writer_gets_its_prediction_bit_exactly():
    like = torch.randn(1, 4, 6, 3, 3, dtype=torch.bfloat16)
    pred = torch.randn(1, 4, 4, 3, 3, dtype=torch.bfloat16)
    fusion = WindowFusion(like)
    fusion.add(Window((5, 4, 1, 0), (1.0, 3.0, 0.25, 2.0)), pred)
    fused, written = fusion.result()
    assert torch.equal(fused[:, :, [5, 4, 1, 0]], pred)
    assert torch.equal(fused[:, :, [2, 3]], like[:, :, [2, 3]])
    assert written.tolist() == [True, True, False, False, True, True]


def test_gather_windows_is_window_major():
    x = torch.arange(2 * 6).float().view(2, 1, 6, 1, 1)
    out = gather_windows(x, [Window((0, 1, 2), (1.0,) * 3), Window((3, 4, 5), (1.0,) * 3)])
    assert out.shape == (4, 1, 3, 1, 1)
    assert out[:, 0, :, 0, 0].tolist() == [[0, 1, 2], [6, 7, 8], [3, 4, 5], [9, 10, 11]]


def test_prediction_of_the_wrong_length_is_refused():
    fusion = WindowFusion(torch.zeros(1, 1, 4, 1, 1))
    with pytest.raises(ValueError, match="3 frames for a window of 2"):
        fusion.add(Window((0, 1), (1.0, 1.0)), torch.zeros(1, 1, 3, 1, 1))
