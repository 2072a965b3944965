"""The table: rows (training, prompt type, method) as in the paper's Table 1, printed as markdown and
written with the run's settings as JSON + markdown."""

from __future__ import annotations

import json
from pathlib import Path

from ...nodes.core.files import write_text_atomic  # noqa: TID252 - package-relative

TRAINING_NAMES = {"frame": "frame captions + DF", "video": "video captions, sync (baseline)",
                  "reference": "rendered story (ground truth)"}
METHOD_NAMES = {"fifo": "FIFO", "sliding": "sliding window", "pmwd": "PMWD", "-": "-"}
PROMPT_NAMES = {"video": "video-level", "frame": "frame-level", "-": "-"}
COLUMNS = (  # (key in the row, header, format)
    ("adherence", "adherence ↑", "{:.3f}"),
    ("adherence_sem", "± s.e.", "{:.3f}"),
    ("confusion_degree", "CD ↓", "{:.3f}"),
    ("frame_consistency", "frame cons. ↑", "{:.3f}"),
    ("adherence_first_quarter", "adh. 1st ¼", "{:.3f}"),
    ("adherence_last_quarter", "adh. last ¼", "{:.3f}"),
    ("drift", "drift ↓", "{:+.3f}"),
    ("fidelity_first_quarter", "fidelity 1st ¼", "{:.3f}"),
    ("fidelity_drift", "fid. drift ↓", "{:+.3f}"),
    ("motion_coherence", "motion ↑", "{:.3f}"),
    ("world_consistency", "world kept ↑", "{:.3f}"),
    ("world_consistency_sem", "± s.e.", "{:.3f}"),
)


def markdown_table(rows: list[dict]) -> str:
    header = ["training", "prompt", "method"] + [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [TRAINING_NAMES[row["training"]], PROMPT_NAMES[row["prompt"]], METHOD_NAMES[row["method"]]]
        cells += [fmt.format(row[key]) for key, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def settings_lines(result: dict) -> list[str]:
    s, t = result["settings"], result["timings_s"]
    return [
        f"- domain: {s['scenes']} scenes in Wan latent space ([16, F, {s['size']}, {s['size']}], no VAE); "
        f"{s['clips']} training clips of {s['train_frames']} latent frames; {s['stories']} stories of "
        f"{s['long_frames']} latent frames ({s['length_factor']}x) with {s['story_scenes'][0]}-{s['story_scenes'][1]} "
        "scenes, hard cuts",
        f"- model: Wan DiT dim {s['model']['dim']}, {s['model']['num_layers']} layers, ffn {s['model']['ffn_dim']}, "
        f"text width 4096 (tiny random UMT5, text_len {s['text_len']}); {s['train']['max_steps']} steps x batch "
        f"{s['train']['batch']}, lr {s['train']['learning_rate']} (both runs)",
        f"- sampling (ComfyUI, UNETLoader route): {s['loops']['steps']} steps, shift {s['loops']['shift']}, cfg 1, "
        f"euler; PMWD window {s['loops']['window']} overlap >= {s['loops']['pmwd_overlap']}; sliding window "
        f"{s['loops']['window']} slide {s['loops']['slide']}; FIFO window {s['loops']['window']} x "
        f"{s['loops']['fifo_partitions']} partitions",
        f"- scene classifier accuracy on held-out clean frames: {result['classifier_accuracy']:.3f}; "
        f"cache: {result['cache']}",
        "- wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()),
        f"- machine: {result['machine']}",
    ]


def format_report(result: dict) -> str:
    return "\n".join(["## Table 1 in miniature (measured)", "", markdown_table(result["rows"]), "",
                      *settings_lines(result), ""])


def write_results(result: dict, out: Path) -> tuple[Path, Path]:
    """<out>.json (everything) and <out>.md (the table and its settings)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    write_text_atomic(json_path, json.dumps(result, indent=1))
    write_text_atomic(md_path, format_report(result))
    return json_path, md_path
