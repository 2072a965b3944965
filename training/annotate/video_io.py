"""Video reading and clip writing with PyAV (`pip install av`; the wheel bundles FFmpeg).

Frames are located by presentation time (pts x time_base), not by counting, so variable frame
rate sources work too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...nodes.core.files import atomic_path  # noqa: TID252 - package-relative

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


def _av():
    try:
        import av
    except ImportError as error:
        raise ImportError("video annotation needs PyAV: pip install av") from error
    return av


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    duration_s: float
    fps: float
    width: int
    height: int


def probe(path) -> VideoInfo:
    """Duration, frame rate and size of the first video stream."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 24.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = sum(1 for _ in container.decode(video=0)) / fps
        return VideoInfo(Path(path), duration, fps, stream.codec_context.width, stream.codec_context.height)


def decode_window(path, start_s: float, end_s: float) -> tuple[list[float], list[np.ndarray]]:
    """(times, RGB uint8 frames) of every frame whose time lies in [start_s - 1 frame, end_s]."""
    av = _av()
    times, frames = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        fps = float(stream.average_rate or 24.0)
        if start_s > 1.0:
            container.seek(int((start_s - 1.0) / base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            when = float(frame.pts * base)
            if when < start_s - 1.0 / fps:
                continue
            if when > end_s + 1e-6:
                break
            times.append(when)
            frames.append(frame.to_ndarray(format="rgb24"))
    return times, frames


def frames_at(times: list[float], frames: list[np.ndarray], targets: list[float]) -> list[np.ndarray]:
    """The frame shown at each target time (the last one starting at or before it)."""
    if not frames:
        raise ValueError("no frames were decoded in the requested window")
    picked = []
    for target in targets:
        index = int(np.searchsorted(np.asarray(times), target + 1e-6, side="right")) - 1
        picked.append(frames[max(0, index)])
    return picked


def even_size(frame: np.ndarray) -> np.ndarray:
    """Crop to even width and height (needed by yuv420p encoders)."""
    height, width = frame.shape[:2]
    return frame[: height - height % 2, : width - width % 2]


def write_clip(path, frames: list[np.ndarray], fps: float, crf: int = 18) -> None:
    """Encode RGB frames as H.264 (mpeg4 when libx264 is missing) into `path`, atomically."""
    av = _av()
    from fractions import Fraction

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    first = even_size(frames[0])
    with atomic_path(path) as temp, av.open(str(temp), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = first.shape[1], first.shape[0], "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf)}
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(even_size(frame)), format="rgb24")
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())


def list_videos(folder) -> list[Path]:
    """Video files under `folder` (recursive), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
