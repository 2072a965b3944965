"""Score one video against its frame prompts (and optionally its video prompt) with any embedder.

The frame prompts are story text read by the pack's one compiler (nodes/core/prompts.py): each run of
equal prompts is one prompt of the metrics, scored on the pixel frames of its latent frames.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ..core.prompts import compile_prompt_schedule
from .metrics import (
    NORMALIZE_MODES,
    confusion_degree,
    frames_in_span,
    middle_of_segment_indices,
    video_level_consistency,
)


@dataclass
class MetricsOptions:
    normalize: str = "row"  # how S_TT / S_TF are divided by their diagonal (see metrics.py)
    frames_per_prompt: int = 1  # pixel frames embedded per prompt (1 = span centre; 8 for ViCLIP)
    video_frames: int = 8  # frames for video-level consistency, one per equal segment
    on_nonpositive: str = "nan"  # "nan" or "clamp" when S_TF[i, i] <= eps

    def __post_init__(self):
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {self.normalize!r}")
        if self.frames_per_prompt < 1 or self.video_frames < 1:
            raise ValueError("frames_per_prompt and video_frames must be >= 1")


@dataclass
class MetricsReport:
    confusion_degree: float
    frame_consistency: float
    video_consistency: float | None
    prompts: int
    pixel_frames: int
    per_prompt_cd: list[float] = field(default_factory=list)
    per_prompt_consistency: list[float] = field(default_factory=list)
    undefined_rows: list[int] = field(default_factory=list)
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        """Readable summary followed by the full numbers as JSON."""
        video = "n/a (no video prompt)" if self.video_consistency is None else f"{self.video_consistency:.4f}"
        lines = [
            f"Confusion Degree (lower is better): {self.confusion_degree:.4f}",
            f"Frame-level text-video consistency: {self.frame_consistency:.4f}",
            f"Video-level text-video consistency: {video}",
            f"{self.prompts} frame prompts over {self.pixel_frames} pixel frames; "
            f"normalize={self.options.get('normalize')}",
        ]
        if self.undefined_rows:
            lines.append(f"CD undefined for prompts {[r + 1 for r in self.undefined_rows]} "
                         "(their own frames have cosine <= 0 with them)")
        return "\n".join(lines) + "\n" + json.dumps(self.to_dict(), indent=1)


def story_spans(text: str, pixel_frames: int, fps: float = 16.0, fmt: str = "auto",
                key_unit: str = "pixel") -> list[tuple[int, int, str]]:
    """(first pixel frame, end pixel frame exclusive, prompt) of each frame prompt of a story, read by
    the schedule compiler exactly as FrameLevelPromptSchedule reads it over a video of `pixel_frames`."""
    schedule = compile_prompt_schedule(text, length=pixel_frames, unit="pixel", fps=fps, fmt=fmt, key_unit=key_unit)
    return schedule.pixel_runs(pixel_frames)


def evaluate_video(frames, spans: list[tuple[int, int, str]], embedder, video_prompt: str | None = None,
                   options: MetricsOptions | None = None) -> MetricsReport:
    """frames: (F, H, W, 3) pixel frames; each frame prompt is scored on its own pixel frames (`spans`,
    from `story_spans`)."""
    options = options or MetricsOptions()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] < 3:
        raise ValueError(f"frames must have shape (F, H, W, 3), got {frames.shape}")
    if not spans or spans[-1][1] > len(frames):
        raise ValueError(f"the frame prompts cover {spans[-1][1] if spans else 0} pixel frames but the video "
                         f"has {len(frames)}")
    frame_prompts = [prompt for _, _, prompt in spans]
    picked = [frames_in_span(start, stop, options.frames_per_prompt) for start, stop, _ in spans]
    text = np.asarray(embedder.encode_text(frame_prompts))
    visual = np.asarray(embedder.encode_visual([frames[indices] for indices in picked]))
    result = confusion_degree(text, visual, options.normalize, on_nonpositive=options.on_nonpositive)
    diagonal = np.diag(result.s_tf)
    video = None
    if video_prompt and video_prompt.strip():
        picked = middle_of_segment_indices(len(frames), options.video_frames)
        video = video_level_consistency(embedder.encode_text([video_prompt])[0],
                                        embedder.encode_visual([frames[picked]])[0])
    return MetricsReport(
        confusion_degree=result.value, frame_consistency=float(diagonal.mean()), video_consistency=video,
        prompts=len(frame_prompts), pixel_frames=len(frames),
        per_prompt_cd=[float(x) for x in result.per_prompt],
        per_prompt_consistency=[float(x) for x in diagonal], undefined_rows=result.undefined_rows,
        options=asdict(options))
