"""Entry point of ``python -m comfyui_framelevel.training.annotate``."""

from .cli import main

raise SystemExit(main())
