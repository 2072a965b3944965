"""Score one video against its frame prompts (and optionally its video prompt) with any embedder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .json_repair import loads_tolerant, validate_frame_prompts
from .metrics import (
    NORMALIZE_MODES,
    confusion_degree,
    frames_for_prompts,
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


def read_frame_prompts(text: str) -> list[str]:
    """Prompts in order from the paper's JSON ({"1": ..., "N": ...}); repairs quotes, fences, commas."""
    data = loads_tolerant(text)
    count = len(data) if isinstance(data, (dict, list)) else 0
    if count == 0:
        raise ValueError("the frame prompts text holds no prompts; expected {\"1\": \"...\", ...}")
    return list(validate_frame_prompts(data, count, text).values())


def evaluate_video(frames, frame_prompts: list[str], embedder, video_prompt: str | None = None,
                   options: MetricsOptions | None = None) -> MetricsReport:
    """frames: (F, H, W, 3) pixel frames; prompt i is scored on the i-th of N equal spans of them."""
    options = options or MetricsOptions()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] < 3:
        raise ValueError(f"frames must have shape (F, H, W, 3), got {frames.shape}")
    spans = frames_for_prompts(len(frames), len(frame_prompts), options.frames_per_prompt)
    text = np.asarray(embedder.encode_text(list(frame_prompts)))
    visual = np.asarray(embedder.encode_visual([frames[span] for span in spans]))
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
