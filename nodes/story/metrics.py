"""The paper's metrics over embeddings: Confusion Degree (CD), frame-level and video-level
text-video consistency. Pure numpy; encoders live in `embedders.py`.

Definitions (inputs: N frame prompts P_1..P_N and N visual units V_1..V_N, V_j being the part of
the video assigned to prompt j):

- t_i = embed_text(P_i), v_j = embed_visual(V_j), each L2-normalised.
- S_TT = T T^T and S_TF = T V^T (N x N); S_TF[i, j] = cos(t_i, v_j).
- Each row is normalised by its own diagonal entry ("row", the default):
  S~_TT[i, j] = S_TT[i, j] / S_TT[i, i] (= S_TT[i, j] for unit vectors) and
  S~_TF[i, j] = S_TF[i, j] / S_TF[i, i].
  Other readings of "normalised by the diagonal" are available: "col" divides by the [j, j] entry,
  "sym" by sqrt([i, i] * [j, j]), "none" leaves the cosines as they are.
- CD(P_i) = sum_j max(0, S~_TF[i, j] - S~_TT[i, j]) (the j = i term is 0); CD = mean_i CD(P_i).
  Lower is better: prompt i's frames should not resemble prompt j's frames more than the two
  prompts resemble each other.
- Frame-level consistency = mean_i S_TF[i, i] (raw cosines).
- Video-level consistency = cos(embed_text(video prompt), embed_visual(8 frames, one from the middle
  of each of 8 equal segments)), as VBench's overall_consistency samples them.

A diagonal entry S_TF[i, i] <= eps makes row i undefined: by default its CD(P_i) and the overall CD
are NaN and `ConfusionResult.undefined_rows` names the rows; `on_nonpositive="clamp"` divides by eps
instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NORMALIZE_MODES = ("row", "col", "sym", "none")


@dataclass
class ConfusionResult:
    value: float  # CD, the mean over prompts
    per_prompt: np.ndarray  # CD(P_i), shape (N,)
    s_tt: np.ndarray  # raw text-text cosines (N, N)
    s_tf: np.ndarray  # raw text-visual cosines (N, N)
    undefined_rows: list[int] = field(default_factory=list)  # 0-based rows with S_TF[i, i] <= eps


def l2_normalise(vectors, name: str = "embeddings") -> np.ndarray:
    """Rows scaled to unit length; raises on NaN/inf or a zero row."""
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N, D >= 1, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinite values")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} rows {np.flatnonzero(norms[:, 0] == 0).tolist()} are all zeros")
    return array / norms


def similarity_matrices(text_embeddings, visual_embeddings) -> tuple[np.ndarray, np.ndarray]:
    """(S_TT, S_TF) from N text and N visual embeddings (normalised here)."""
    text = l2_normalise(text_embeddings, "text embeddings")
    visual = l2_normalise(visual_embeddings, "visual embeddings")
    if text.shape != visual.shape:
        raise ValueError(f"need as many visual units as prompts with equal dims: text {text.shape}, "
                         f"visual {visual.shape}")
    return text @ text.T, text @ visual.T


def _diagonal_divisor(matrix: np.ndarray, mode: str) -> np.ndarray:
    diagonal = np.diag(matrix)
    if mode == "row":
        return diagonal[:, None] * np.ones_like(matrix)
    if mode == "col":
        return np.ones_like(matrix) * diagonal[None, :]
    if mode == "sym":
        return np.sqrt(np.abs(diagonal[:, None] * diagonal[None, :]))
    return np.ones_like(matrix)


def normalise_by_diagonal(matrix: np.ndarray, mode: str = "row", eps: float = 1e-6,
                          on_nonpositive: str = "nan") -> tuple[np.ndarray, list[int]]:
    """Divide by diagonal entries as `mode` says; rows whose own diagonal is <= eps are undefined."""
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {mode!r}")
    if on_nonpositive not in ("nan", "clamp"):
        raise ValueError(f"on_nonpositive must be 'nan' or 'clamp', got {on_nonpositive!r}")
    bad = [] if mode == "none" else np.flatnonzero(np.diag(matrix) <= eps).tolist()
    safe = matrix.copy()
    if bad:
        diagonal = np.diag(safe).copy()
        diagonal[bad] = eps
        np.fill_diagonal(safe, diagonal)
    divisor = _diagonal_divisor(safe, mode)
    if mode in ("col", "sym"):
        divisor = np.where(np.abs(divisor) <= eps, eps, divisor)
    normalised = safe / divisor
    if bad and on_nonpositive == "nan":
        normalised[bad, :] = np.nan
    return normalised, bad


def confusion_degree(text_embeddings, visual_embeddings, normalize: str = "row", eps: float = 1e-6,
                     on_nonpositive: str = "nan") -> ConfusionResult:
    """CD = mean_i sum_j max(0, S~_TF[i, j] - S~_TT[i, j]); see the module docstring."""
    s_tt, s_tf = similarity_matrices(text_embeddings, visual_embeddings)
    tilde_tt, _ = normalise_by_diagonal(s_tt, normalize, eps, "clamp")
    tilde_tf, undefined = normalise_by_diagonal(s_tf, normalize, eps, on_nonpositive)
    excess = np.maximum(0.0, tilde_tf - tilde_tt)
    np.fill_diagonal(excess, 0.0)
    per_prompt = excess.sum(axis=1)
    if undefined and on_nonpositive == "nan":
        per_prompt[undefined] = np.nan
    return ConfusionResult(float(per_prompt.mean()), per_prompt, s_tt, s_tf, undefined)


def frame_level_consistency(text_embeddings, visual_embeddings) -> float:
    """mean_i cos(t_i, v_i): how well each part of the video matches its own prompt."""
    _, s_tf = similarity_matrices(text_embeddings, visual_embeddings)
    return float(np.mean(np.diag(s_tf)))


def video_level_consistency(text_embedding, visual_embedding) -> float:
    """cos(t, v) of one video prompt and one whole-video embedding."""
    text = l2_normalise(np.reshape(text_embedding, (1, -1)), "video prompt embedding")
    visual = l2_normalise(np.reshape(visual_embedding, (1, -1)), "video embedding")
    if text.shape != visual.shape:
        raise ValueError(f"text and video embeddings differ in size: {text.shape[1]} vs {visual.shape[1]}")
    return float((text @ visual.T)[0, 0])


def middle_of_segment_indices(num_frames: int, segments: int = 8) -> list[int]:
    """One frame from the middle of each of `segments` equal parts of a num_frames-frame video."""
    if num_frames < 1 or segments < 1:
        raise ValueError(f"need num_frames >= 1 and segments >= 1, got {num_frames}, {segments}")
    edges = np.linspace(0, num_frames, segments + 1)
    return [min(num_frames - 1, int((edges[k] + edges[k + 1]) / 2)) for k in range(segments)]


def frames_in_span(start: int, stop: int, count: int = 1) -> list[int]:
    """`count` pixel frames spread evenly inside [start, stop), each the centre of an equal part
    (1 = the span's centre frame, 8 = a ViCLIP-sized clip); frames repeat when the span is short."""
    if stop <= start or start < 0:
        raise ValueError(f"need a non-empty span of pixel frames, got {start}..{stop}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return [start + int((k + 0.5) * (stop - start) / count) for k in range(count)]
