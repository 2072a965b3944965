"""A synthetic multi-scene video domain that lives directly in Wan's latent space (no VAE).

A latent frame is [16, S, S] (S = 8 latent pixels by default). A *scene* is an object of one
"colour" (a unit direction in the 16 latent channels; the eight colours are orthonormal), one
shape (a small mask drawn on Wan's 2 x 2 patch grid) and one motion direction (one patch = two
latent pixels per latent frame, wrapping around the frame like a torus); its caption names all
three: "a red square moves left". Objects sit on the patch grid, which a DiT small enough for a CPU
learns better than free placement (fidelity 0.6 against 0.5 after 1500 steps); the motion it does
not learn at that budget (see docs/table1.md).
A *clip* is a run of scenes over latent frames; a scene change is a cut, or a morph that blends the
outgoing and the incoming scene over two latent frames. Every latent frame has one caption: the
scene with the larger weight in it (the incoming one from the middle of a morph on). A clip also
has a *world*: a uniform tint (one of four more channel directions) over all its frames, kept across
its scene changes and named by no caption, like the look of a film that outlasts its scenes. Nothing
but the clip's own frames can tell a window which world it is in: a long video keeps it only if the
loop carries it from window to window, which is what the world-consistency measure checks.

Why this stays honest: the model sees nothing but what a Wan model sees from the trainer (normalised
16-channel latents of shape [16, F, h, w] and UMT5 text states), generation goes through the same
samplers, and the scene of each generated latent frame can be read back without a VAE by a
classifier fitted on clean frames. Recognising a scene needs the channel direction (colour) at the
right place (shape) and coherent motion over frames; the model has to learn all of it from captions.
What it does not have is the VAE's decoding to pixels, which none of the measured quantities needs.

Everything is deterministic for a seed: `training_clips(seed, ...)` and `evaluation_stories(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CHANNELS = 16
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "teal")
SHAPES = ("square", "cross", "bar")
MOTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
AMPLITUDE = 2.5  # object strength in normalised latent units (background 0, texture noise below)
PATCH = 2  # Wan's spatial patch: objects sit on and move along its grid (one token per latent frame)
TEXTURE = 0.1  # per-pixel noise of a rendered frame, so clean frames form a distribution, not a set
TINTS = 4  # worlds: a uniform tint over every latent frame of a clip, named by no caption
TINT_AMPLITUDE = 0.8
MORPH_FRAMES = 2


@dataclass(frozen=True)
class Scene:
    index: int
    colour: str
    shape: str
    motion: str

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} moves {self.motion}"


SCENES = tuple(Scene(i, colour, SHAPES[i % len(SHAPES)], tuple(MOTIONS)[i % len(MOTIONS)])
               for i, colour in enumerate(COLOURS))
CAPTION_TO_SCENE = {scene.caption: scene.index for scene in SCENES}


def scene_of_caption(caption: str) -> int:
    """The scene a frame-level caption names (an unknown caption is an error, not a guess)."""
    try:
        return CAPTION_TO_SCENE[caption]
    except KeyError:
        raise ValueError(f"{caption!r} is not a scene caption of the synthetic domain") from None


def video_caption(scenes: list[int]) -> str:
    """One video-level caption for a run of scenes, in order: "a red square moves left then ..."."""
    return " then ".join(SCENES[s].caption for s in scenes)


def vocabulary() -> list[str]:
    """Every word a caption of this domain can use (the tiny UMT5's word-level tokenizer)."""
    words = {"then"}
    for scene in SCENES:
        words.update(scene.caption.split())
    return sorted(words)


def _channel_basis(seed: int) -> torch.Tensor:
    """[16, 16] orthonormal rows (a seeded random orthogonal matrix)."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(CHANNELS, CHANNELS, generator=generator, dtype=torch.float64))
    return q.T.float()


def colour_directions(seed: int = 0) -> torch.Tensor:
    """[len(COLOURS), 16] orthonormal channel directions of the object colours."""
    return _channel_basis(seed)[:len(COLOURS)]


def tint_directions(seed: int = 0) -> torch.Tensor:
    """[TINTS, 16] channel directions of the world tints, orthogonal to every colour."""
    return _channel_basis(seed)[len(COLOURS):len(COLOURS) + TINTS]


def shape_mask(shape: str, size: int) -> torch.Tensor:
    """[size, size] mask anchored at (0, 0), drawn on the patch grid (a square of 2 x 2 patches, a
    plus of 5 patches, a bar of 1 x 3 patches), scaled to equal energy (L2 norm 3)."""
    cells = size // PATCH
    grid = torch.zeros(cells, cells)
    if shape == "square":
        grid[:2, :2] = 1
    elif shape == "cross":
        grid[1, :3] = 1
        grid[:3, 1] = 1
    elif shape == "bar":
        grid[0, :3] = 1
    else:
        raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")
    mask = grid.repeat_interleave(PATCH, 0).repeat_interleave(PATCH, 1)
    return mask * (3.0 / mask.norm())


@dataclass(frozen=True)
class Segment:
    """Scene `scene` shown from latent frame `start` (its caption starts there); `position` is the
    object's (row, column) at frame `start`."""

    scene: int
    start: int
    position: tuple[int, int]


@dataclass(frozen=True)
class ClipSpec:
    """A clip: `frames` latent frames, segments in order (the first starts at 0), whether each
    scene change (between segment k and k+1) is a morph rather than a cut, and the clip's world
    `tint` (constant over all its frames, across scene changes; no caption names it)."""

    frames: int
    segments: tuple[Segment, ...]
    morphs: tuple[bool, ...] = ()
    tint: int = 0

    def caption_scenes(self) -> list[int]:
        """Scene of every latent frame's caption."""
        out = []
        for k, segment in enumerate(self.segments):
            stop = self.segments[k + 1].start if k + 1 < len(self.segments) else self.frames
            out += [segment.scene] * (stop - segment.start)
        return out

    @property
    def scenes(self) -> list[int]:
        return [s.scene for s in self.segments]


def _object_frame(scene: int, position: tuple[int, int], offset: int, size: int,
                  colours: torch.Tensor) -> torch.Tensor:
    """[16, size, size]: scene's object `offset` latent frames after it stood at `position`."""
    spec = SCENES[scene]
    dy, dx = (PATCH * d for d in MOTIONS[spec.motion])
    mask = torch.roll(shape_mask(spec.shape, size), (position[0] + dy * offset, position[1] + dx * offset), (0, 1))
    return AMPLITUDE * colours[scene][:, None, None] * mask


def segment_weights(spec: ClipSpec) -> torch.Tensor:
    """[segments, frames] blend weight of each segment in each latent frame (rows sum to 1 per frame).

    A cut switches at the segment start; a morph at start b blends frames b-1 and b as
    (2/3, 1/3) and (1/3, 2/3) of the outgoing and incoming scene."""
    weights = torch.zeros(len(spec.segments), spec.frames)
    for k, segment in enumerate(spec.segments):
        stop = spec.segments[k + 1].start if k + 1 < len(spec.segments) else spec.frames
        weights[k, segment.start:stop] = 1
    for k, morph in enumerate(spec.morphs):
        if morph:
            b = spec.segments[k + 1].start
            weights[k, b - 1], weights[k + 1, b - 1] = 2 / 3, 1 / 3
            weights[k, b], weights[k + 1, b] = 1 / 3, 2 / 3
    return weights


def render(spec: ClipSpec, size: int = 8, seed: int = 0, colour_seed: int = 0) -> torch.Tensor:
    """Normalised latent [16, frames, size, size] of a clip (texture noise seeded by `seed`)."""
    colours = colour_directions(colour_seed)
    weights = segment_weights(spec)
    latent = TINT_AMPLITUDE * tint_directions(colour_seed)[spec.tint].view(-1, 1, 1, 1).expand(
        CHANNELS, spec.frames, size, size).clone()
    for k, segment in enumerate(spec.segments):
        for f in torch.nonzero(weights[k]).flatten().tolist():
            latent[:, f] += weights[k, f] * _object_frame(segment.scene, segment.position, f - segment.start,
                                                          size, colours)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed))
    return latent + TEXTURE * noise


