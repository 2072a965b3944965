"""Helpers for the browser tests: a real ComfyUI server with the pack linked, serving either the
frontend its own requirements pin (comfyui-frontend-package 1.27.10 for ComfyUI 0.3.64) or the
newest frontend from the registry (`--front-end-root $FRAMELEVEL_NEWEST_FRONTEND_ROOT`), opened in
headless Chromium through Playwright.

The frontend only reports a missing node type from inside `app.loadGraphData`: it collects the types
that are not in `LiteGraph.registered_node_types`, hands that list to every extension's
`afterConfigureGraph` hook and shows its "missing nodes" dialog. `EXTENSION_JS` registers a small
extension that keeps each such list, and `LOAD_JS` also checks the loaded graph itself (nodes whose
type is not registered or that LiteGraph replaced by an error placeholder), so either way a missing
node type cannot pass unnoticed.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import ci_strict  # noqa: E402
import run_workflow  # noqa: E402

# The static root (the folder holding index.html) of the newest comfyui-frontend-package, installed
# apart from the venv: pip install --no-deps --target DIR comfyui-frontend-package==X, then
# FRAMELEVEL_NEWEST_FRONTEND_ROOT=DIR/comfyui_frontend_package/static.
NEWEST_ENV = "FRAMELEVEL_NEWEST_FRONTEND_ROOT"
FRONTENDS = ("bundled", "newest")

DEFAULT_CHROMIUM = "/usr/bin/chromium"

# Debian's Chromium as root in a sandbox without a GPU or outside network.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# A 1x1 PNG, so LoadImage's preview (GET /api/view?filename=...) finds a real image.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

# Settings of a user who has opened ComfyUI before, written to the temporary user directory.
USER_SETTINGS = {
    # Not a new user: no first-run tutorial / template browser over the canvas.
    "Comfy.TutorialCompleted": True,
    # The release notifier fetches https://api.comfy.org/releases; there is no outside network here.
    "Comfy.Notification.ShowVersionUpdates": False,
    # Frontend 1.27.x bug on a profile that never touched canvas navigation: registering
    # Comfy.Canvas.NavigationMode runs its onChange, which sets Comfy.Canvas.LeftMouseClickBehavior
    # before that setting is registered and throws "Cannot read properties of undefined (reading
    # 'id')" as an unhandled rejection on every page load. Storing the values that onChange would
    # store (the "legacy" navigation defaults) makes it a no-op, so the page loads without that error.
    "Comfy.Canvas.NavigationMode": "legacy",
    "Comfy.Canvas.LeftMouseClickBehavior": "panning",
    "Comfy.Canvas.MouseWheelScroll": "zoom",
}


def chromium_path() -> str | None:
    """FRAMELEVEL_CHROMIUM, else Debian's /usr/bin/chromium; None when that file is absent."""
    path = os.environ.get("FRAMELEVEL_CHROMIUM") or DEFAULT_CHROMIUM
    return path if Path(path).is_file() else shutil.which(path)


def seed_user_dir(user_dir: Path, frontend_version: str | None = None, extra: dict | None = None) -> None:
    """A ComfyUI user directory (--user-directory) as an existing user's: settings, an empty user.css,
    the workflows/subgraphs folders and an empty node-template list, so the frontend's start-up
    requests for them answer 200 instead of 404 (each 404 is a console error in Chromium)."""
    default = user_dir / "default"
    (default / "workflows").mkdir(parents=True, exist_ok=True)
    (default / "subgraphs").mkdir(exist_ok=True)
    settings = {**USER_SETTINGS, **(extra or {})}
    if frontend_version:
        settings["Comfy.InstalledVersion"] = frontend_version
    (default / "comfy.settings.json").write_text(json.dumps(settings, indent=1))
    (default / "user.css").write_text("")
    (default / "comfy.templates.json").write_text("[]")


def model_placeholders(api_workflows: list[dict], model_inputs: dict) -> dict[str, set[str]]:
    """{folder key (diffusion_models, vae, ..., input): file names} that the workflows load."""
    wanted: dict[str, set[str]] = {}
    for workflow in api_workflows:
        for node in workflow.values():
            spec = model_inputs.get(node.get("class_type"))
            if spec is None:
                continue
            input_name, folders, _ = spec
            name = node.get("inputs", {}).get(input_name)
            if isinstance(name, str):
                wanted.setdefault(Path(folders[0]).name, set()).add(name)
    return wanted


