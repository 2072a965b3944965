"""The pack's nodes. Each family module declares thin node classes (nodes/schema.py: V3-shaped
schemas, no ComfyUI import); ComfyUI receives them as V3 nodes through `comfy_nodes` when it calls
the pack's `comfy_entrypoint`. The ComfyUI glue (`comfy_adapter`, `comfy_experts`) is imported when
a node runs."""

from . import df_nodes, expert_nodes, long_video_nodes, prompt_nodes, story_nodes

NODES = (*prompt_nodes.NODES, *df_nodes.NODES, *long_video_nodes.NODES, *expert_nodes.NODES, *story_nodes.NODES)
NODES_BY_ID = {node.schema().node_id: node for node in NODES}