def _draw_starts(frames: int, scenes: int, min_length: int, generator: torch.Generator) -> list[int]:
    """Segment starts (first 0) with every segment at least `min_length` latent frames long."""
    slack = frames - scenes * min_length
    if slack < 0:
        raise ValueError(f"{scenes} scenes of >= {min_length} latent frames do not fit in {frames}")
    cuts = sorted(torch.randint(0, slack + 1, (scenes - 1,), generator=generator).tolist())
    return [0] + [min_length * (k + 1) + cut for k, cut in enumerate(cuts)]


def _draw_scenes(count: int, generator: torch.Generator) -> list[int]:
    """`count` different scenes in random order."""
    return torch.randperm(len(SCENES), generator=generator)[:count].tolist()


def _draw_tint(generator: torch.Generator) -> int:
    return int(torch.randint(0, TINTS, (1,), generator=generator))


def _draw_position(size: int, generator: torch.Generator) -> tuple[int, int]:
    """A random place on the patch grid."""
    row, column = (PATCH * v for v in torch.randint(0, size // PATCH, (2,), generator=generator).tolist())
    return row, column


@dataclass(frozen=True)
class ClipRecipe:
    """How clips are drawn: latent frames, scene count weights (index = count - 1), shortest
    segment in latent frames, share of scene changes that morph, latent size."""

    frames: int = 8
    scene_count_weights: tuple[float, ...] = (0.2, 0.4, 0.4)
    min_segment: int = 2
    morph_share: float = 0.4
    size: int = 8


def draw_clip(recipe: ClipRecipe, generator: torch.Generator) -> ClipSpec:
    weights = torch.tensor(recipe.scene_count_weights, dtype=torch.float64)
    count = int(torch.multinomial(weights, 1, generator=generator)) + 1
    scenes = _draw_scenes(count, generator)
    starts = _draw_starts(recipe.frames, count, recipe.min_segment, generator)
    segments = tuple(Segment(s, start, _draw_position(recipe.size, generator)) for s, start in zip(scenes, starts))
    morphs = tuple(bool(torch.rand(1, generator=generator) < recipe.morph_share) for _ in range(count - 1))
    return ClipSpec(recipe.frames, segments, morphs, _draw_tint(generator))


def training_clips(count: int, recipe: ClipRecipe = ClipRecipe(), seed: int = 0) -> list[ClipSpec]:
    """`count` training clips (cuts and morphs, 1-3 scenes by default)."""
    generator = torch.Generator().manual_seed(seed)
    return [draw_clip(recipe, generator) for _ in range(count)]


def evaluation_stories(count: int, frames: int, scenes: tuple[int, int] = (4, 6), min_segment: int = 4,
                       size: int = 8, seed: int = 1000) -> list[ClipSpec]:
    """Long stories to generate: `frames` latent frames, between scenes[0] and scenes[1] different
    scenes, hard cuts only (so every latent frame has one unambiguous target scene)."""
    generator = torch.Generator().manual_seed(seed)
    stories = []
    for _ in range(count):
        n = int(torch.randint(scenes[0], scenes[1] + 1, (1,), generator=generator))
        recipe = ClipRecipe(frames=frames, min_segment=min_segment, size=size)
        ids = _draw_scenes(n, generator)
        starts = _draw_starts(recipe.frames, n, min_segment, generator)
        segments = tuple(Segment(s, start, _draw_position(size, generator)) for s, start in zip(ids, starts))
        stories.append(ClipSpec(frames, segments, (False,) * (n - 1), _draw_tint(generator)))
    return stories


def clean_scene_frames(per_scene: int, size: int = 8, seed: int = 7, colour_seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames [N, 16, size, size], scene labels [N]): single-scene frames at random positions, in
    random worlds, rendered like training clips; what the scene classifier is fitted on."""
    generator = torch.Generator().manual_seed(seed)
    frames, labels = [], []
    for scene in range(len(SCENES)):
        for _ in range(per_scene):
            spec = ClipSpec(1, (Segment(scene, 0, _draw_position(size, generator)),), (), _draw_tint(generator))
            noise_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            frames.append(render(spec, size, noise_seed, colour_seed)[:, 0])
            labels.append(scene)
    return torch.stack(frames), torch.tensor(labels)