def write_placeholders(root: Path, wanted: dict[str, set[str]]) -> Path:
    """Empty model files (tiny PNGs for `input`) under root/<folder key>/ and an extra_model_paths
    section naming those folders; returns the input directory (for --input-directory)."""
    for key, names in wanted.items():
        for name in names:
            path = root / key / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(TINY_PNG if key == "input" else b"")
    (root / "input").mkdir(parents=True, exist_ok=True)
    return root / "input"


def extra_paths_yaml(custom_nodes: Path, models_root: Path, keys) -> str:
    lines = ["framelevel_frontend_test:", f"  custom_nodes: {custom_nodes}"]
    lines += [f"  {key}: {models_root / key}" for key in sorted(keys) if key != "input"]
    return "\n".join(lines) + "\n"


# Page-load noise of the stock ComfyUI 0.3.64 + frontend 1.27.10, whatever the workflows: index.html
# links a legacy `/user.css` that no ComfyUI route serves, and the frontend ships no favicon that
# Chromium asks for. Allowed only as 404s of exactly these two same-origin URLs.
ALLOWED_404_PATHS = ("/user.css", "/favicon.ico")

# Endpoints the newest frontend calls that ComfyUI 0.3.64 does not have (they came with later
# servers): the jobs API behind the queue and history panel (GET /api/jobs?status=...) and the
# subgraph library (GET /api/global_subgraphs). Each answers 404, which Chromium logs, and the
# frontend logs its failed jobs fetch twice more. Allowed only with that frontend, only as these.
NEWER_SERVER_PATHS = ("/api/jobs", "/api/global_subgraphs")
NEWER_SERVER_MESSAGES = ("[Jobs API] Error fetching jobs: JobsApiError: Failed to fetch jobs: 404",
                         "Failed to fetch queue: JobsApiError: Failed to fetch jobs: 404")


# Start-up noise of a frontend release itself, by version prefix: seen with every custom node
# disabled (--disable-all-custom-nodes), so no pack causes it. Frontend 1.48 (pinned by ComfyUI
# 0.33.0): a Vue computed reads app.rootGraph before the graph exists, and that getter logs this.
FRONTEND_MESSAGES = {"1.48.": ("ComfyApp graph accessed before initialization",)}


