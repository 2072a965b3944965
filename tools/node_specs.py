"""A node's inputs as the ComfyUI frontend lays them out, read from its /object_info entry: which are
widgets, in which order their values are saved (`widgets_values`), and under which names the API
prompt holds them. build_ui.py (UI <-> API) and ui_place.py (node heights) both read inputs here, so
a difference between ComfyUI versions in how inputs are declared is handled in this one module.
Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}

# ComfyUI 0.33.0 brought the V3 DynamicCombo (comfy_api io.DynamicCombo; SaveVideo's `codec` became
# one then, and its `format` in later releases): a combo whose chosen option brings inputs of its own,
# declared in the spec as {"options": [{"key": ..., "inputs": {"required": {...}, "optional": {...}}}]}.
# The frontend draws it as a combo widget with the chosen option's inputs right after it, named
# "<combo>.<input>" (nested the same way), saves their widget values in that order, and the API prompt
# holds them under those dotted names. With an option that brings no inputs (SaveVideo's codec
# "auto") it saves and queues exactly what the plain combo of earlier ComfyUIs did.
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"


def options(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def is_widget(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES or spec[0] == DYNAMIC_COMBO


def has_seed_control(name: str, spec: list) -> bool:
    """An INT the frontend follows with its "control after generate" widget (saved as one more value)."""
    return spec[0] == "INT" and bool(options(spec).get("control_after_generate") or name.rsplit(".", 1)[-1]
                                     in SEED_NAMES)


def default(spec: list):
    """The value the frontend gives a widget the workflow holds none for (a combo's first option)."""
    opts = options(spec)
    if "default" in opts:
        return opts["default"]
    if spec[0] == DYNAMIC_COMBO:
        return opts["options"][0]["key"] if opts.get("options") else None
    if isinstance(spec[0], list):
        return spec[0][0] if spec[0] else None
    if spec[0] == "COMBO" and opts.get("options"):
        return opts["options"][0]
    return None


def _chosen_inputs(spec: list, value) -> dict:
    for option in options(spec).get("options", []):
        if option["key"] == value:
            return option.get("inputs", {})
    return {}


def walk(node_info: dict, value_of: Callable[[str], object]) -> Iterator[tuple[str, list, bool]]:
    """(name, spec, optional) of every input in the frontend's order: required, then optional (each in
    input_order), a DynamicCombo's chosen option's inputs right after it. `value_of(name)` is the
    combo's value (None: its default); it is asked only once everything before it was yielded, so a
    caller may fill values in as it goes."""
    order = node_info.get("input_order", {})
    inputs = node_info["input"]
    for section in ("required", "optional"):
        for name in order.get(section, list(inputs.get(section, {}))):
            yield from _walk_input(name, inputs[section][name], section == "optional", value_of)


def _walk_input(name: str, spec: list, optional: bool, value_of) -> Iterator[tuple[str, list, bool]]:
    yield name, spec, optional
    if spec[0] != DYNAMIC_COMBO:
        return
    value = value_of(name)
    nested = _chosen_inputs(spec, default(spec) if value is None else value)
    for section in ("required", "optional"):
        for key, sub in nested.get(section, {}).items():
            yield from _walk_input(f"{name}.{key}", sub, optional or section == "optional", value_of)


def input_specs(node_info: dict, values: dict | None = None) -> list[tuple[str, list]]:
    """(name, spec) of every input in the frontend's order (walk) for a node whose inputs are `values`
    (an API prompt's inputs; None or a missing combo: its default option)."""
    values = values or {}
    return [(name, spec) for name, spec, _ in walk(node_info, values.get)]
