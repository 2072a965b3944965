"""Which Wan 2.2 expert predicts which latent frame (pure).

Wan 2.2 A14B is a pair of experts: the high-noise expert denoises while the noise level is at or
above a boundary, the low-noise expert below it. The boundary is in timestep / 1000 units (the
flow-matching sigma the model sees): 0.875 for T2V, 0.900 for I2V, as in Wan 2.2's own code, where a
step runs the high-noise expert when ``t >= boundary * 1000``.

With per-frame noise levels (Diffusion Forcing, FIFO, anchors) one model call can hold frames on
both sides of the boundary. Two rules are offered:

* ``per_frame`` (exact, the default): every frame's prediction comes from the expert of its own
  level. A call whose live frames all sit on one side runs that expert only; a call that mixes
  both sides runs both experts on the whole call (self-attention stays global, so each expert
  sees every frame) and takes each frame from its own expert.
* ``per_call`` (cheaper, approximate): the whole call runs the expert of its largest live level,
  so it never costs more than one evaluation, but frames below the boundary in a call that also
  holds a frame above it are predicted by the high-noise expert.

A frame at level 0 is clean (an anchor, or a finished latent shown as context): its prediction is
never used (the samplers hold it), so it never makes a call "mixed" and takes whichever expert
runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

T2V_BOUNDARY = 0.875
I2V_BOUNDARY = 0.900
RULES = ("per_frame", "per_call")


@dataclass(frozen=True)
class ExpertSettings:
    """boundary in timestep / 1000 (0 < boundary < 1); cfg of each expert; rule in :data:`RULES`."""

    boundary: float = T2V_BOUNDARY
    cfg_high: float = 4.0
    cfg_low: float = 3.0
    rule: str = "per_frame"

    def __post_init__(self):
        if not 0.0 < self.boundary < 1.0:
            raise ValueError(f"boundary must be in (0, 1) (timestep / 1000), got {self.boundary}; "
                             f"Wan 2.2 uses {T2V_BOUNDARY} for T2V and {I2V_BOUNDARY} for I2V")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")


@dataclass(frozen=True)
class ExpertChoice:
    """What one call runs: ``high`` [N, L] is True where a frame takes the high-noise expert's
    prediction; ``run_high`` / ``run_low`` say which experts are evaluated."""

    high: torch.Tensor
    run_high: bool
    run_low: bool

    @property
    def mixed(self) -> bool:
        return self.run_high and self.run_low


def choose_experts(levels: torch.Tensor, settings: ExpertSettings) -> ExpertChoice:
    """The experts of one call whose frames sit at ``levels`` [N, L] (timestep / 1000, 0 = clean)."""
    levels = levels.detach().to("cpu", torch.float64)
    live = levels > 0
    if settings.rule == "per_call":
        top = float(levels[live].max()) if bool(live.any()) else 0.0
        on_high = top >= settings.boundary
        return ExpertChoice(torch.full(levels.shape, on_high), run_high=on_high, run_low=not on_high)
    high = levels >= settings.boundary
    run_high, run_low = bool((high & live).any()), bool((~high & live).any())
    if not run_high and not run_low:   # nothing live: any expert will do; the clean one is cheapest to justify
        run_low = True
    if run_high and not run_low:
        high = torch.ones_like(high)
    elif run_low and not run_high:
        high = torch.zeros_like(high)
    return ExpertChoice(high, run_high, run_low)


def combine_predictions(choice: ExpertChoice, high_out: torch.Tensor | None,
                        low_out: torch.Tensor | None) -> torch.Tensor:
    """One prediction [N, C, L, H, W] from the experts' outputs: each frame from its expert."""
    if not choice.mixed:
        return high_out if choice.run_high else low_out
    mask = choice.high.to(high_out.device).view(high_out.shape[0], 1, high_out.shape[2], *([1] * (high_out.ndim - 3)))
    return torch.where(mask, high_out, low_out)


def switch_step(sigmas: torch.Tensor, boundary: float) -> int:
    """Steps of a synchronous schedule run by the high-noise expert: the step index where the
    official two-sampler route hands over (the first KSamplerAdvanced's end_at_step and the second
    one's start_at_step). Step i runs at sigmas[i]; it is a high-noise step when sigmas[i] >= boundary."""
    steps = int(sigmas.shape[0]) - 1
    high = [float(sigmas[i]) >= boundary for i in range(steps)]
    if any(later and not earlier for earlier, later in zip(high, high[1:])):
        raise ValueError("sigmas must descend for a single hand-over between the experts")
    return sum(high)
