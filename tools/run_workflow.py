#!/usr/bin/env python3
"""Run one of the pack's API-format workflows headless through a ComfyUI checkout.

    python tools/run_workflow.py --comfyui ~/ComfyUI workflows/api/story_pmwd_30s.api.json [--download]

Steps: link this pack into ComfyUI's custom_nodes (once), with --download fetch the missing model
files from Hugging Face (hub_download.py), check that every model file the workflow loads is present
(each missing file is named with the folder it belongs in, and nothing starts), start the ComfyUI
server on a free local port, queue the workflow, wait for it, print the files it wrote, and stop the
server. Standard library only (huggingface_hub for --download), so it runs with any Python.

    python tools/run_workflow.py --comfyui ~/ComfyUI --smoke

is the install check without weights: the main workflow (story_pmwd_30s) runs end to end in a
temporary ComfyUI server of that checkout, on CPU, on tiny random stand-in model files
(tools/tiny_weights.py) written into a temporary folder that the server reads through an extra model
paths config, at 32x32 pixels with 2 steps. Nothing is written into the checkout's folders. The
video is noise; the run shows that the pack loads, the graph validates, every node runs and the
video file is written.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from model_files import MODEL_FILES, MODEL_INPUTS

PACK_ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "comfyui-framelevel"
API_DIR = PACK_ROOT / "workflows" / "api"

def link_pack(comfy_dir: Path) -> Path:
    """Make the pack visible to ComfyUI as custom_nodes/comfyui-framelevel."""
    target = comfy_dir / "custom_nodes" / PACK_NAME
    if target.is_symlink() or target.exists():
        if target.resolve() != PACK_ROOT:
            print(f"note: {target} exists and is not this checkout ({PACK_ROOT}); using it as it is")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(PACK_ROOT, target_is_directory=True)
    print(f"linked {target} -> {PACK_ROOT}")
    return target


def format_problem(workflow) -> str | None:
    """Why `workflow` is not an API-format workflow ({node id: {"class_type", "inputs"}}), else None."""
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
        return ("is a UI-format workflow (the file the ComfyUI frontend saves, with \"nodes\" and \"links\"); "
                "this runner queues the API format. Fix: in ComfyUI use Workflow > Export (API), or give the "
                "matching file of workflows/api/")
    if not isinstance(workflow, dict) or not workflow:
        return "is not an API-format workflow (a JSON object of nodes). Fix: export it with Workflow > Export (API)"
    for node_id, node in workflow.items():
        if not (isinstance(node, dict) and isinstance(node.get("class_type"), str)
                and isinstance(node.get("inputs", {}), dict)):
            return (f"node {node_id!r} is not an API-format node (a class_type and an inputs object). "
                    "Fix: export the workflow with Workflow > Export (API)")
    return None


def safe_relative_name(name: str) -> bool:
    """A loader's file name stays inside its folder: relative, no '..' part, no NUL (subfolders are fine)."""
    parts = name.replace("\\", "/").split("/")
    return bool(name.strip()) and "\0" not in name and not name.startswith(("/", "\\")) \
        and not (len(name) > 1 and name[1] == ":") and ".." not in parts and not Path(name).is_absolute()


def loader_files(workflow: dict):
    """(node id, node, input name, ComfyUI folders, what it is, file name) of every loader input of
    the workflow that names a file (MODEL_INPUTS)."""
    for node_id, node in workflow.items():
        spec = MODEL_INPUTS.get(node.get("class_type"))
        if spec is None:
            continue
        input_name, folders, what = spec
        name = node.get("inputs", {}).get(input_name)
        if isinstance(name, str):
            yield node_id, node, input_name, folders, what, name


def unsafe_file_names(workflow: dict) -> list[str]:
    """One line per loader input naming a file outside its ComfyUI folder (absolute path or '..')."""
    lines = []
    for node_id, node, input_name, folders, what, name in loader_files(workflow):
        if not safe_relative_name(name):
            lines.append(f"node {node_id} {node['class_type']}.{input_name} = {name!r}: a {what} must be a file "
                         f"name inside {folders[0]} (no absolute path, no '..'). Fix: put the file in "
                         f"ComfyUI/{folders[0]} and give its name relative to that folder")
    return lines


