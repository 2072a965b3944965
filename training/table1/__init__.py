"""The paper's Table 1 in miniature: a synthetic latent-space multi-scene domain, two tiny Wan runs
through the trainer's CLI, long sampling in ComfyUI by PMWD / sliding window / FIFO, and the metrics.
Run: python training/table1/run.py --help (see docs/table1.md)."""
