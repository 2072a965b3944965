from comfyui_framelevel.nodes.core import frames as fm
from hypothesis import given
from hypothesis import strategies as st


def test_wan_clip_lengths():
    assert fm.latent_count(81) == 21
    assert fm.latent_count(481) == 121
    assert fm.latent_count(1) == 1
    assert fm.latent_count(4) == 1 and fm.latent_count(5) == 2
    assert fm.pixel_count(21) == 81
    assert fm.pixel_count_for_seconds(30, 16) == 481


def test_latent_pixel_mapping_golden():
    assert list(fm.pixel_range_of_latent(0)) == [0]
    assert list(fm.pixel_range_of_latent(1)) == [1, 2, 3, 4]
    assert list(fm.pixel_range_of_latent(20)) == [77, 78, 79, 80]
    assert [fm.latent_of_pixel(p) for p in range(10)] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert fm.latent_of_seconds(1.0, 16) == 4  # pixel 16 lies in latent 4 (pixels 13..16)


@given(st.integers(min_value=1, max_value=5000))
def test_every_pixel_frame_maps_into_its_latent_range(pixels):
    latents = fm.latent_count(pixels)
    covered = [p for latent in range(latents) for p in fm.pixel_range_of_latent(latent)]
    kept = fm.pixel_count(latents)          # 4k+1 frames; up to 3 trailing frames do not fit a latent
    assert covered == list(range(kept)) and kept <= pixels < kept + 4
    assert all(fm.latent_of_pixel(p) == latent for latent in range(latents) for p in fm.pixel_range_of_latent(latent))
    assert fm.latent_count(fm.pixel_count(latents)) == latents


def test_bad_counts_raise():
    for call in (lambda: fm.latent_count(0), lambda: fm.pixel_count(0), lambda: fm.latent_of_pixel(-1)):
        try:
            call()
        except ValueError as err:
            assert "got" in str(err)
        else:
            raise AssertionError("expected ValueError")
