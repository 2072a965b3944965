"""The pack's nodes as ComfyUI V3 nodes, through the versioned ``comfy_api.v0_0_2``.

The one module that imports ``comfy_api`` (as `comfy_adapter` is the one that imports ``comfy``).
It is imported only when ComfyUI calls the pack's ``comfy_entrypoint``: each :class:`.schema.Node`
becomes an ``io.ComfyNode`` whose ``define_schema`` maps the declaration one to one and whose
``execute`` returns the node's outputs as an ``io.NodeOutput``. ``v0_0_2`` is the newest versioned
API in ComfyUI 0.3.64; pinning it (rather than ``latest``) keeps the pack's contract stable when
ComfyUI moves ``latest`` on.
"""

from __future__ import annotations

from comfy_api.v0_0_2 import ComfyExtension, io

from .schema import Input, Node, Output

_WIDGETS = {"INT": io.Int, "FLOAT": io.Float, "STRING": io.String, "BOOLEAN": io.Boolean, "COMBO": io.Combo}
_SOCKETS = {
    "MODEL": io.Model, "CONDITIONING": io.Conditioning, "LATENT": io.Latent, "SAMPLER": io.Sampler,
    "SIGMAS": io.Sigmas, "GUIDER": io.Guider, "NOISE": io.Noise, "IMAGE": io.Image, "MASK": io.Mask,
    "VAE": io.Vae, "CLIP": io.Clip, "CLIP_VISION": io.ClipVision, "CLIP_VISION_OUTPUT": io.ClipVisionOutput,
}


def comfy_type(io_type: str):
    """ComfyUI's type class for an io type (outputs may be INT, STRING, ...); our own socket types
    become ``io.Custom``."""
    return _SOCKETS.get(io_type) or _WIDGETS.get(io_type) or io.Custom(io_type)


def v3_input(spec: Input):
    common = dict(optional=spec.optional, tooltip=spec.tooltip)
    if spec.io_type == "COMBO":
        return io.Combo.Input(spec.id, options=list(spec.choices), default=spec.default, **common)
    if spec.is_widget:
        return _WIDGETS[spec.io_type].Input(spec.id, default=spec.default, **common, **spec.options)
    return comfy_type(spec.io_type).Input(spec.id, **common)


def v3_output(spec: Output):
    return comfy_type(spec.io_type).Output(display_name=spec.name, tooltip=spec.tooltip)


def v3_schema(node: type[Node]):
    schema = node.schema()
    return io.Schema(node_id=schema.node_id, display_name=schema.display_name, category=schema.category,
                     description=schema.description, inputs=[v3_input(i) for i in schema.inputs],
                     outputs=[v3_output(o) for o in schema.outputs], is_output_node=schema.is_output_node)


def v3_node(node: type[Node]) -> type:
    """An ``io.ComfyNode`` subclass that declares ``node.SCHEMA`` and runs ``node.execute``."""
    def define_schema(cls):
        return v3_schema(node)

    def execute(cls, **inputs):
        return io.NodeOutput(*node.execute(**inputs))

    body = {"define_schema": classmethod(define_schema), "execute": classmethod(execute),
            "__doc__": node.__doc__, "__module__": node.__module__}
    for hook in ("fingerprint_inputs", "validate_inputs"):   # every node has validate_inputs (schema.Node)
        if hasattr(node, hook):
            body[hook] = classmethod(lambda cls, _hook=getattr(node, hook), **inputs: _hook(**inputs))
    return type(node.__name__, (io.ComfyNode,), body)


class FrameLevelExtension(ComfyExtension):
    """What ComfyUI receives from the pack's ``comfy_entrypoint``."""

    def __init__(self, nodes: list[type[Node]]):
        self.nodes = nodes

    async def get_node_list(self) -> list[type]:
        return [v3_node(node) for node in self.nodes]
