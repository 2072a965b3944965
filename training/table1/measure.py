"""Per-latent-frame prompt adherence, the pack's Confusion Degree and frame-level consistency, drift.

Scene classifier: multinomial logistic regression on the flattened latent frame [16 x S x S], fitted
on clean single-scene frames of the domain (random positions, texture noise); it reads a generated
latent frame's scene. Adherence = share of latent frames whose predicted scene is the scene of that
frame's caption in the story (the target, for frame-level and video-level prompting alike).

Shared scene space for the pack's metrics (nodes/story/metrics.py): a frame-level caption embeds as
the one-hot vector of the scene it names; a visual unit (the latent frames of one story segment,
i.e. the frames assigned to one prompt) embeds as the mean over its frames of the classifier's
probabilities, each mixed with the uniform distribution by `FLOOR` (a wrong scene gets a small, not
a vanishing, cosine, as CLIP never gives exactly 0; without it CD would be a ratio of tiny softmax
tails). Then S_TT = identity for a story of distinct scenes, S_TF[i, j] = cos(one-hot(scene_i), p_j),
CD and frame-level consistency exactly as the pack computes them (row normalisation).

Fidelity of a latent frame: the cosine between it and the best-placed clean object of the scene the
classifier reads in it (its colour direction times its shape mask at the best of all positions); a
rendered training frame scores about 0.92 (its texture noise), a blurred, faded or deformed object
less. It says how clean the frames stay, independent of which scene they show. Motion coherence:
of consecutive latent frames inside one segment that both show the right scene, the share whose
best-placed objects are exactly one motion step apart (a rendered story scores 1). World
consistency: the share of the last quarter's latent frames whose world tint is the one most of the
first quarter shows (a rendered story scores 1; a loop that loses its world scores about 1/4).

Drift = adherence over the first quarter of the latent frames minus adherence over the last quarter
(positive: the clip got worse as it went on).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ...nodes.story.metrics import confusion_degree, frame_level_consistency  # noqa: TID252
from .domain import MOTIONS, PATCH, SCENES, ClipSpec, colour_directions, shape_mask, tint_directions

FLOOR = 0.05


class SceneClassifier:
    """Multinomial logistic regression (L2) over flattened latent frames, fitted with L-BFGS."""

    def __init__(self, weight_decay: float = 1e-3):
        self.weight_decay = weight_decay
        self.linear: torch.nn.Linear | None = None

    def fit(self, frames: torch.Tensor, labels: torch.Tensor, iterations: int = 200) -> SceneClassifier:
        x = frames.flatten(1).double()
        self.linear = torch.nn.Linear(x.shape[1], len(SCENES)).double()
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)
        optimizer = torch.optim.LBFGS(self.linear.parameters(), max_iter=iterations, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.linear(x), labels)
            loss = loss + self.weight_decay * self.linear.weight.square().sum()
            loss.backward()
            return loss
        optimizer.step(closure)
        return self

    @torch.no_grad()
    def probabilities(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, scenes] for latent frames [N, 16, S, S]."""
        if self.linear is None:
            raise RuntimeError("fit the classifier first")
        return torch.softmax(self.linear(frames.flatten(1).double()), dim=1).float()

    def accuracy(self, frames: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self.probabilities(frames).argmax(1) == labels).float().mean())


def segment_frames(story: ClipSpec) -> list[range]:
    """Latent frames of each story segment (the frames assigned to each frame-level prompt)."""
    bounds = [s.start for s in story.segments] + [story.frames]
    return [range(bounds[k], bounds[k + 1]) for k in range(len(story.segments))]


