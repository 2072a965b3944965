"""Only the ComfyUI glue modules import comfy; the core, the node tables and model_calls stay pure."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GLUE = {"nodes/comfy_adapter.py", "nodes/comfy_experts.py", "nodes/comfy_headless.py"}


def imports_comfy(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        if any(name == "comfy" or name.startswith(("comfy.", "comfy_extras")) for name in names):
            return True
    return False


def test_only_the_glue_imports_comfy():
    """The trainer and the kernels run without ComfyUI; in nodes/ only the glue modules touch it."""
    packs = [ROOT / name for name in ("nodes", "kernels", "training")]
    importers = {str(p.relative_to(ROOT)) for pack in packs for p in pack.rglob("*.py") if imports_comfy(p)}
    assert importers == GLUE
