"""Where clips are cut and which frames get captions: pure functions over timestamps.

Paper recipe: drop the first and last 10% of the video, split the rest into four equal segments and
take one 8 s clip from each (its centre); caption one frame in every 8 at 24 fps (24 per clip).
A clip is written at the trainer's frame rate (Wan: 16 fps) with 4k+1 pixel frames, and its
captions are keyed by latent frame: latent i takes the caption of the captioned frame nearest in
time to the middle of its pixel frames. In "latent" mode one frame per latent frame (the middle of
its pixel frames) is captioned instead, so captions and latents match one to one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...nodes.core import frames as fm  # noqa: TID252 - package-relative

SAMPLING_MODES = ("paper", "latent")


@dataclass
class SamplingOptions:
    mode: str = "paper"  # "paper" (1 in 8 frames at 24 fps) or "latent" (one per latent frame)
    clip_seconds: float = 8.0
    segments: int = 4
    margin: float = 0.1  # fraction dropped at each end of the video
    caption_fps: float = 24.0  # paper mode: frame grid the captioned frames are taken from
    caption_every: int = 8  # paper mode: caption one frame in this many
    out_fps: float = 16.0  # frame rate of the written clips (Wan is trained at 16 fps)

    def __post_init__(self):
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {self.mode!r}")
        if self.clip_seconds <= 0 or self.segments < 1 or not 0 <= self.margin < 0.5:
            raise ValueError("need clip_seconds > 0, segments >= 1 and 0 <= margin < 0.5")
        if self.caption_fps <= 0 or self.caption_every < 1 or self.out_fps <= 0:
            raise ValueError("need caption_fps > 0, caption_every >= 1 and out_fps > 0")


@dataclass(frozen=True)
class ClipPlan:
    index: int  # 0-based clip number within its video
    start_s: float
    pixel_frames: int  # 4k+1 frames at out_fps
    out_fps: float
    caption_times: tuple[float, ...]  # seconds (absolute, in the source video) of the captioned frames
    latent_caption: tuple[int, ...]  # for each latent frame, the index into caption_times

    @property
    def latent_frames(self) -> int:
        return fm.latent_count(self.pixel_frames)

    @property
    def duration_s(self) -> float:
        return fm.seconds_of_pixels(self.pixel_frames, self.out_fps)

    def pixel_times(self) -> list[float]:
        """Absolute source time of every written pixel frame."""
        return [self.start_s + k / self.out_fps for k in range(self.pixel_frames)]


def clip_windows(duration_s: float, options: SamplingOptions) -> list[tuple[float, float]]:
    """(start, length) in seconds of one clip centred in each segment of the kept middle part.

    A segment shorter than clip_seconds yields a clip as long as the segment.
    """
    if duration_s <= 0:
        return []
    kept_start, kept = duration_s * options.margin, duration_s * (1 - 2 * options.margin)
    segment = kept / options.segments
    length = min(options.clip_seconds, segment)
    return [(kept_start + k * segment + (segment - length) / 2, length) for k in range(options.segments)]


def paper_caption_times(start_s: float, length_s: float, options: SamplingOptions) -> list[float]:
    """One frame in `caption_every` of the caption_fps grid inside [start, start + length)."""
    step = options.caption_every / options.caption_fps
    count = max(1, int(length_s / step + 1e-9))
    return [start_s + k * step for k in range(count)]


def latent_middle_times(start_s: float, pixel_frames: int, fps: float) -> list[float]:
    """Time of the middle pixel frame of each latent frame of a clip."""
    times = []
    for latent in range(fm.latent_count(pixel_frames)):
        pixels = fm.pixel_range_of_latent(latent)
        middle = (pixels[0] + pixels[-1]) / 2
        times.append(start_s + middle / fps)
    return times


def nearest_indices(targets: list[float], sources: list[float]) -> list[int]:
    """For each target time, the index of the nearest source time (earlier one on ties)."""
    return [min(range(len(sources)), key=lambda k: (abs(sources[k] - t), k)) for t in targets]


def plan_clips(duration_s: float, options: SamplingOptions) -> list[ClipPlan]:
    """Clip plans of one video; clips too short for a single pixel frame are left out."""
    plans = []
    for index, (start, length) in enumerate(clip_windows(duration_s, options)):
        pixel_frames = fm.pixel_count_for_seconds(length, options.out_fps)
        if (pixel_frames - 1) / options.out_fps > length + 1e-9:
            pixel_frames -= fm.TEMPORAL_STRIDE  # the last frame must lie inside the window
        if pixel_frames < 1:
            continue
        latent_times = latent_middle_times(start, pixel_frames, options.out_fps)
        if options.mode == "latent":
            caption_times = latent_times
            mapping = list(range(len(latent_times)))
        else:
            caption_times = paper_caption_times(start, length, options)
            mapping = nearest_indices(latent_times, caption_times)
        plans.append(ClipPlan(index, start, pixel_frames, options.out_fps, tuple(caption_times), tuple(mapping)))
    return plans