def allowed_noise(which: str, version: str | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(URL paths whose 404 is allowed, console messages allowed) for the frontend `which` of `version`."""
    own = tuple(m for prefix, messages in FRONTEND_MESSAGES.items() if (version or "").startswith(prefix)
                for m in messages)
    if which == "newest":
        return ALLOWED_404_PATHS + NEWER_SERVER_PATHS, NEWER_SERVER_MESSAGES + own
    return ALLOWED_404_PATHS, own


@dataclass
class Problem:
    kind: str            # console.error / pageerror
    text: str
    url: str = ""

    def __str__(self):
        return f"[{self.kind}] {self.text}" + (f" ({self.url})" if self.url else "")


@dataclass
class Collector:
    base_url: str
    allowed_404: tuple[str, ...] = ALLOWED_404_PATHS
    allowed_messages: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)
    allowed: list[Problem] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(
            Problem("pageerror", error.stack or str(error))))

    def _is_allowed(self, text: str, url: str) -> bool:
        if text.startswith("Failed to load resource: the server responded with a status of 404"):
            return url.split("?")[0] in {self.base_url + path for path in self.allowed_404}
        return text.split("\n", 1)[0] in self.allowed_messages    # the first line; a stack trace may follow

    def _console(self, message) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        problem = Problem("console.error", message.text, url)
        (self.allowed if self._is_allowed(message.text, url) else self.problems).append(problem)

    def take(self) -> list[Problem]:
        taken, self.problems = self.problems, []
        return taken


READY_JS = """(nodeType) => Boolean(window.app && window.app.graph && window.app.canvas
    && window.LiteGraph && window.LiteGraph.registered_node_types[nodeType])"""

EXTENSION_JS = """() => {
    window.__framelevelMissing = [];
    window.app.registerExtension({
        name: "framelevel.test.missingNodes",
        async afterConfigureGraph(missingNodeTypes) {
            window.__framelevelMissing.push((missingNodeTypes || []).map(
                (t) => (typeof t === "string" ? t : t.type)));
        },
    });
}"""

# The frontend's notice of missing node types: a dialog in 1.27, a status panel in newer frontends.
NOTICES_JS = """const missingNotices = () => Array.from(
    document.querySelectorAll(".p-dialog, [role=dialog], [role=status], [role=alert]")).filter(
        (d) => /missing/i.test(d.textContent || ""));"""

LOAD_JS = """async (workflow) => {
    """ + NOTICES_JS + """
    window.__framelevelMissing = [];
    await window.app.loadGraphData(workflow);
    const registered = window.LiteGraph.registered_node_types;
    const graph = window.app.graph;
    const nodes = graph.nodes || graph._nodes;
    const combos = [];
    for (const node of nodes) {
        for (const widget of node.widgets || []) {
            if (widget.type !== "combo") continue;
            let values = widget.options && widget.options.values;
            if (typeof values === "function") values = values(widget, node);
            if (Array.isArray(values) && !values.includes(widget.value)) {
                combos.push({id: node.id, type: node.type, widget: widget.name, value: widget.value,
                             options: values.slice(0, 20)});
            }
        }
    }
    const saved = graph.serialize();
    return {
        reported_missing: window.__framelevelMissing.flat(),
        unregistered: nodes.filter((n) => n.has_errors || !(n.type in registered))
            .map((n) => ({id: n.id, type: n.type || (n.last_serialization || {}).type})),
        node_count: nodes.length,
        link_count: (saved.links || []).length,
        types: Object.fromEntries(nodes.map((n) => [String(n.id), n.type])),
        widgets_values: Object.fromEntries((saved.nodes || []).map(
            (n) => [String(n.id), n.widgets_values === undefined ? null : n.widgets_values])),
        bad_combos: combos,
        missing_dialog: missingNotices().length > 0,
    };
}"""

GEOMETRY_JS = """() => {
    const graph = window.app.graph, canvas = window.app.canvas;
    const links = graph.links instanceof Map ? Array.from(graph.links.values()) : Object.values(graph.links || {});
    const outPos = (n, s) => Array.from(n.getOutputPos ? n.getOutputPos(s) : n.getConnectionPos(false, s));
    const inPos = (n, s) => Array.from(n.getInputPos ? n.getInputPos(s) : n.getConnectionPos(true, s));
    return {
        nodes: graph.nodes.map((n) => ({id: n.id, type: n.type, size: Array.from(n.size),
            min_size: Array.from(n.computeSize()), bounding: Array.from(n.boundingRect ?? n.getBounding())})),
        links: links.filter((l) => l).map((l) => ({id: l.id, origin: l.origin_id, target: l.target_id,
            start: outPos(graph.getNodeById(l.origin_id), l.origin_slot),
            end: inPos(graph.getNodeById(l.target_id), l.target_slot)})),
        groups: (graph._groups || graph.groups).map((g) => ({title: g.title,
            bounding: Array.from(g._bounding ?? g.boundingRect)})),
        ds: {scale: canvas.ds.scale, offset: Array.from(canvas.ds.offset)},
        lowQuality: canvas.low_quality, renderMode: canvas.links_render_mode, spline: window.LiteGraph.SPLINE_LINK,
    };
}"""

# Nodes a person cannot see at the view as loaded: a corner or the title of the node's box lies
# outside the window or under another element (the side bar, the menu, the minimap, a dialog).
# The node's own widgets drawn as HTML (text areas, previews) count as the node.
HIDDEN_NODES_JS = """() => {
    const canvas = window.app.canvas, element = canvas.canvas, rect = element.getBoundingClientRect();
    const {scale, offset} = canvas.ds, title = window.LiteGraph.NODE_TITLE_HEIGHT;
    const toScreen = (x, y) => [rect.left + (x + offset[0]) * scale, rect.top + (y + offset[1]) * scale];
    const hidden = [];
    for (const node of window.app.graph.nodes) {
        const [x, y] = node.pos, [w, h] = node.size;
        const points = [[x + w / 2, y - title / 2], [x + 3, y - title + 3], [x + w - 3, y - title + 3],
                        [x + 3, y + h - 3], [x + w - 3, y + h - 3]];
        for (const [px, py] of points.map(([a, b]) => toScreen(a, b))) {
            const hit = document.elementFromPoint(px, py);
            if (hit !== element && !(hit && hit.closest(".dom-widget, .comfy-multiline-input, video, img"))) {
                hidden.push({id: node.id, type: node.type, at: [Math.round(px), Math.round(py)],
                             under: hit ? (hit.className || hit.tagName).toString().slice(0, 80) : "outside the window"});
                break;
            }
        }
    }
    return hidden;
}"""

CLOSE_DIALOGS_JS = """() => {
    """ + NOTICES_JS + """
    for (const notice of missingNotices()) {
        const buttons = Array.from(notice.querySelectorAll("button"));
        const close = notice.querySelector(".p-dialog-close-button")
            || buttons.find((b) => /close|dismiss/i.test(b.getAttribute("aria-label") || "")) || buttons[0];
        if (close) close.click();
    }
}"""

NO_NOTICE_JS = """() => {
    """ + NOTICES_JS + """
    return missingNotices().length === 0;
}"""


def frontend_root(which: str) -> Path | None:
    """None for the frontend ComfyUI serves by itself; the newest one's static root from NEWEST_ENV
    (the test skips, naming the variable, when it is unset)."""
    if which == "bundled":
        return None
    value = os.environ.get(NEWEST_ENV)
    if not value:
        ci_strict.unavailable(f"the newest frontend is not installed here: set {NEWEST_ENV} to the static folder of "
                    "`pip install --no-deps --target DIR comfyui-frontend-package==X` (DIR/comfyui_frontend_package/static)")
    root = Path(value)
    if not (root / "index.html").is_file():
        pytest.fail(f"{NEWEST_ENV}={value} holds no index.html (give the package's `static` folder)")
    return root


def frontend_version(root: Path | None) -> str | None:
    """The comfyui-frontend-package version of a static root (None = the one installed in this venv)."""
    if root is None:
        try:
            return importlib.metadata.version("comfyui-frontend-package")
        except importlib.metadata.PackageNotFoundError:
            return None
    for info in root.parent.parent.glob("comfyui_frontend_package-*.dist-info"):
        return info.name[len("comfyui_frontend_package-"):-len(".dist-info")]
    return None


def require_browser() -> None:
    """Skip (with the reason; in CI's strict mode, fail) where ComfyUI, Chromium or Playwright is missing."""
    if not os.environ.get("COMFYUI_PATH"):
        ci_strict.unavailable("needs a ComfyUI checkout: set COMFYUI_PATH to it")
    if chromium_path() is None:
        ci_strict.unavailable(f"needs Chromium at {DEFAULT_CHROMIUM} (apt-get install chromium) or "
                              "FRAMELEVEL_CHROMIUM")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        ci_strict.unavailable(f"needs the Python package playwright ({err})")


def api_workflows() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((ROOT / "workflows" / "api").glob("*.api.json"))]


@contextlib.contextmanager
def comfy_server(tmp: Path, root: Path | None = None, settings: dict | None = None):
    """A real ComfyUI (COMFYUI_PATH, on the CPU) with the pack linked as custom_nodes/comfyui-framelevel,
    empty model files (and 1x1 input images) named as the workflows name them, so the loader dropdowns
    hold values the server lists, a user directory seeded with `settings`, and `root` as
    --front-end-root if given."""
    nodes_dir = tmp / "custom_nodes"
    nodes_dir.mkdir(parents=True)
    (nodes_dir / "comfyui-framelevel").symlink_to(ROOT, target_is_directory=True)
    wanted = model_placeholders(api_workflows(), run_workflow.MODEL_INPUTS)
    input_dir = write_placeholders(tmp / "models", wanted)
    config = tmp / "extra_paths.yaml"
    config.write_text(extra_paths_yaml(nodes_dir, tmp / "models", wanted))
    seed_user_dir(tmp / "user", frontend_version(root), settings)
    args = ["--extra-model-paths-config", str(config), "--user-directory", str(tmp / "user"),
            "--input-directory", str(input_dir), "--output-directory", str(tmp / "output")]
    if root is not None:
        args += ["--front-end-root", str(root)]
    server = run_workflow.ComfyServer(Path(os.environ["COMFYUI_PATH"]), sys.executable, cpu=True,
                                      log_path=tmp / "server.log", extra_args=args)
    server.frontend_version = frontend_version(root)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def browser_page(server, ready_node: str, which: str = "bundled", viewport=(1920, 1080)):
    """Chromium (a full-HD window) on the server's frontend, ready once `ready_node` is a registered node
    type; yields (page, collector, the console errors of the start-up). `which` says whose start-up
    noise is allowed (allowed_noise)."""
    from playwright.sync_api import sync_playwright

    allowed_404, allowed_messages = allowed_noise(which, getattr(server, "frontend_version", None))
    collector = Collector(server.url, allowed_404=allowed_404, allowed_messages=allowed_messages)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            collector.attach(page)
            page.goto(server.url + "/")
            page.wait_for_function(READY_JS, arg=ready_node, timeout=90_000)
            page.evaluate(EXTENSION_JS)
            page.wait_for_load_state("networkidle")
            yield page, collector, collector.take()
        finally:
            browser.close()
