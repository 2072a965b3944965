"""comfyui-framelevel: frame-level prompts, Diffusion Forcing and long multi-scene video for Wan.

ComfyUI imports this folder as a package and calls `comfy_entrypoint`, which hands it the pack's
nodes as V3 nodes (through the versioned `comfy_api.v0_0_2`) and adds the story timeline's route
to the running server. Importing the package itself only builds the node declarations: no model
code, no kernels, no trainer and no `comfy` / `comfy_api` module is imported until ComfyUI asks.
The frontend extension in web/ (the story timeline) is served from WEB_DIRECTORY.

When a second copy of the pack lies in custom_nodes, only the first copy ComfyUI loads is used; the
other logs one line naming both folders and adds nothing (nodes/pack_copies.py).
"""

import os

from .nodes import NODES, NODES_BY_ID
from .nodes.pack_copies import claim

# Settled at import: ComfyUI reads WEB_DIRECTORY right after importing the package.
ACTIVE = claim(__name__, os.path.dirname(os.path.abspath(__file__)))

WEB_DIRECTORY = "./web" if ACTIVE else None


async def comfy_entrypoint():
    """ComfyUI's V3 entry point: the extension listing every node of the pack (none from a copy that
    stepped aside for another copy of the pack)."""
    from .nodes.comfy_nodes import FrameLevelExtension

    if not ACTIVE:
        return FrameLevelExtension([])
    from .nodes.server_routes import register_routes

    register_routes()
    return FrameLevelExtension(list(NODES))


__all__ = ["NODES", "NODES_BY_ID", "WEB_DIRECTORY", "comfy_entrypoint"]
