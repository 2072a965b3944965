"""Flow-matching objective as Wan trains it, with Diffusion Forcing per-frame noise levels.

Notation: sigma in [0, 1] is the noise level (1 = pure noise), u the pre-shift variable, and
shift(u) = s*u / (1 + (s-1)*u). The model sees x_sigma = (1 - sigma) * x0 + sigma * noise and the
timestep 1000 * sigma, and regresses the velocity noise - x0.

Diffusion Forcing (paper): pick a reference latent frame r and its u_r from the base distribution;
walking forward u_k = min(1, u_{k-1} + d_k), walking backward u_k = max(0, u_{k+1} - d_k), with
d_k ~ U[0, step] - earlier frames cleaner, later noisier, neighbours within `step` in u space.
A configurable share of samples stays synchronous (one sigma per clip). Optionally a clean prefix
(sigma = 0, conditioning frames) is held out of the loss, as are all frames that end at sigma = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nodes.core.sigmas import flow_shift

TIMESTEP_SCALE = 1000.0
_EDGE = 1e-6  # keeps a sampled u strictly inside (0, 1)


@dataclass(frozen=True)
class NoiseConfig:
    """[objective] section of the training TOML."""

    timestep_sampling: str = "logit_normal"  # or "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 2.0  # Wan team's advice for 480p training; larger for 720p
    df_ratio: float = 0.5  # share of samples with Diffusion Forcing per-frame levels; rest synchronous
    df_step: float = 0.1  # largest u gap between neighbouring latent frames (paper's step size)
    clean_prefix_ratio: float = 0.1  # share of DF samples whose first frames are clean conditioning
    max_clean_frames: int = 4  # longest clean prefix, in latent frames
    loss_weighting: str = "none"  # or "bell" (Gaussian bump over the timestep, mean 1)


@dataclass(frozen=True)
class FrameNoise:
    """Per-frame noise levels of a batch: sigma/u [B, F], loss_mask [B, F] bool, is_df [B] bool."""

    sigma: torch.Tensor
    u: torch.Tensor
    loss_mask: torch.Tensor
    is_df: torch.Tensor

    @property
    def timesteps(self) -> torch.Tensor:
        return self.sigma * TIMESTEP_SCALE


def sample_base_u(count: int, config: NoiseConfig, generator: torch.Generator) -> torch.Tensor:
    """[count] values in (0, 1) from the base distribution (before the shift)."""
    if config.timestep_sampling == "logit_normal":
        normal = torch.randn(count, generator=generator, dtype=torch.float64)
        u = torch.sigmoid(config.logit_mean + config.logit_std * normal)
    else:
        u = torch.rand(count, generator=generator, dtype=torch.float64)
    return u.clamp(_EDGE, 1 - _EDGE)


def diffusion_forcing_u(u_ref: float, ref: int, frames: int, step: float,
                        generator: torch.Generator) -> torch.Tensor:
    """[frames] u values walking out of frame `ref` by gaps drawn in [0, step], clamped to [0, 1]."""
    gaps = torch.rand(frames, generator=generator, dtype=torch.float64) * step
    u = torch.empty(frames, dtype=torch.float64)
    u[ref] = u_ref
    for k in range(ref + 1, frames):
        u[k] = min(1.0, float(u[k - 1] + gaps[k]))
    for k in range(ref - 1, -1, -1):
        u[k] = max(0.0, float(u[k + 1] - gaps[k]))
    return u


def _randint(high: int, generator: torch.Generator) -> int:
    return int(torch.randint(high, (1,), generator=generator))


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand(1, generator=generator, dtype=torch.float64))


def sample_item_u(frames: int, config: NoiseConfig, generator: torch.Generator) -> tuple[torch.Tensor, bool, int]:
    """One clip's per-frame u, whether it is a DF sample, and its clean-prefix length."""
    u_ref = float(sample_base_u(1, config, generator))
    if _uniform(generator) >= config.df_ratio:
        return torch.full((frames,), u_ref, dtype=torch.float64), False, 0
    u = diffusion_forcing_u(u_ref, _randint(frames, generator), frames, config.df_step, generator)
    clean = 0
    if frames > 1 and config.max_clean_frames > 0 and _uniform(generator) < config.clean_prefix_ratio:
        clean = 1 + _randint(min(config.max_clean_frames, frames - 1), generator)
    return u, True, clean


def sample_frame_noise(batch: int, frames: int, config: NoiseConfig,
                       generators: list[torch.Generator]) -> FrameNoise:
    """Per-frame noise levels; item i draws only from generators[i] (so sharding never changes a sample)."""
    if len(generators) != batch:
        raise ValueError(f"need one generator per batch item: {batch} items, {len(generators)} generators")
    us, flags, masks, sigmas = [], [], [], []
    for generator in generators:
        u, is_df, clean = sample_item_u(frames, config, generator)
        sigma = flow_shift(u, config.shift)   # the samplers' time shift (nodes/core/sigmas.py)
        sigma[:clean] = 0.0
        us.append(u)
        flags.append(is_df)
        sigmas.append(sigma)
        masks.append(sigma > 0)
    return FrameNoise(sigma=torch.stack(sigmas).float(), u=torch.stack(us).float(),
                      loss_mask=torch.stack(masks), is_df=torch.tensor(flags))


def noisy_input(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_sigma = (1 - sigma) x0 + sigma noise with sigma [B, F] broadcast over [B, C, F, H, W]."""
    s = sigma.to(x0.dtype)[:, None, :, None, None]
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def _raw_bell(t: torch.Tensor) -> torch.Tensor:
    floor = torch.exp(torch.tensor(-0.5, dtype=t.dtype))
    return (torch.exp(-2 * ((t - 500) / 1000) ** 2) - floor) / (1 - floor)


_BELL_MEAN = float(_raw_bell(torch.linspace(0, TIMESTEP_SCALE, 10001, dtype=torch.float64)).mean())


def bell_weight(sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian bump over the timestep (DiffSynth/Self-Forcing style): 0 at t = 0 and 1000, mean 1."""
    return _raw_bell(sigma.float() * TIMESTEP_SCALE) / _BELL_MEAN


def frame_loss(prediction: torch.Tensor, target: torch.Tensor, noise: FrameNoise,
               weighting: str = "none") -> torch.Tensor:
    """Mean over samples of each sample's masked per-frame MSE (clean frames excluded).

    Normalising per sample makes the loss of a global batch equal the mean of its shards' losses,
    so data-parallel runs match a single process exactly.
    """
    per_frame = (prediction.float() - target.float()).square().mean(dim=(1, 3, 4))  # [B, F]
    weight = noise.loss_mask.float()
    if weighting == "bell":
        weight = weight * bell_weight(noise.sigma.to(per_frame.device))
    weight = weight.to(per_frame.device)
    counts = noise.loss_mask.float().sum(dim=1).clamp(min=1).to(per_frame.device)
    return ((per_frame * weight).sum(dim=1) / counts).mean()
