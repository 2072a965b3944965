"""The one error type of story parsing."""

from __future__ import annotations


class PromptScheduleError(ValueError):
    """Malformed prompt text, with the place, the value and the fix in the message."""
