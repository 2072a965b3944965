"""Pure algorithms of the pack: plain functions over tensors and a denoiser callable.

Nothing in this package imports ComfyUI; the trainer and the nodes share it.
"""
