"""Wan 2.1 DiT with the original parameter names, per-frame timesteps and frame-level cross-attention.

The state dict keys equal those of Wan-AI checkpoints and ComfyUI's `WanModel`
(patch_embedding, text_embedding.0/.2, time_embedding.0/.2, time_projection.1,
blocks.N.{self_attn,cross_attn}.{q,k,v,o,norm_q,norm_k}, blocks.N.norm3, blocks.N.ffn.0/.2,
blocks.N.modulation, head.head, head.modulation; I2V adds img_emb and cross_attn.{k_img,v_img,norm_k_img}),
so weights move between the trainer and ComfyUI's UNETLoader unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...kernels import PackedPrompts  # noqa: TID252 - package-relative by design
from ...kernels.processor import image_attention, routed_cross_attention  # noqa: TID252
from .config import CLIP_DIM, WanConfig, strip_prefix
from .layers import apply_rope, gated_residual, modulate, rope_table, sinusoidal_embedding


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Plain multi-head attention over [B, L, heads*head_dim] tensors (no mask)."""
    split = [t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v)]
    return F.scaled_dot_product_attention(*split).transpose(1, 2).flatten(2)


@dataclass
class CrossContext:
    """What cross-attention reads: global text [B, L, D] or packed per-frame prompts, plus I2V image tokens."""

    text: torch.Tensor | None = None
    packed: PackedPrompts | None = None
    image: torch.Tensor | None = None
    tokens_per_frame: int = 0


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, eps: float, qk_norm: bool = True):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = nn.RMSNorm(dim, eps=eps) if qk_norm else nn.Identity()
        self.norm_k = nn.RMSNorm(dim, eps=eps) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, rope) -> torch.Tensor:
        q = apply_rope(self.norm_q(self.q(x)).unflatten(-1, (self.heads, -1)), rope).flatten(2)
        k = apply_rope(self.norm_k(self.k(x)).unflatten(-1, (self.heads, -1)), rope).flatten(2)
        return self.o(attend(q, k, self.v(x), self.heads))


class CrossAttention(SelfAttention):
    """Text cross-attention (no RoPE); global, or frame-level when the context is packed."""

    def __init__(self, dim: int, heads: int, eps: float, qk_norm: bool = True, image: bool = False):
        super().__init__(dim, heads, eps, qk_norm)
        if image:
            self.k_img = nn.Linear(dim, dim)
            self.v_img = nn.Linear(dim, dim)
            self.norm_k_img = nn.RMSNorm(dim, eps=eps) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, context: CrossContext) -> torch.Tensor:
        attend_heads = partial(attend, heads=self.heads)
        if context.packed is not None:
            return routed_cross_attention(self, x, context.packed, heads=self.heads,
                                          tokens_per_frame=context.tokens_per_frame,
                                          image_tokens=context.image, attend=attend_heads)
        q = self.norm_q(self.q(x))
        out = attend(q, self.norm_k(self.k(context.text)), self.v(context.text), self.heads)
        if context.image is not None:
            out = out + image_attention(self, q, context.image, attend_heads)
        return self.o(out)


class WanBlock(nn.Module):
    """Self-attention (modulated, gated), cross-attention (plain residual), FFN (modulated, gated)."""

    def __init__(self, config: WanConfig):
        super().__init__()
        dim, eps = config.dim, config.eps
        self.norm1 = nn.LayerNorm(dim, eps, elementwise_affine=False)
        self.self_attn = SelfAttention(dim, config.num_heads, eps, config.qk_norm)
        self.norm3 = nn.LayerNorm(dim, eps, elementwise_affine=True) if config.cross_attn_norm else nn.Identity()
        self.cross_attn = CrossAttention(dim, config.num_heads, eps, config.qk_norm,
                                         image=config.model_type == "i2v")
        self.norm2 = nn.LayerNorm(dim, eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, config.ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(config.ffn_dim, dim))
        self.modulation = nn.Parameter(torch.zeros(1, 6, dim))

    def forward(self, x: torch.Tensor, e0: torch.Tensor, rope, context: CrossContext) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation.float()[:, None] + e0).unbind(2)
        x = gated_residual(x, self.self_attn(modulate(self.norm1(x), shift1, scale1), rope), gate1)
        x = x + self.cross_attn(self.norm3(x), context)
        return gated_residual(x, self.ffn(modulate(self.norm2(x), shift2, scale2)), gate2)


