"""Node tables of the pack. Each family module holds thin V1 node classes; none imports comfy at
import time (the ComfyUI glue, `comfy_adapter` and `comfy_experts`, is imported when a node runs)."""

from . import df_nodes, expert_nodes, long_video_nodes, prompt_nodes, story_nodes

_FAMILIES = (prompt_nodes, df_nodes, long_video_nodes, expert_nodes, story_nodes)

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _family in _FAMILIES:
    NODE_CLASS_MAPPINGS.update(_family.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_family.NODE_DISPLAY_NAME_MAPPINGS)
