"""Position and time encodings of Wan 2.1 and its adaLN modulation, in the precision Wan uses.

- Time: a cos|sin sinusoid of the timestep (0..1000) computed in float32.
- RoPE: each head's channels are split over (frame, height, width); angles are built in float64,
  stored as float32, and rotate adjacent channel pairs in float32.
- Modulation: shift/scale/gate vectors stay float32 and broadcast over the tokens of their frame
  (one vector per latent frame when timesteps are per frame, one per clip otherwise).
"""

from __future__ import annotations

import torch

ROPE_THETA = 10000.0


def sinusoidal_embedding(timesteps: torch.Tensor, channels: int) -> torch.Tensor:
    """[N] timesteps -> [N, channels] float32 embedding, cosines first, then sines."""
    half = channels // 2
    position = timesteps.to(torch.float32)
    exponent = torch.arange(half, dtype=torch.float32, device=position.device).div(half)
    angles = torch.outer(position, torch.pow(10000, -exponent))
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


def _axis_angles(positions: torch.Tensor, channels: int) -> torch.Tensor:
    """[N] integer positions -> [N, channels // 2] rotation angles (float64) for one RoPE axis."""
    scale = torch.linspace(0, (channels - 2) / channels, steps=channels // 2, dtype=torch.float64,
                           device=positions.device)
    inverse_frequency = 1.0 / (ROPE_THETA ** scale)
    return positions.to(torch.float64)[:, None] * inverse_frequency[None, :]


def rope_table(frames: int, height: int, width: int, axes: tuple[int, int, int],
               device=None, frame_offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each [frames*height*width, head_dim // 2] float32, tokens in frame-major order."""
    grids = torch.meshgrid(
        torch.arange(frame_offset, frame_offset + frames, device=device),
        torch.arange(height, device=device),
        torch.arange(width, device=device),
        indexing="ij",
    )
    angles = torch.cat([_axis_angles(grid.reshape(-1), size) for grid, size in zip(grids, axes, strict=True)], dim=1)
    return torch.cos(angles).to(torch.float32), torch.sin(angles).to(torch.float32)


def apply_rope(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate adjacent channel pairs of x [B, L, heads, head_dim] by the table (float32 math)."""
    cos, sin = (table[None, :, None, :] for table in rope)
    pairs = x.to(torch.float32).unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([cos * even - sin * odd, sin * even + cos * odd], dim=-1)
    return rotated.flatten(-2).to(x.dtype)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x * (1 + scale) + shift with [B, Fe, D] vectors broadcast over each frame's tokens (Fe = 1 or F)."""
    framed = x.unflatten(1, (shift.shape[1], -1)).to(torch.float32)
    out = framed * (1 + scale.unsqueeze(2)) + shift.unsqueeze(2)
    return out.flatten(1, 2).to(x.dtype)


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """x + y * gate, gate [B, Fe, D] broadcast per frame, summed in float32 like Wan."""
    framed = y.unflatten(1, (gate.shape[1], -1)).to(torch.float32) * gate.unsqueeze(2)
    return (x.to(torch.float32) + framed.flatten(1, 2)).to(x.dtype)
