"""Story text -> one prompt per latent frame: the pack's single reader of story text.

`nodes/core/prompts.py` is the public entry point (compile_prompt_schedule); this package holds its
parts. Nothing here imports comfy or torch.
"""