def missing_files(workflow: dict, comfy_dir: Path) -> list[tuple[str, str, dict]]:
    """(node id, file name, node) of every model (or input image) file the workflow loads that is not in
    its ComfyUI folder (only names inside the folder are looked up: see unsafe_file_names)."""
    missing = []
    for node_id, node, _, folders, _, name in loader_files(workflow):
        if not safe_relative_name(name) or not any((comfy_dir / folder / name).is_file() for folder in folders):
            missing.append((node_id, name, node))
    return missing


def missing_models(workflow: dict, comfy_dir: Path) -> list[str]:
    """One line per missing file: its name, what it is, the node and the folder it belongs in."""
    lines = []
    for node_id, name, node in missing_files(workflow, comfy_dir):
        _, folders, what = MODEL_INPUTS[node["class_type"]]
        model = MODEL_FILES.get(name)
        known = f", {model.size_text}: --download fetches it, or download {model.url}" if model else ""
        lines.append(f"{name} ({what}, node {node_id} {node['class_type']}): put it in {comfy_dir / folders[0]}{known}")
    return lines


def download_missing(workflow: dict, comfy_dir: Path) -> None:
    """Fetch every missing model file the table in model_files.py knows, into its ComfyUI folder."""
    import hub_download

    for _, name, _ in missing_files(workflow, comfy_dir):
        model = MODEL_FILES.get(name)
        if model is None or (comfy_dir / "models" / model.directory / name).is_file():
            continue
        pin = "pinned SHA-256" if model.sha256 else "no pinned SHA-256: needs the Hub's X-Linked-Etag"
        print(f"downloading {name} from {model.repo} into {comfy_dir / 'models' / model.directory} ({pin})")
        hub_download.download(model.repo, model.path, comfy_dir / "models" / model.directory / name,
                              sha256=model.sha256)


def workflow_path(given: Path) -> Path:
    """A path as given, or the name of one of the pack's API workflows (story_pmwd_30s)."""
    if given.is_file():
        return given
    named = API_DIR / f"{given.name.removesuffix('.api.json')}.api.json"
    if named.is_file():
        return named
    raise SystemExit(f"error: no workflow {given} (give a path or one of: "
                     f"{', '.join(sorted(p.name[:-9] for p in API_DIR.glob('*.api.json')))})")


def apply_overrides(workflow: dict, overrides: list[str]) -> None:
    """--set NODE_ID.INPUT=VALUE (VALUE parsed as JSON when it parses, else kept as text)."""
    for item in overrides:
        key, _, raw = item.partition("=")
        node_id, _, input_name = key.partition(".")
        if node_id not in workflow or not input_name or not raw:
            raise SystemExit(f"--set {item!r}: expected NODE_ID.INPUT=VALUE with a node id of the workflow")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        workflow[node_id]["inputs"][input_name] = value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, payload: dict | None = None, timeout: float = 30.0):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode())


# ComfyUI's own database. 0.33: an assets SQLite file in the checkout,
# sqlite:///<checkout>/user/comfyui.db, locked for the server's lifetime (filelock, no wait): a second
# server on the checkout logs "Could not acquire lock", and exits with --enable-assets. Newest releases
# (0.38+): the file lies under the user directory, the lock waits 5 s, and a second server exits with
# ASSETS_STARTUP_FAILED: in_use. 0.3.64 opens the same file without a lock and uses it for nothing.
# Our servers are headless and keep no user state, so they run on a private in-memory database, which
# every version accepts (0.3.64: --database-url exists, the migrations run on an empty memory
# database; 0.33+: created directly, no lock) and which never meets another server's lock.
IN_MEMORY_DATABASE = "sqlite:///:memory:"


