"""Story tools: an OpenAI-compatible chat client, LLM prompt expansion into frame-level prompts,
tolerant JSON parsing of model replies, and the paper's metrics (Confusion Degree, consistency).

Everything here is plain Python/numpy; torch and transformers are imported only by the optional
embedders in `embedders.py`, and never at import time. Nothing imports comfy.
"""
