"""Standalone trainer for frame-level captions and Diffusion Forcing on Wan 2.1 (no `comfy` import).

Nothing heavy is imported here; import the submodules you need (`training.wan.model`, ...).
"""
