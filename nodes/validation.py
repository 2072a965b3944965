"""Errors that fail before sampling, naming the input, the value and the fix."""

from __future__ import annotations


class FrameLevelInputError(ValueError):
    """A node input (or a combination of inputs) that cannot work; raised before any model call."""

    def __init__(self, input_name: str, value, problem: str, fix: str):
        self.input_name, self.value, self.problem, self.fix = input_name, value, problem, fix
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"{input_name} = {shown}: {problem}. Fix: {fix}")


def require(condition: bool, input_name: str, value, problem: str, fix: str) -> None:
    """Raise FrameLevelInputError unless `condition` holds."""
    if not condition:
        raise FrameLevelInputError(input_name, value, problem, fix)
