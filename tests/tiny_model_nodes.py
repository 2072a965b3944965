"""Test-only ComfyUI custom node module (one file, linked into a temporary custom_nodes folder by
tests/test_comfyui_workflows_wan22.py): the stock loaders of that test server read tiny Wan files.

ComfyUI 0.3.64 builds umt5-xxl (`CLIPLoader`, 5.7B parameters) and the Wan VAEs (`VAELoader`) from
fixed full-size configs whatever the file holds. Imported into the server, this module makes both
build ComfyUI's own classes at the sizes of the tiny files the test writes under the real names
(`tiny_umt5.install_in_clip_loader`, `tiny_wan_vae.install_in_vae_loader`). It registers no node.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the tests folder (this file is linked)
import tiny_umt5  # noqa: E402
import tiny_wan_vae  # noqa: E402

tiny_umt5.install_in_clip_loader()
tiny_wan_vae.install_in_vae_loader()

NODE_CLASS_MAPPINGS: dict = {}
