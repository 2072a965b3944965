"""Frame-level dataset annotation (paper-style clip sampling, pHash de-duplication, VLM captions
keyed by latent frame, resumable writes) and a metrics command line.

Run: ``python -m comfyui_framelevel.training.annotate {annotate,plan,metrics} --help``.
"""
