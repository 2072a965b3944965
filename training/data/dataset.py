"""Reading the cache: bucketed, deterministic global batches that every process shards alike.

A global batch holds clips of one bucket (same latent frames, height, width). The plan of an epoch is
a pure function of (seed, epoch), so the data position is just "global batches consumed" and resume
is exact. Process r of W takes rows [r*B/W, (r+1)*B/W) of every global batch.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from ...kernels import PackedPrompts, pack_prompts  # noqa: TID252 - package-relative
from .cache import load_tensor


@dataclass(frozen=True)
class TrainBatch:
    latents: torch.Tensor  # [B, 16, F, h, w]
    frame_text: PackedPrompts
    sample_ids: list[int]  # global sample numbers, seed the per-sample noise


class CachedData:
    def __init__(self, cache_dir):
        self.root = Path(cache_dir)
        index_path = self.root / "index.json"
        if not index_path.exists():
            raise FileNotFoundError(f"{index_path} is missing; run the `cache` command first")
        index = json.loads(index_path.read_text(encoding="utf-8"))
        self.items, self.validation = index["items"], index.get("validation", [])
        self._texts: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.items)

    def bucket(self, i: int) -> tuple[int, int, int]:
        item = self.items[i]
        return item["frames"], item["height"], item["width"]

    def latent(self, i: int) -> torch.Tensor:
        return load_tensor(self.root / self.items[i]["latent"], "latent")

    def text(self, key: str) -> torch.Tensor:
        if key not in self._texts:
            self._texts[key] = load_tensor(self.root / "text" / f"{key}.safetensors", "context")
        return self._texts[key]


class BatchPlan:
    def __init__(self, buckets: list[tuple], global_batch: int, seed: int):
        self.global_batch, self.seed = global_batch, seed
        self.groups = defaultdict(list)
        for index, key in enumerate(buckets):
            self.groups[key].append(index)
        self.batches_per_epoch = sum(len(v) // global_batch for v in self.groups.values())
        if self.batches_per_epoch == 0:
            sizes = {k: len(v) for k, v in self.groups.items()}
            raise ValueError(f"no bucket holds a full global batch of {global_batch} clips (bucket sizes "
                             f"{sizes}); lower [train] global_batch_size or add clips")

    def epoch(self, epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        batches = []
        for key in sorted(self.groups):
            members = self.groups[key]
            order = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
            full = len(order) // self.global_batch * self.global_batch
            batches += [order[s:s + self.global_batch] for s in range(0, full, self.global_batch)]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def from_position(self, consumed: int):
        """Yield (global batch number, clip indices) forever, starting after `consumed` batches."""
        epoch, offset = divmod(consumed, self.batches_per_epoch)
        while True:
            for i, batch in enumerate(self.epoch(epoch)[offset:], start=offset):
                yield epoch * self.batches_per_epoch + i, batch
            epoch, offset = epoch + 1, 0


def shard(batch: list[int], rank: int, world: int) -> tuple[list[int], list[int]]:
    """(clip indices, their row numbers in the global batch) of this process."""
    if len(batch) % world:
        raise ValueError(f"global batch {len(batch)} is not divisible by {world} processes")
    size = len(batch) // world
    rows = list(range(rank * size, (rank + 1) * size))
    return [batch[r] for r in rows], rows


def pad_rows(context: torch.Tensor, text_len: int) -> torch.Tensor:
    """Trimmed [L, C] -> [text_len, C] with exact-zero pad rows (Wan's padding)."""
    rows = context[:text_len]
    return torch.cat([rows, rows.new_zeros(text_len - rows.shape[0], rows.shape[1])])


def pack_batch_prompts(data: CachedData, records: list[dict], text_len: int) -> PackedPrompts:
    keys, routing = [], []
    for record in records:
        for key in record["captions"]:
            if key not in keys:
                keys.append(key)
        routing.append([keys.index(record["captions"][p]) for p in record["frame_prompt"]])
    contexts = [pad_rows(data.text(k), text_len) for k in keys]
    return pack_prompts(contexts, torch.tensor(routing, dtype=torch.long))


def collate(data: CachedData, indices: list[int], sample_ids: list[int], text_len: int) -> TrainBatch:
    latents = torch.stack([data.latent(i) for i in indices])
    frame_text = pack_batch_prompts(data, [data.items[i] for i in indices], text_len)
    return TrainBatch(latents, frame_text, sample_ids)
