"""The live story timeline in the real ComfyUI frontend, served by a real ComfyUI with the pack
loaded, in headless Chromium: typing a story into FrameLevelPromptSchedule shows each prompt's span
(seconds, pixel frames, latent frames) as the pack's parser computes it, a broken story shows its
parse error, and a screenshot is kept.

Runs against the frontend ComfyUI serves (the venv's comfyui-frontend-package) and against a newer
one served with --front-end-root: set FRAMELEVEL_NEWEST_FRONTEND_ROOT to its static folder, e.g.
    pip install --target /tmp/fe-new --no-deps comfyui-frontend-package==<newest>
    FRAMELEVEL_NEWEST_FRONTEND_ROOT=/tmp/fe-new/comfyui_frontend_package/static
The classic canvas is driven on both, the Vue node renderer on the newer one. Screenshots are written under pytest's
tmp path and copied to FRAMELEVEL_TEST_ARTIFACTS when that is set.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import frontend_support as fs  # noqa: E402
from comfyui_framelevel.nodes.core.story.timeline import timeline  # noqa: E402

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

ARTIFACTS_ENV = "FRAMELEVEL_TEST_ARTIFACTS"
NODE = "FrameLevelPromptSchedule"
STORY = "a fox in snow | the fox drinks | the fox sleeps"
BROKEN = "a fox in snow | the fox drinks\nthe fox sleeps"
NODE_INPUTS = 9  # text, length, length_unit, format, key_unit, fps, prefix, suffix, global_prompt

ADD_NODE_JS = """async ([type, vue]) => {
    await window.app.extensionManager.setting.set("Comfy.VueNodes.Enabled", vue);
    window.app.graph.clear();
    const node = window.LiteGraph.createNode(type);
    node.pos = [60, 60];
    window.app.graph.add(node);
    node.setSize([720, 620]);
    window.app.canvas.ds.offset = [0, 0];
    window.app.canvas.ds.scale = 1;
    window.app.canvas.setDirty(true, true);
    return node.id;
}"""

MARK_TEXTAREA_JS = """(id) => {
    const node = window.app.graph.getNodeById(id);
    const value = node.widgets.find((w) => w.name === "text").value;
    const found = Array.from(document.querySelectorAll("textarea")).filter((t) => t.value === value);
    found.forEach((t) => t.setAttribute("data-fl-test", "story-" + id));
    return found.length;
}"""

TIMELINE_JS = """(id) => {
    const root = document.querySelector(`.framelevel-timeline[data-node-id="${id}"]`);
    if (!root) return null;
    const summary = root.querySelector(".fl-summary");
    const error = root.querySelector(".fl-error");
    return {
        state: root.dataset.state || null,
        summary: summary ? summary.textContent : null,
        distinct: summary ? Number(summary.dataset.distinct) : null,
        format: summary ? summary.dataset.format : null,
        error: error ? error.textContent : null,
        visible: root.getBoundingClientRect().height > 20,
        segments: Array.from(root.querySelectorAll(".fl-seg")).map((s) => ({
            number: Number(s.dataset.number),
            latent: [Number(s.dataset.latentFirst), Number(s.dataset.latentLast)],
            pixel: [Number(s.dataset.pixelFirst), Number(s.dataset.pixelLast)],
            seconds: [Number(s.dataset.secondsStart), Number(s.dataset.secondsEnd)],
            prompt: s.title.split("\\n").slice(1).join("\\n"),
            width: s.getBoundingClientRect().width,
        })),
    };
}"""

SAVED_JS = """async (id) => {
    const node = window.app.graph.getNodeById(id);
    const prompt = await window.app.graphToPrompt();  // {workflow: what is saved, output: what is queued}
    const saved = prompt.workflow.nodes.find((n) => String(n.id) === String(id));
    return {text: node.widgets.find((w) => w.name === "text").value, widgets_values: saved.widgets_values,
            prompt_inputs: Object.keys(prompt.output[String(id)].inputs)};
}"""


@pytest.fixture(scope="module")
def browser_page(request, tmp_path_factory):
    fs.require_browser()
    root = fs.frontend_root(request.param)
    with fs.comfy_server(tmp_path_factory.mktemp(f"timeline-{request.param}"), root) as server:
        with fs.browser_page(server, NODE, which=request.param, viewport=(1280, 900)) as (page, collector, _):
            yield SimpleNamespace(page=page, collector=collector, name=request.param,
                                  version=fs.frontend_version(root))


def keep_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    folder = os.environ.get(ARTIFACTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)
    return path


def type_story(page, node_id: int, story: str) -> None:
    """Replace the node's story the way a user does: click into the text box and type it."""
    box = page.locator(f'[data-fl-test="story-{node_id}"]')
    box.click()
    box.press("Control+A")
    box.press("Delete")
    box.press_sequentially(story, delay=2)