class ComfyServer:
    """A ComfyUI server process on 127.0.0.1, stopped by its own PID.

    It runs beside any other ComfyUI on the same checkout: its own free port, and its own in-memory
    database (`database_url`; None keeps ComfyUI's default file, shared with every server of the
    checkout). `extra_args` come last, so they override these."""

    def __init__(self, comfy_dir: Path, python: str, cpu: bool, extra_args: list[str] | None = None,
                 log_path: Path | None = None, database_url: str | None = IN_MEMORY_DATABASE):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [python, "main.py", "--listen", "127.0.0.1", "--port", str(self.port), "--disable-auto-launch"]
        if database_url is not None:
            args += ["--database-url", database_url]
        if cpu:
            args.append("--cpu")
        self.log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"comfyui-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(args + (extra_args or []), cwd=comfy_dir, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.process.returncode}; see {self.log_path}")
            try:
                http_json(self.url + "/system_stats", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not answer within {timeout:.0f} s; see {self.log_path}")

    def run(self, workflow: dict, timeout: float) -> dict:
        try:
            queued = http_json(self.url + "/prompt", {"prompt": workflow})
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"ComfyUI refused the workflow: {err.read().decode()}") from None
        prompt_id = queued["prompt_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = http_json(f"{self.url}/history/{prompt_id}").get(prompt_id)
            if history and history.get("status", {}).get("completed") is not None:
                return history
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited while running; see {self.log_path}")
            time.sleep(0.5)
        raise TimeoutError(f"the workflow did not finish within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def output_files(history: dict, comfy_dir: Path) -> list[Path]:
    files = []
    for node_output in history.get("outputs", {}).values():
        for items in node_output.values():
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and "filename" in item:
                    kind = item.get("type", "output")
                    files.append(comfy_dir / kind / item.get("subfolder", "") / item["filename"])
    return files


# -- --smoke: the install check on tiny stand-in weights ------------------------------------------------

SMOKE_WORKFLOW = "story_pmwd_30s"
SMOKE_SIZE = 32      # pixels, width and height (the frame count stays: the story's keys need it)
SMOKE_STEPS = 2
SMOKE_LOADERS = {"UNETLoader": "unet", "CLIPLoader": "text_encoder", "VAELoader": "vae"}
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov")


def smoke_overrides(workflow: dict) -> list[str]:
    """--set items that make `workflow` small: every latent video SMOKE_SIZE pixels square, every
    scheduler SMOKE_STEPS steps (given first, so the user's own --set items win)."""
    items = []
    for node_id, node in workflow.items():
        inputs = node.get("inputs", {})
        if "width" in inputs and "height" in inputs and "length" in inputs:
            items += [f"{node_id}.width={SMOKE_SIZE}", f"{node_id}.height={SMOKE_SIZE}"]
        if node.get("class_type") == "BasicScheduler":
            items.append(f"{node_id}.steps={SMOKE_STEPS}")
    return items


def stand_in_names(workflow: dict) -> list[str]:
    """tools/tiny_weights.py options naming the files the workflow's loaders load (--unet NAME ...)."""
    options = []
    for node in workflow.values():
        kind = SMOKE_LOADERS.get(node.get("class_type"))
        name = node.get("inputs", {}).get(MODEL_INPUTS[node["class_type"]][0]) if kind else None
        if isinstance(name, str):
            options += [f"--{kind.replace('_', '-')}", name]
    return options


def write_stand_ins(workflow: dict, folder: Path, python: str, comfy_dir: Path) -> None:
    """Write tiny random model files under the workflow's file names into folder/<kind> (a process of
    ComfyUI's Python, which has torch; this script needs only the standard library)."""
    command = [python, str(Path(__file__).with_name("tiny_weights.py")), str(folder), *stand_in_names(workflow)]
    done = subprocess.run(command, env={**os.environ, "COMFYUI_PATH": str(comfy_dir)}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"could not write the tiny stand-in model files with {python} (Fix: give the Python "
                           f"that runs ComfyUI, --python /path/to/its/python):\n{done.stderr[-3000:]}")


def smoke_custom_nodes(comfy_dir: Path, folder: Path) -> Path:
    """A custom_nodes folder for the smoke server: the module that makes the stock loaders read the tiny
    files, and this pack unless the checkout has it already (one copy loads, not two)."""
    nodes = folder / "custom_nodes"
    nodes.mkdir(parents=True, exist_ok=True)
    (nodes / "framelevel_tiny_loaders.py").symlink_to(Path(__file__).with_name("tiny_loader_nodes.py"))
    installed = comfy_dir / "custom_nodes" / PACK_NAME
    if not (installed.is_symlink() or installed.exists()):
        (nodes / PACK_NAME).symlink_to(PACK_ROOT, target_is_directory=True)
    return nodes


def smoke_paths_config(folder: Path, custom_nodes: Path) -> Path:
    """An extra model paths config putting the temporary folders first (is_default), so a real model
    file of the same name in the checkout is not the one loaded."""
    lines = ["framelevel_smoke:", "  is_default: true", f"  custom_nodes: {custom_nodes}"]
    lines += [f"  {kind}: {folder / 'models' / kind}" for kind in ("diffusion_models", "text_encoders", "vae")]
    config = folder / "extra_model_paths.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def smoke_server(comfy_dir: Path, python: str, folder: Path, config: Path) -> ComfyServer:
    """A CPU server of the checkout whose outputs, temporary files and user data stay in `folder`."""
    for name in ("output", "temp", "user"):
        (folder / name).mkdir(exist_ok=True)
    return ComfyServer(comfy_dir, python, cpu=True, log_path=folder / "comfyui.log", extra_args=[
        "--extra-model-paths-config", str(config), "--output-directory", str(folder / "output"),
        "--temp-directory", str(folder / "temp"), "--user-directory", str(folder / "user")])


def smoke_videos(history: dict, folder: Path) -> list[Path]:
    """The non-empty video files the smoke run wrote."""
    return [path for path in output_files(history, folder) if path.suffix in VIDEO_SUFFIXES
            and path.is_file() and path.stat().st_size > 0]


def run_smoke(args, comfy_dir: Path, workflow: dict) -> int:
    """The install check: `workflow` (made small) on tiny stand-in weights in a temporary server."""
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="framelevel-smoke-"))
    print(f"smoke test: tiny random stand-in model files in {folder} (nothing goes into {comfy_dir})")
    try:
        write_stand_ins(workflow, folder / "models", args.python, comfy_dir)
        config = smoke_paths_config(folder, smoke_custom_nodes(comfy_dir, folder))
        with smoke_server(comfy_dir, args.python, folder, config) as server:
            server.wait_ready()
            history = server.run(workflow, args.timeout)
    except (RuntimeError, TimeoutError, OSError) as err:
        print(f"error: smoke test failed: {err}. ComfyUI's log: {folder / 'comfyui.log'}", file=sys.stderr)
        return 1
    status = history.get("status", {})
    if status.get("status_str") != "success":
        print(f"error: smoke test failed: the workflow failed: {json.dumps(status.get('messages', []))[:4000]}\n"
              f"ComfyUI's log: {folder / 'comfyui.log'}", file=sys.stderr)
        return 1
    videos = smoke_videos(history, folder)
    if not videos:
        print(f"error: smoke test failed: the workflow ran but wrote no video file; see {folder / 'comfyui.log'}",
              file=sys.stderr)
        return 1
    print(f"smoke test passed in {time.monotonic() - started:.0f} s: the pack loaded, the graph validated, every node "
          "ran and the video file was written.")
    print("The video is noise: the model files were tiny random stand-ins, not Wan weights. For a real video run "
          "the workflow with the model files (--download fetches them).")
    for video in videos:
        print(f"video: {video}")
    print(f"(the stand-in files, the log and the video are in {folder}; delete it when done)")
    return 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow", type=Path, nargs="?",
                        help="API-format workflow: a path, or a name of workflows/api/ such as story_pmwd_30s "
                             f"(with --smoke: default {SMOKE_WORKFLOW})")
    parser.add_argument("--comfyui", type=Path, default=os.environ.get("COMFYUI_PATH"),
                        help="ComfyUI checkout (default: $COMFYUI_PATH)")
    parser.add_argument("--python", default=sys.executable, help="Python that runs ComfyUI")
    parser.add_argument("--cpu", action="store_true", help="run ComfyUI with --cpu (no GPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.INPUT=VALUE",
                        help="override an input, e.g. --set 9.steps=4 (repeatable)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds to wait for the result")
    parser.add_argument("--check-only", action="store_true", help="only link the pack and check model files")
    parser.add_argument("--download", action="store_true",
                        help="download missing model files from Hugging Face first (needs huggingface_hub; "
                             "resumes a broken download, checks the published SHA-256; HF_ENDPOINT is honoured)")
    parser.add_argument("--smoke", action="store_true",
                        help="install check without weights: run the workflow small, on CPU, on tiny random "
                             "stand-in model files in a temporary folder; the video is noise")
    args = parser.parse_args(argv)
    if args.workflow is None and not args.smoke:
        parser.error("give a workflow (a path, or a name of workflows/api/), or --smoke")
    if args.smoke and (args.download or args.check_only):
        parser.error("--smoke uses tiny stand-in model files: leave out --download and --check-only")
    if args.comfyui is None:
        parser.error("give --comfyui PATH or set COMFYUI_PATH to a ComfyUI checkout")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    comfy_dir = args.comfyui.expanduser().resolve()
    if not (comfy_dir / "main.py").is_file():
        print(f"error: {comfy_dir} is not a ComfyUI checkout (no main.py)", file=sys.stderr)
        return 2
    path = workflow_path(args.workflow or Path(SMOKE_WORKFLOW))
    try:
        workflow = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        print(f"error: workflow {path} is not JSON ({err}). Fix: give an API-format workflow file", file=sys.stderr)
        return 2
    problem = format_problem(workflow)   # checked before anything is linked or downloaded
    if problem is not None:
        print(f"error: workflow {path} {problem}", file=sys.stderr)
        return 2
    apply_overrides(workflow, (smoke_overrides(workflow) if args.smoke else []) + args.overrides)
    unsafe = unsafe_file_names(workflow)
    if unsafe:
        print(f"error: workflow {path} names files outside ComfyUI's model folders; nothing was done:",
              file=sys.stderr)
        for line in unsafe:
            print(f"  - {line}", file=sys.stderr)
        return 2
    if args.smoke:
        return run_smoke(args, comfy_dir, workflow)
    link_pack(comfy_dir)
    if args.download:
        try:
            download_missing(workflow, comfy_dir)
        except KeyboardInterrupt:
            print("\nerror: download interrupted. Fix: run the same command again: it resumes where it stopped "
                  "(the partial file stays beside the target as NAME.<hash>.part)", file=sys.stderr)
            return 130
        except Exception as err:  # noqa: BLE001  (ChecksumError, DownloadError: a line or two naming the fix)
            print(f"error: download failed: {err}", file=sys.stderr)
            return 1
    missing = missing_models(workflow, comfy_dir)
    if missing:
        print("error: model files missing; download them into these folders and run again:", file=sys.stderr)
        for line in missing:
            print(f"  - {line}", file=sys.stderr)
        return 2
    if args.check_only:
        print("all model files present")
        return 0
    with ComfyServer(comfy_dir, args.python, args.cpu) as server:
        server.wait_ready()
        history = server.run(workflow, args.timeout)
    status = history.get("status", {})
    if status.get("status_str") != "success":
        print(f"error: the workflow failed: {json.dumps(status.get('messages', []))[:4000]}", file=sys.stderr)
        return 1
    for path in output_files(history, comfy_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
