"""A ComfyUI custom-node module that registers no node: imported into a server, it makes the stock
CLIPLoader and VAELoader read the tiny stand-in files of tools/tiny_weights.py (ComfyUI builds
umt5-xxl and the Wan VAEs from fixed full-size configs whatever the file holds).

Linked as one file into the custom_nodes folder of a temporary server only (`run_workflow.py --smoke`,
the tests), through an extra model paths config; never into the user's ComfyUI. Every other file
loads as before.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))   # tools/ (this file is linked)
import tiny_weights  # noqa: E402

tiny_weights.install_in_loaders()

NODE_CLASS_MAPPINGS: dict = {}
