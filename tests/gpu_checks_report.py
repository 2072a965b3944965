"""Reading the benchmarks' printed ratios and writing the results of `run_gpu_checks.py`.

Each benchmark prints its ratios as text (measured side by side in one run); these parsers turn that
text into data, and `write_results` stores one run as JSON plus a short markdown table. A parser that
finds nothing returns an empty result, which `run_gpu_checks.py` reports as a failed step: a changed
print format cannot pass unnoticed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import conftest  # noqa: F401  (loads the pack as comfyui_framelevel, as ComfyUI does)
from comfyui_framelevel.nodes.core.files import write_text_atomic

_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")
_SAMPLING_ROW = re.compile(r"^  (?P<name>\S.*?)\s+(?P<ratio>-?\d+\.\d+)\s+\((?:target <= (?P<target>[\d.]+)|.*)\)$")
_TRAIN_RATIO = re.compile(r"ratio training / bare: (?P<ratio>\d+\.\d+)")


def _number(text: str):
    text = text.rstrip("%")
    try:
        return float(text)
    except ValueError:
        return None


def parse_pytest(output: str) -> dict:
    """Counts of pytest's last summary line, e.g. {"passed": 40, "skipped": 2}."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    counts = {}
    for line in reversed(lines):
        found = _PYTEST_COUNT.findall(line)
        if found:
            counts = {("errors" if kind.startswith("error") else kind): int(n) for n, kind in found}
            break
    return counts


def parse_frame_attention(output: str) -> dict:
    """{"tables": [{"title", "columns", "rows": {variant: {column: value}}}]} of
    kernels/bench_frame_attention.py (one table per model shape)."""
    tables, table = [], None
    for line in output.splitlines():
        if line.startswith("Wan "):
            table = {"title": line.strip(), "columns": [], "rows": {}}
            tables.append(table)
        elif table is not None and line.startswith("variant"):
            table["columns"] = re.split(r"\s{2,}", line.strip())[1:]
        elif table is not None and table["columns"] and line.strip():
            name, *values = line.split()
            if len(values) == len(table["columns"]):
                table["rows"][name] = dict(zip(table["columns"], map(_number, values)))
        elif not line.strip():
            table = None if table is not None and table["rows"] else table
    return {"tables": [t for t in tables if t["rows"]]}


def parse_sampling(output: str) -> dict:
    """{"sections": [{"header", "ratios": [{"name", "ratio", "target"}]}]} of tests/bench_sampling.py."""
    sections = []
    for line in output.splitlines():
        row = _SAMPLING_ROW.match(line)
        if row and sections:
            target = row["target"]
            sections[-1]["ratios"].append({"name": row["name"], "ratio": float(row["ratio"]),
                                           "target": float(target) if target else None})
        elif line.startswith(("speed:", "peak memory:")):
            sections.append({"header": line.strip(), "ratios": []})
    return {"sections": [s for s in sections if s["ratios"]]}


_EXPERTS_ROW = re.compile(r"^  (?P<name>\S.*?\S)\s+(?P<ratio>\d+\.\d+)\s+\((?P<note>.*)\)\s*$")


def parse_experts(output: str) -> dict:
    """{"ratios": [{"name", "ratio", "note"}]} of tests/bench_experts.py."""
    rows = [_EXPERTS_ROW.match(line) for line in output.splitlines()]
    return {"ratios": [{"name": r["name"], "ratio": float(r["ratio"]), "note": r["note"]} for r in rows if r]} \
        if any(rows) else {}


def parse_train_step(output: str) -> dict:
    """{"ratio": training step / bare step, "lines": the report} of training/bench_train_step.py."""
    found = _TRAIN_RATIO.search(output)
    if found is None:
        return {}
    lines = [line for line in output.splitlines() if line.startswith(("device ", "bare step", "training step", "ratio"))]
    return {"ratio": float(found["ratio"]), "lines": lines}


def results_stem(run: dict) -> str:
    kind = "dryrun" if run["dry_run"] else "gpu"
    return f"{kind}-{run['device']['slug']}-{run['date'][:10]}"


def _ratio_rows(step: dict) -> list[tuple[str, str, str]]:
    """(measure, ratio, target) rows of the sampling, training and test steps."""
    results = step.get("results") or {}
    if step["name"] == "sampling":
        return [(r["name"], f"{r['ratio']:.3f}", f"<= {r['target']}" if r["target"] else "")
                for section in results.get("sections", []) for r in section["ratios"]]
    if step["name"] == "experts":
        return [(r["name"], f"{r['ratio']:.3f}", r["note"]) for r in results.get("ratios", [])]
    if step["name"] == "train_step" and "ratio" in results:
        return [("training step / bare step", f"{results['ratio']:.3f}", "<= 1.1")]
    if step["name"] == "gpu_tests":
        return [("gpu tests", ", ".join(f"{n} {k}" for k, n in results.items()) or "-", "")]
    return []


def _attention_tables(step: dict) -> list[str]:
    """The frame-attention benchmark's own tables (time of each backend over three baselines)."""
    lines = []
    for table in (step.get("results") or {}).get("tables", []):
        lines += ["", f"{table['title']}", "", "| variant | " + " | ".join(table["columns"]) + " |",
                  "|---" * (len(table["columns"]) + 1) + "|"]
        for variant, values in table["rows"].items():
            cells = ["-" if v is None else f"{v:.4g}" for v in values.values()]
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


def markdown(run: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
    lines = [f"# {'DRY RUN (CPU, tiny sizes; not a measurement)' if run['dry_run'] else 'GPU checks'}: "
             f"{run['device']['name']}, {run['date']}", "",
             f"{versions}; commit {run.get('commit') or '-'}; {run['total_seconds']:.0f} s in all.", "",
             "| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['status']} | {s['seconds']:.0f} |" for s in run["steps"]]
    lines += ["", "| step | measure | ratio | target |", "|---|---|---|---|"]
    for step in run["steps"]:
        lines += [f"| {step['name']} | {m} | {r} | {t} |" for m, r, t in _ratio_rows(step)]
    for step in run["steps"]:
        if step["name"] == "frame_attention":
            lines += _attention_tables(step)
    return "\n".join(lines) + "\n"


def write_results(run: dict, folder) -> tuple[Path, Path]:
    """`<folder>/<gpu|dryrun>-<device>-<date>.json` and `.md`; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = results_stem(run)
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    write_text_atomic(json_path, json.dumps(run, indent=1) + "\n")
    write_text_atomic(md_path, markdown(run))
    return json_path, md_path