def scene_space(story: ClipSpec, probabilities: torch.Tensor, floor: float = FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """(text embeddings [N, scenes], visual embeddings [N, scenes]) of the story's N segments."""
    smoothed = (1 - floor) * probabilities.double().numpy() + floor / len(SCENES)
    text = np.eye(len(SCENES))[[s.scene for s in story.segments]]
    visual = np.stack([smoothed[list(frames)].mean(axis=0) for frames in segment_frames(story)])
    return text, visual


def place_objects(frames: torch.Tensor, scenes: torch.Tensor, colour_seed: int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(fidelity [N], position [N, 2]) of each latent frame [N, 16, S, S] against its scene's clean
    object placed at the best of all S x S positions: the cosine with that object (world tint
    projected out first), and the position."""
    size = frames.shape[-1]
    colours, tints = colour_directions(colour_seed), tint_directions(colour_seed)
    frames = frames.float() - torch.einsum("nchw,tc,td->ndhw", frames.float(), tints, tints)  # the world tint out
    shifts = torch.tensor([(dy, dx) for dy in range(size) for dx in range(size)])
    cosine, position = torch.empty(frames.shape[0]), torch.empty(frames.shape[0], 2, dtype=torch.long)
    for scene in scenes.unique().tolist():
        rows = torch.nonzero(scenes == scene).flatten()
        mask = shape_mask(SCENES[scene].shape, size)
        placed = torch.stack([torch.roll(mask, tuple(shift), (0, 1)) for shift in shifts.tolist()])  # [P, S, S]
        along_colour = torch.einsum("c,nchw->nhw", colours[scene], frames[rows].float())
        best, where = torch.einsum("nhw,phw->np", along_colour, placed).max(dim=1)
        cosine[rows] = best / (frames[rows].flatten(1).norm(dim=1) * mask.norm()).clamp_min(1e-12)
        position[rows] = shifts[where]
    return cosine, position


def read_worlds(frames: torch.Tensor, colour_seed: int = 0) -> torch.Tensor:
    """[N] world (tint) of each latent frame [N, 16, S, S]: the tint direction its mean is most along."""
    return (frames.float().mean(dim=(2, 3)) @ tint_directions(colour_seed).T).argmax(dim=1)


def world_consistency(frames: torch.Tensor) -> float:
    """Share of the last quarter's latent frames in the world most of the first quarter shows."""
    worlds = read_worlds(frames)
    quarter = max(1, frames.shape[0] // 4)
    first = int(torch.mode(worlds[:quarter]).values)
    return float((worlds[-quarter:] == first).float().mean())


def motion_coherence(story: ClipSpec, predicted: torch.Tensor, position: torch.Tensor, size: int) -> float:
    """Share of consecutive frame pairs inside one story segment, both showing the target scene, in
    which the object moved by exactly its scene's motion step, one patch (NaN when no such pair exists)."""
    target = story.caption_scenes()
    hits, pairs = 0, 0
    for f in range(story.frames - 1):
        scene = target[f]
        if target[f + 1] != scene or int(predicted[f]) != scene or int(predicted[f + 1]) != scene:
            continue
        step = PATCH * torch.tensor(MOTIONS[SCENES[scene].motion])
        hits += bool(((position[f] + step) % size == position[f + 1]).all())
        pairs += 1
    return hits / pairs if pairs else float("nan")


@dataclass(frozen=True)
class ClipScores:
    adherence: float
    adherence_first_quarter: float
    adherence_last_quarter: float
    confusion_degree: float
    frame_consistency: float
    fidelity_first_quarter: float
    fidelity_last_quarter: float
    motion_coherence: float
    world_consistency: float

    @property
    def drift(self) -> float:
        return self.adherence_first_quarter - self.adherence_last_quarter


def score_clip(story: ClipSpec, latent: torch.Tensor, classifier: SceneClassifier, floor: float = FLOOR) -> ClipScores:
    """Scores of one generated clip, latent [16, frames, S, S] (normalised)."""
    frames = latent.permute(1, 0, 2, 3)
    probabilities = classifier.probabilities(frames)
    predicted = probabilities.argmax(1)
    hits = (predicted == torch.tensor(story.caption_scenes())).float()
    clean, position = place_objects(frames, predicted)
    quarter = max(1, story.frames // 4)
    text, visual = scene_space(story, probabilities, floor)
    cd = confusion_degree(text, visual, normalize="row", on_nonpositive="clamp")
    return ClipScores(adherence=float(hits.mean()), adherence_first_quarter=float(hits[:quarter].mean()),
                      adherence_last_quarter=float(hits[-quarter:].mean()), confusion_degree=cd.value,
                      frame_consistency=frame_level_consistency(text, visual),
                      fidelity_first_quarter=float(clean[:quarter].mean()),
                      fidelity_last_quarter=float(clean[-quarter:].mean()),
                      motion_coherence=motion_coherence(story, predicted, position, latent.shape[-1]),
                      world_consistency=world_consistency(frames))


def mean_scores(scores: list[ClipScores]) -> dict:
    """Means over clips (and the drift of the means, which equals the mean drift)."""
    keys = ("adherence", "adherence_first_quarter", "adherence_last_quarter", "confusion_degree",
            "frame_consistency", "fidelity_first_quarter", "fidelity_last_quarter", "motion_coherence",
            "world_consistency")
    out = {key: float(np.nanmean([getattr(s, key) for s in scores])) for key in keys}
    out["drift"] = out["adherence_first_quarter"] - out["adherence_last_quarter"]
    out["fidelity_drift"] = out["fidelity_first_quarter"] - out["fidelity_last_quarter"]
    for key in ("adherence", "world_consistency"):
        values = [getattr(s, key) for s in scores]
        out[f"{key}_sem"] = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    out["clips"] = len(scores)
    out["per_clip"] = [dataclasses.asdict(s) for s in scores]
    return out
