"""The annotation run: find videos, drop near-duplicates, cut clips, caption them, write the dataset.

Output layout (OUT = --out):

    OUT/clips/<clip_id>/clip.mp4        the clip at out_fps, 4k+1 pixel frames
    OUT/clips/<clip_id>/captions.json   the clip's story: the paper's JSON object, a 1-based LATENT frame
                                        key where the caption changes (read by nodes/core/prompts.py)
    OUT/clips/<clip_id>/meta.json       where the clip came from and which frames were captioned
    OUT/clips/<clip_id>/DONE            written last: a clip without it is redone on the next run
    OUT/train/<clip_id>.mp4 / .json     flat view for the trainer (training/data/layout.py):
                                        a hard link to the clip and the same story text
    OUT/metadata.jsonl                  one line per finished clip (rebuilt from DONE markers on start)
    OUT/duplicates.jsonl                videos left out as near-duplicates of an earlier one

Every file is written atomically, so a killed run loses at most the clip in progress.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...nodes.core.files import atomic_path, write_text_atomic  # noqa: TID252 - package-relative
from ...nodes.core.prompts import paper_json  # noqa: TID252 - package-relative
from ...nodes.story.client import ChatClient, LLMError  # noqa: TID252 - package-relative
from .caption import CaptionError, CaptionOptions, caption_frames
from .dedup import DedupOptions, find_duplicates, phash
from .sampling import ClipPlan, SamplingOptions, plan_clips
from .video_io import decode_window, frames_at, list_videos, probe, write_clip

DONE = "DONE"


@dataclass
class AnnotateOptions:
    videos: Path
    out: Path
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    caption: CaptionOptions = field(default_factory=CaptionOptions)
    dedup: DedupOptions = field(default_factory=DedupOptions)
    trainer_view: bool = True


@dataclass
class AnnotateReport:
    written: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # finished by an earlier run, left alone
    failed: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, str] = field(default_factory=dict)


def clip_id(source: str, index: int) -> str:
    """Stable, readable id: file stem, a hash of the relative path, the clip number."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(source).stem)[:40] or "video"
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    return f"{stem}-{digest}-c{index}"


def video_fingerprint(path: Path, fractions) -> list[int]:
    """pHash of the frame shown at each fraction of the video's duration."""
    info = probe(path)
    hashes = []
    for fraction in fractions:
        when = info.duration_s * fraction
        times, frames = decode_window(path, when, when + 2.0 / info.fps)
        hashes.append(phash(frames_at(times, frames, [when])[0]))
    return hashes


def remove_duplicates(videos: list[Path], root: Path, options: DedupOptions) -> tuple[list[Path], dict]:
    fingerprints = {str(v.relative_to(root)): video_fingerprint(v, options.fractions) for v in videos}
    duplicates = find_duplicates(fingerprints, options)
    return [v for v in videos if str(v.relative_to(root)) not in duplicates], duplicates


def latent_captions(plan: ClipPlan, captions: list[str]) -> list[str]:
    """The caption of every latent frame of the clip."""
    return [captions[k] for k in plan.latent_caption]


def _unique_in_order(texts) -> list[str]:
    return list(dict.fromkeys(texts))


def clip_record(cid: str, source: str, plan: ClipPlan, frame_captions: list[str], mode: str) -> dict:
    return {
        "clip_id": cid, "source": source, "start_s": round(plan.start_s, 4),
        "duration_s": round(plan.duration_s, 4), "fps": plan.out_fps, "pixel_frames": plan.pixel_frames,
        "latent_frames": plan.latent_frames, "video_path": f"clips/{cid}/clip.mp4",
        "captions_path": f"clips/{cid}/captions.json", "sampling": mode,
        "caption_times_s": [round(t, 4) for t in plan.caption_times],
        "caption_of_latent": list(plan.latent_caption),  # index into caption_times_s per latent frame
        "caption": " ".join(_unique_in_order(frame_captions)),  # for trainers without frame captions
        "frame_captions": frame_captions,
    }


def clip_story(record: dict) -> str:
    """The clip's captions as story text (the paper's JSON object, 1-based latent keys), as written to
    captions.json and the trainer view."""
    return paper_json(record["frame_captions"])


def _link_or_copy(source: Path, target: Path) -> None:
    with atomic_path(target) as temp:
        temp.unlink()
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)


def write_clip_files(out: Path, cid: str, pixels: list, record: dict, trainer_view: bool) -> None:
    folder = out / "clips" / cid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE).unlink(missing_ok=True)
    write_clip(folder / "clip.mp4", pixels, record["fps"])
    story = clip_story(record)
    write_text_atomic(folder / "captions.json", story)
    write_text_atomic(folder / "meta.json", json.dumps(record, ensure_ascii=False, indent=1))
    if trainer_view:
        train = out / "train"
        train.mkdir(exist_ok=True)
        _link_or_copy(folder / "clip.mp4", train / f"{cid}.mp4")
        write_text_atomic(train / f"{cid}.json", story)
    write_text_atomic(folder / DONE, "")


def finished_records(out: Path) -> list[dict]:
    """meta.json of every clip with a DONE marker, by clip id."""
    records = []
    for marker in sorted((out / "clips").glob(f"*/{DONE}")):
        records.append(json.loads((marker.parent / "meta.json").read_text(encoding="utf-8")))
    return records


def rebuild_index(out: Path) -> int:
    records = finished_records(out)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_text_atomic(out / "metadata.jsonl", lines)
    return len(records)


def append_index(out: Path, record: dict) -> None:
    with open(out / "metadata.jsonl", "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def annotate_clip(path: Path, plan: ClipPlan, client: ChatClient, options: AnnotateOptions):
    """(pixel frames to write, the caption of every latent frame) of one planned clip."""
    end = max(plan.pixel_times()[-1], plan.caption_times[-1])
    times, decoded = decode_window(path, plan.start_s, end)
    pixels = frames_at(times, decoded, plan.pixel_times())
    captioned = frames_at(times, decoded, list(plan.caption_times))
    captions = caption_frames(captioned, client, options.caption)
    return pixels, latent_captions(plan, captions)


def run_annotation(options: AnnotateOptions, client: ChatClient,
                   log: Callable[[str], None] = print) -> AnnotateReport:
    out, root = Path(options.out), Path(options.videos)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    report = AnnotateReport()
    log(f"{rebuild_index(out)} clips already finished in {out}")
    videos = list_videos(root)
    if not videos:
        raise FileNotFoundError(f"no video files under {root}")
    kept, report.duplicates = remove_duplicates(videos, root, options.dedup)
    write_text_atomic(out / "duplicates.jsonl", "".join(
        json.dumps({"video": d, "duplicate_of": o}) + "\n" for d, o in report.duplicates.items()))
    for path in kept:
        source = str(path.relative_to(root))
        for plan in plan_clips(probe(path).duration_s, options.sampling):
            cid = clip_id(source, plan.index)
            if (out / "clips" / cid / DONE).exists():
                report.resumed.append(cid)
                continue
            try:
                pixels, frame_captions = annotate_clip(path, plan, client, options)
            except (CaptionError, LLMError, ValueError) as error:
                report.failed[cid] = str(error)
                log(f"FAILED {cid}: {error}")
                continue
            record = clip_record(cid, source, plan, frame_captions, options.sampling.mode)
            write_clip_files(out, cid, pixels, record, options.trainer_view)
            append_index(out, record)
            report.written.append(cid)
            log(f"wrote {cid}: {plan.pixel_frames} pixel frames, {plan.latent_frames} latent captions")
    return report
