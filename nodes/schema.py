"""Node declarations in the shape of ComfyUI's V3 schema, without importing ComfyUI.

Every node of the pack is a subclass of :class:`Node` with a :class:`Schema` (node id, display
name, category, description, typed inputs and outputs, each with a tooltip) and a classmethod
``execute(**inputs) -> tuple``. `nodes/comfy_nodes.py` turns each one into a ComfyUI V3 node
(``io.ComfyNode`` of the versioned ``comfy_api``) when ComfyUI loads the pack, so importing the
pack, testing every node's contract and calling ``execute`` need no ComfyUI.

Inputs mirror ``io.Int.Input``, ``io.Float.Input``, ``io.String.Input``, ``io.Boolean.Input``,
``io.Combo.Input`` and socket inputs (``io.Model.Input`` ...) one to one; their order is the order
the frontend shows and stores widget values in, so it never changes for a released node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from .validation import FrameLevelInputError

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
_NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Input:
    """One input: a widget (INT, FLOAT, STRING, BOOLEAN, COMBO) or a socket of ``io_type``."""

    id: str
    io_type: str
    tooltip: str
    default: Any = None
    optional: bool = False
    choices: tuple[str, ...] = ()                 # COMBO only
    options: Mapping[str, Any] = field(default_factory=lambda: _NO_OPTIONS)  # min, max, step, multiline, ...

    @property
    def is_widget(self) -> bool:
        return self.io_type in WIDGET_TYPES

    def v1_spec(self) -> tuple:
        """The V1 ``INPUT_TYPES`` entry ComfyUI's /object_info shows for this input."""
        extra = {"tooltip": self.tooltip, **self.options}
        if self.default is not None:
            extra["default"] = self.default
        kind = list(self.choices) if self.io_type == "COMBO" else self.io_type
        return (kind, extra)


def Int(id: str, default: int, *, min: int, max: int, tooltip: str, step: int | None = None,
        control_after_generate: bool | None = None, optional: bool = False) -> Input:
    options = {"min": min, "max": max, "step": step, "control_after_generate": control_after_generate}
    return Input(id, "INT", tooltip, default, optional, options=_pruned(options))


def Float(id: str, default: float, *, min: float, max: float, tooltip: str, step: float | None = None,
          round: float | None = None, optional: bool = False) -> Input:
    options = {"min": min, "max": max, "step": step, "round": round}
    return Input(id, "FLOAT", tooltip, default, optional, options=_pruned(options))


def String(id: str, default: str, *, tooltip: str, multiline: bool = False, optional: bool = False) -> Input:
    return Input(id, "STRING", tooltip, default, optional, options=_pruned({"multiline": multiline or None}))


def Boolean(id: str, default: bool, *, tooltip: str, optional: bool = False) -> Input:
    return Input(id, "BOOLEAN", tooltip, default, optional)


def Combo(id: str, choices, default: str, *, tooltip: str, optional: bool = False) -> Input:
    choices = tuple(choices)
    if default not in choices:
        raise ValueError(f"{id}: default {default!r} is not one of {choices}")
    return Input(id, "COMBO", tooltip, default, optional, choices=choices)


def Socket(io_type: str, id: str, *, tooltip: str, optional: bool = False) -> Input:
    if io_type in WIDGET_TYPES:
        raise ValueError(f"{id}: {io_type} is a widget type; use Int/Float/String/Boolean/Combo")
    return Input(id, io_type, tooltip, optional=optional)


@dataclass(frozen=True)
class Output:
    io_type: str
    name: str
    tooltip: str


@dataclass(frozen=True)
class Schema:
    node_id: str
    display_name: str
    category: str
    description: str
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    is_output_node: bool = False
    search_aliases: tuple[str, ...] = field(default=())

    def __post_init__(self):
        ids = [i.id for i in self.inputs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self.node_id}: input ids repeat: {ids}")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))

    def input(self, input_id: str) -> Input:
        for spec in self.inputs:
            if spec.id == input_id:
                return spec
        raise KeyError(f"{self.node_id} has no input {input_id!r}")

    def v1_input_types(self) -> dict:
        """``{"required": {...}, "optional": {...}}`` as ComfyUI's /object_info lists the inputs."""
        sections: dict[str, dict] = {"required": {}}
        for spec in self.inputs:
            sections.setdefault("optional" if spec.optional else "required", {})[spec.id] = spec.v1_spec()
        return sections


class Node:
    """Base of every node: a ``SCHEMA`` and ``execute(**inputs) -> tuple`` of the outputs.

    A node whose declaration depends on the running ComfyUI (e.g. the scheduler names) overrides
    :meth:`schema` instead; it is called when ComfyUI asks for the node's definition. Optional hook,
    with the meaning of its V3 namesake: ``fingerprint_inputs(**inputs)`` (V1's IS_CHANGED).

    ``validate_inputs`` (V3's hook, run by ComfyUI when a prompt is queued, before any node runs)
    checks every widget value against its declaration and then the node's own rules over widget
    values (:meth:`check_widgets`), so a bad setting is refused with the message before a model
    loads. ComfyUI skips its own combo and range checks for a node whose hook takes ``**inputs``
    (0.3.64 and 0.33), so the declaration is checked here."""

    SCHEMA: ClassVar[Schema]

    @classmethod
    def schema(cls) -> Schema:
        return cls.SCHEMA

    @classmethod
    def execute(cls, **inputs) -> tuple:
        raise NotImplementedError

    @classmethod
    def check_widgets(cls, **widgets) -> None:
        """The node's rules that depend on widget values only (linked inputs are absent); raise the
        pack's ValueError (FrameLevelInputError, PromptScheduleError) naming input, value and fix."""

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        """True, or the message ComfyUI shows under the node (node_errors) before anything runs."""
        schema = cls.schema()
        widgets = {spec.id: inputs[spec.id] for spec in schema.inputs
                   if spec.is_widget and inputs.get(spec.id) is not None}
        try:
            for spec in schema.inputs:
                if spec.id in widgets:
                    check_widget_value(spec, widgets[spec.id])
            cls.check_widgets(**widgets)
        except ValueError as error:
            return str(error)
        return True


MAX_STRING_CHARS = 200_000   # a widget's text: 40,000 words of story, far past any real one; read at queue time


def check_widget_value(spec: Input, value) -> None:
    """`value` fits `spec`'s declaration (choice, type, range, finite), else the pack's
    FrameLevelInputError naming the input, the value and the fix."""
    def refuse(problem: str, fix: str):
        raise FrameLevelInputError(spec.id, value, problem, fix)
    if spec.io_type == "COMBO":
        if value not in spec.choices:
            refuse("is not one of this input's choices", f"choose one of {', '.join(map(str, spec.choices))}")
    elif spec.io_type == "BOOLEAN":
        if not isinstance(value, bool):
            refuse("is not true or false", "set the switch")
    elif spec.io_type == "STRING":
        if not isinstance(value, str):
            refuse("is not text", "type text into the box")
        elif len(value) > MAX_STRING_CHARS:
            refuse(f"is longer than {MAX_STRING_CHARS} characters", "shorten it")
    elif spec.io_type in ("INT", "FLOAT"):
        whole = spec.io_type == "INT"
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            refuse(f"is not {'a whole number' if whole else 'a number'}", "type a number")
        if not whole and not math.isfinite(value):
            refuse("is not a finite number", "type a finite number")
        low, high = spec.options.get("min"), spec.options.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            refuse(f"is outside {low}..{high}", f"use a value between {low} and {high}")


def _pruned(options: dict) -> Mapping[str, Any]:
    return MappingProxyType({k: v for k, v in options.items() if v is not None})