class Head(nn.Module):
    def __init__(self, config: WanConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.dim, config.eps, elementwise_affine=False)
        self.head = nn.Linear(config.dim, config.out_dim * math.prod(config.patch_size))
        self.modulation = nn.Parameter(torch.zeros(1, 2, config.dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.modulation.float()[:, None] + e.unsqueeze(2)).unbind(2)
        return self.head(modulate(self.norm(x), shift, scale))


class ImageProjection(nn.Module):
    """I2V: CLIP vision tokens (1280 wide) to model width; keys img_emb.proj.{0,1,3,4}."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(CLIP_DIM), nn.Linear(CLIP_DIM, CLIP_DIM), nn.GELU(),
                                  nn.Linear(CLIP_DIM, dim), nn.LayerNorm(dim))

    def forward(self, clip_tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(clip_tokens)


class WanDiT(nn.Module):
    """Wan 2.1 DiT predicting the flow velocity (noise - x0).

    forward(x [B, in_dim, F, H, W], t [B] or [B, F] in 0..1000, context [B, L, text_dim],
            frame_text: PackedPrompts | None) -> [B, out_dim, F, H, W]
    """

    def __init__(self, config: WanConfig, gradient_checkpointing: bool = False):
        super().__init__()
        self.config = config
        self.gradient_checkpointing = gradient_checkpointing
        dim = config.dim
        self.patch_embedding = nn.Conv3d(config.in_dim, dim, kernel_size=config.patch_size,
                                         stride=config.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(config.text_dim, dim), nn.GELU(approximate="tanh"),
                                            nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(config.freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 6))
        self.blocks = nn.ModuleList(WanBlock(config) for _ in range(config.num_layers))
        self.head = Head(config)
        if config.model_type == "i2v":
            self.img_emb = ImageProjection(dim)

    # ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor | None = None,
                frame_text: PackedPrompts | None = None, clip_fea: torch.Tensor | None = None,
                rope_frame_offset: int = 0) -> torch.Tensor:
        batch, _, frames, height, width = x.shape
        tokens, grid = self._patchify(x)
        rope = rope_table(*grid, self.config.rope_axes, device=x.device, frame_offset=rope_frame_offset)
        e, e0 = self._time_modulation(t, batch, grid[0])
        cross = self._cross_context(context, frame_text, clip_fea, batch, grid)
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, e0, rope, cross, use_reentrant=False)
            else:
                tokens = block(tokens, e0, rope, cross)
        out = self.head(tokens, e)
        return self._unpatchify(out, grid)[:, :, :frames, :height, :width].to(x.dtype)

    def _patchify(self, x: torch.Tensor):
        pad = []
        for size, patch in zip(reversed(x.shape[2:]), reversed(self.config.patch_size), strict=True):
            pad += [0, (patch - size % patch) % patch]
        if any(pad):
            x = F.pad(x, pad, mode="circular")
        weight = self.patch_embedding.weight
        tokens = self.patch_embedding(x.to(weight.dtype)).to(x.dtype)
        grid = tuple(tokens.shape[2:])
        return tokens.flatten(2).transpose(1, 2), grid

    def _unpatchify(self, tokens: torch.Tensor, grid) -> torch.Tensor:
        pt, ph, pw = self.config.patch_size
        f, h, w = grid
        u = tokens.reshape(tokens.shape[0], f, h, w, pt, ph, pw, self.config.out_dim)
        u = u.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return u.reshape(tokens.shape[0], self.config.out_dim, f * pt, h * ph, w * pw)

    def _time_modulation(self, t: torch.Tensor, batch: int, frames: int):
        """e [B, Fe, D] for the head and e0 [B, Fe, 6, D] for the blocks, float32; Fe = 1 or F."""
        t = torch.as_tensor(t, device=self.patch_embedding.weight.device)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.ndim == 1:
            t = t[:, None]
        if t.ndim != 2 or t.shape[0] != batch or t.shape[1] not in (1, frames):
            raise ValueError(f"timesteps must be [batch={batch}] or [batch={batch}, frames={frames}], "
                             f"got {tuple(t.shape)}")
        embedding = sinusoidal_embedding(t.reshape(-1), self.config.freq_dim)
        with torch.autocast(device_type=embedding.device.type, enabled=False):
            weight_dtype = self.time_embedding[0].weight.dtype
            e = self.time_embedding(embedding.to(weight_dtype)).float().reshape(batch, t.shape[1], -1)
            e0 = self.time_projection(e.to(weight_dtype)).float().unflatten(2, (6, self.config.dim))
        return e, e0

    def _cross_context(self, context, frame_text, clip_fea, batch, grid) -> CrossContext:
        tokens_per_frame = grid[1] * grid[2]
        image = self.img_emb(clip_fea) if clip_fea is not None and hasattr(self, "img_emb") else None
        if frame_text is None:
            if context is None:
                raise ValueError("WanDiT.forward needs `context` [B, L, text_dim] or `frame_text`")
            return CrossContext(text=self.text_embedding(context), image=image)
        if frame_text.frame_prompt.shape[1] != grid[0]:
            raise ValueError(f"frame_text routes {frame_text.frame_prompt.shape[1]} latent frames but the "
                             f"latent has {grid[0]}; give one prompt index per latent frame")
        rows = self.text_embedding(frame_text.rows.to(self.text_embedding[0].weight.dtype)
                                   if not torch.is_autocast_enabled() else frame_text.rows)
        packed = frame_text.with_rows(rows).repeat_batch(batch)
        return CrossContext(packed=packed, image=image, tokens_per_frame=tokens_per_frame)

    # ----------------------------------------------------------------------------------------
    @classmethod
    def from_state_dict(cls, state_dict, config: WanConfig | None = None, **kwargs) -> WanDiT:
        """Build from original-named weights (prefixes `model.diffusion_model.`/`diffusion_model.` stripped)."""
        config = config or WanConfig.from_state_dict(state_dict)
        model = cls(config, **kwargs)
        model.load_original_state_dict(state_dict)
        return model

    def load_original_state_dict(self, state_dict, strict: bool = True):
        cleaned = {strip_prefix(k): v for k, v in state_dict.items()}
        cleaned.pop("img_emb.emb_pos", None) if "img_emb.emb_pos" not in self.state_dict() else None
        return self.load_state_dict(cleaned, strict=strict)


@torch.no_grad()
def random_init(model: nn.Module, seed: int = 0, scale: float = 1.0) -> nn.Module:
    """Randomise every parameter (modulation included) so a tiny model gives non-trivial outputs.

    Matrices ~ N(0, 1/fan_in), biases ~ N(0, 0.02), norm weights ~ 1 + N(0, 0.1), modulation ~ N(0, 0.1).
    Deterministic for a seed, independent of device.
    """
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "modulation":
            value = 0.1 * noise
        elif param.ndim >= 2:
            value = noise * (scale / math.sqrt(param[0].numel()))
        elif "norm" in name and leaf == "weight":
            value = 1 + 0.1 * noise
        else:
            value = 0.02 * noise
        param.copy_(value.to(param.dtype))
    return model
