"""comfyui-framelevel: frame-level prompts, Diffusion Forcing and long multi-scene video for Wan.

ComfyUI imports this folder as a package. Importing it only builds the node tables: no model code,
no kernels, no trainer and no `comfy` module is imported until a node runs.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