def wait_timeline(page, node_id: int, condition: str) -> dict:
    page.wait_for_function(f"(id) => {{ const t = ({TIMELINE_JS})(id); return t && ({condition}); }}",
                           arg=node_id, timeout=30_000)
    return page.evaluate(TIMELINE_JS, node_id)


def our_problems(collector) -> list[str]:
    """Console errors and page errors that come from the pack's extension or its route."""
    return [str(p) for p in collector.take() if "framelevel" in (p.text + p.url).lower()]


# Frontend 1.27.10's Vue renderer (experimental there, off by default) draws only its own built-in
# widget types, so no extension's DOM widget shows in it; newer frontends render DOM widgets in Vue
# nodes, and the newest is driven in both renderers.
@pytest.mark.parametrize("browser_page, renderer", [("bundled", "classic"), ("newest", "classic"), ("newest", "vue")],
                         indirect=["browser_page"])
def test_timeline_follows_the_typed_story(browser_page, renderer, tmp_path):
    page = browser_page.page
    node_id = page.evaluate(ADD_NODE_JS, [NODE, renderer == "vue"])
    first = wait_timeline(page, node_id, "t.state === 'ok'")
    assert first["format"] == "json" and first["distinct"] == 3 and first["visible"]  # the node's example story
    assert page.evaluate(MARK_TEXTAREA_JS, node_id) == 1

    type_story(page, node_id, STORY)
    shown = wait_timeline(page, node_id, "t.state === 'ok' && t.format === 'pipes' && "
                                         "t.segments.map((s) => s.prompt).join(' | ') === " + repr(STORY))
    expected = timeline({"text": STORY, "length": 81, "length_unit": "pixel", "format": "auto"})
    assert [(s["latent"], s["pixel"], s["seconds"], s["number"], s["prompt"]) for s in shown["segments"]] == \
        [(s["latent"], s["pixel"], s["seconds"], s["number"], s["prompt"]) for s in expected["segments"]]
    assert [s["latent"] for s in shown["segments"]] == [[0, 6], [7, 13], [14, 20]]
    assert [s["pixel"] for s in shown["segments"]] == [[0, 24], [25, 52], [53, 80]]
    assert [s["seconds"] for s in shown["segments"]] == [[0.0, 1.5625], [1.5625, 3.3125], [3.3125, 5.0625]]
    assert shown["distinct"] == 3 and "pipes (detected)" in shown["summary"]
    assert "21 latent frames = 81 pixel frames = 5.06 s" in shown["summary"]
    widths = [s["width"] for s in shown["segments"]]
    assert min(widths) > 20 and max(widths) - min(widths) < 2  # 7 latent frames each: equal blocks
    keep_screenshot(page, tmp_path, f"timeline-{browser_page.name}-{renderer}")

    saved = page.evaluate(SAVED_JS, node_id)
    assert saved["text"] == STORY  # what the node samples is what the timeline shows
    assert len(saved["widgets_values"]) == NODE_INPUTS and "story_timeline" not in saved["prompt_inputs"]

    type_story(page, node_id, BROKEN)
    broken = wait_timeline(page, node_id, "t.state === 'error' && t.error.includes('the fox sleeps')")
    assert broken["segments"] == []
    assert "line 2: 'the fox sleeps' starts a new line without a |" in broken["error"] and "Fix:" in broken["error"]
    keep_screenshot(page, tmp_path, f"timeline-error-{browser_page.name}-{renderer}")
    assert our_problems(browser_page.collector) == []
