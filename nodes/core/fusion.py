"""Windows in, one video out: gather the latents of several windows into one batch, and fuse the
windows' predictions back into a prediction for every latent.

Both the plan executor (our samplers) and the PMWD model patch (stock samplers) run their windows
through :func:`evaluate_windows`, so windows are batched, evaluated and averaged the same way
everywhere:

    fused[f] = sum_k w_k(f) * pred_k(f) / sum_k w_k(f)      over the windows k that write f

A latent written by exactly one window gets that window's prediction bit-exactly (no division),
so a single window reproduces an unwindowed run exactly. Latents are [B, C, F, H, W]: frames are
dimension 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .plan import Window, window_batches

FRAME_DIM = 2


def frame_tensor(window: Window, device=None) -> torch.Tensor:
    """The window's global latent indices as an int64 tensor."""
    return torch.tensor(window.frames, dtype=torch.int64, device=device)


def gather_windows(x: torch.Tensor, windows: Sequence[Window]) -> torch.Tensor:
    """Stack the windows' latents on the batch dimension, window-major: rows k*B..k*B+B-1 of the
    result are window k of the B batch rows of ``x`` ([B, C, F, ...] -> [K*B, C, W, ...])."""
    return torch.cat([x.index_select(FRAME_DIM, frame_tensor(w, x.device)) for w in windows])


def gather_window_columns(per_frame: torch.Tensor, rows: int, windows: Sequence[Window]) -> torch.Tensor:
    """Per-frame data of the whole video, [n, F] with n dividing ``rows`` (or [F]), as the rows of
    the stacked windows: [K*rows, W], window-major like :func:`gather_windows`."""
    per_frame = per_frame.reshape(-1, per_frame.shape[-1])
    per_frame = per_frame.repeat(rows // per_frame.shape[0], 1)
    return torch.cat([per_frame[:, frame_tensor(w, per_frame.device)] for w in windows])


class WindowFusion:
    """Accumulates window predictions for a video shaped like ``like`` ([B, C, F, H, W]).

    ``add(window, pred)`` takes the window's prediction [B, C, W, H, W]; ``result()`` returns
    (fused, written): latents no window wrote keep ``like``'s values and are False in written.
    The weighted sum is kept in at least float32 so bf16 predictions average without drift."""

    def __init__(self, like: torch.Tensor):
        self.acc_dtype = torch.promote_types(like.dtype, torch.float32)
        self.fused = like.clone()
        self.acc: torch.Tensor | None = None   # allocated only once two windows share a latent
        frames = like.shape[FRAME_DIM]
        self.weight_sum = torch.zeros(frames, dtype=torch.float64)
        self.first_weight = torch.zeros(frames, dtype=torch.float64)
        self.writers = torch.zeros(frames, dtype=torch.int64)

    def add(self, window: Window, pred: torch.Tensor) -> None:
        if pred.shape[FRAME_DIM] != window.length:
            raise ValueError(f"prediction has {pred.shape[FRAME_DIM]} frames for a window of {window.length}")
        weights = torch.tensor(window.weights, dtype=torch.float64)
        positions = torch.nonzero(weights > 0).flatten()
        if positions.numel() == 0:
            return
        frames, weights = frame_tensor(window)[positions], weights[positions]
        new = self.writers[frames] == 0
        if bool(new.any()):
            self._put(self.fused, frames[new], pred, positions[new])
            self.first_weight[frames[new]] = weights[new]
        if not bool(new.all()):
            self._accumulate(frames[~new], pred, positions[~new], weights[~new])
        self.weight_sum[frames] += weights
        self.writers[frames] += 1

    def _put(self, target, frames, source, positions, scale=None):
        value = source.index_select(FRAME_DIM, positions.to(source.device))
        if scale is not None:
            value = value.to(self.acc_dtype) * self._view(scale)
        target.index_copy_(FRAME_DIM, frames.to(target.device), value.to(target.dtype))

    def _accumulate(self, frames, pred, positions, weights) -> None:
        if self.acc is None:
            self.acc = torch.zeros(self.fused.shape, dtype=self.acc_dtype, device=self.fused.device)
        second = self.writers[frames] == 1   # bring in the first writer's weighted value once
        if bool(second.any()):
            self._put(self.acc, frames[second], self.fused, frames[second], self.first_weight[frames[second]])
        value = pred.index_select(FRAME_DIM, positions.to(pred.device)).to(self.acc_dtype) * self._view(weights)
        self.acc.index_add_(FRAME_DIM, frames.to(self.acc.device), value)

    def _view(self, per_frame: torch.Tensor) -> torch.Tensor:
        shape = [1] * self.fused.ndim
        shape[FRAME_DIM] = -1
        return per_frame.to(device=self.fused.device, dtype=self.acc_dtype).view(shape)

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        shared = torch.nonzero(self.writers > 1).flatten()
        if shared.numel():
            index = shared.to(self.fused.device)
            norm = self._view(self.weight_sum[shared])
            self.fused.index_copy_(FRAME_DIM, index, (self.acc.index_select(FRAME_DIM, index) / norm)
                                   .to(self.fused.dtype))
        return self.fused, self.writers > 0


# evaluate(group of windows) -> predictions [len(group) * B, C, W, H, W], window-major
EvaluateGroup = Callable[[list[Window]], torch.Tensor]


def evaluate_windows(like: torch.Tensor, windows: Sequence[Window], max_windows_per_batch: int,
                     evaluate: EvaluateGroup,
                     interrupt_check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The one window loop: evaluate ``windows`` in calls of equal-length windows (at most
    ``max_windows_per_batch`` per call, 0 = no limit) and fuse their predictions into a video
    shaped like ``like`` ([B, C, F, H, W]). Returns :meth:`WindowFusion.result`'s (fused, written).
    ``interrupt_check`` runs before every call (raise from it to cancel)."""
    rows = like.shape[0]
    fusion = WindowFusion(like)
    for positions in window_batches(windows, max_windows_per_batch):
        if interrupt_check is not None:
            interrupt_check()
        group = [windows[p] for p in positions]
        out = evaluate(group)
        if out.shape[0] != len(group) * rows:
            raise ValueError(f"{len(group)} windows of {rows} rows gave {out.shape[0]} prediction rows")
        for k, window in enumerate(group):
            fusion.add(window, out[k * rows:(k + 1) * rows])
    return fusion.result()
