"""comfyui-framelevel: frame-level prompts, Diffusion Forcing and long multi-scene video for Wan.

ComfyUI imports this folder as a package. Importing it only builds the node tables: no model code,
no kernels, no trainer and no `comfy` module is imported until a node runs. Inside a running ComfyUI
it also serves the frontend extension in web/ (the story timeline) and adds that timeline's route.
"""

import sys

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

if getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None) is not None:
    from .nodes.server_routes import register_routes  # ComfyUI's server is up: add the timeline route

    register_routes()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
