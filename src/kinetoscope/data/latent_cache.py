"""Latents cached once through the VAE: safetensors shards that DiT training reads directly.

Encoding a clip costs about as much CPU as a DiT training step on it, so training never
touches pixels: clips are encoded once (posterior mode, normalised by the VAE's latent
statistics) and written in shards. A shard holds one tensor ``latents`` of shape
``"n c t h w"`` (float16: the normalised values are ~N(0, 1), where half precision keeps 3
significant digits) and, in the safetensors metadata, a JSON list of one record per clip
(``text`` and anything else the writer knows: ground truth, source path, seed) plus the
fingerprint of the VAE that made it, so a cache from another VAE is refused, not trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.atomic import atomic_output

FORMAT = "kinetoscope-latents-1"
SHARD_SUFFIX = ".safetensors"


# Config fields that shape only the decoder, and so not the latents.
_DECODER_ONLY_FIELDS = frozenset({"decoder_layers"})


def vae_fingerprint(vae: torch.nn.Module) -> str:
    """A short hash of what a VAE's latents depend on: its config (latent statistics included)
    less the decoder's depth, and its encoder's weights. The decoder is left out on purpose: a
    decoder fine-tuned or deepened later (``train vae --decoder-only``) decodes the same latents
    better, and a cache made before it stays valid."""
    config = {k: v for k, v in getattr(vae, "config").__dict__.items() if k not in _DECODER_ONLY_FIELDS}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    encoder = getattr(vae, "encoder", vae)
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def write_shard(path: str | Path, latents: torch.Tensor, records: Sequence[dict], vae_id: str) -> Path:
    """Write ``latents`` ``"n c t h w"`` and one record per clip to ``path`` atomically."""
    if latents.ndim != 5 or latents.shape[0] != len(records):
        raise ValueError(f"need latents 'n c t h w' with n = {len(records)} records, got {tuple(latents.shape)}")
    metadata = {"format": FORMAT, "vae": vae_id, "records": json.dumps(list(records))}
    with atomic_output(Path(path)) as temporary:
        save_file({"latents": latents.detach().to("cpu", torch.float16).contiguous()}, str(temporary), metadata)
    return Path(path)


@dataclass
class LatentShard:
    """One shard read back: float32 latents ``"n c t h w"`` and their records."""

    latents: torch.Tensor
    records: list[dict]
    vae_id: str


def read_shard(path: str | Path, vae_id: str | None = None) -> LatentShard:
    """Read a shard written by :func:`write_shard`; KinetoscopeError names a damaged file.

    ``vae_id`` (from :func:`vae_fingerprint`), when given, must be the shard's.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            latents = handle.get_tensor("latents").float()
        records = json.loads(metadata["records"])
    except (OSError, SafetensorError, KeyError, ValueError) as err:
        raise KinetoscopeError(f"{path}: not a readable latent shard ({err})") from None
    if metadata.get("format") != FORMAT or len(records) != latents.shape[0]:
        raise KinetoscopeError(f"{path}: not a {FORMAT} shard")
    found = metadata.get("vae", "")
    if vae_id is not None and found != vae_id:
        raise KinetoscopeError(f"{path}: was encoded by another VAE ({found}, expected {vae_id}); use a new cache folder")
    return LatentShard(latents, records, found)


def shard_paths(directory: str | Path) -> list[Path]:
    """The shards in ``directory``, in name order."""
    return sorted(p for p in Path(directory).glob(f"*{SHARD_SUFFIX}") if not p.name.startswith("."))


@dataclass
class LatentBucket:
    """All cached clips of one latent shape: ``latents`` ``"n c t h w"`` and a record per clip."""

    latents: torch.Tensor
    records: list[dict]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(c, t, h, w)`` of every clip in the bucket."""
        return tuple(self.latents.shape[1:])  # type: ignore[return-value]


def load_buckets(directory: str | Path, vae_id: str | None = None) -> list[LatentBucket]:
    """Every shard in ``directory``, grouped by latent shape (largest bucket first).

    ``vae_id`` (from :func:`vae_fingerprint`), when given, must match every shard's.
    """
    grouped: dict[tuple[int, ...], list[LatentShard]] = {}
    paths = shard_paths(directory)
    if not paths:
        raise KinetoscopeError(f"{directory}: holds no latent shards (*{SHARD_SUFFIX})")
    for path in paths:
        shard = read_shard(path, vae_id)
        grouped.setdefault(tuple(shard.latents.shape[1:]), []).append(shard)
    buckets = [
        LatentBucket(torch.cat([s.latents for s in shards]), [r for s in shards for r in s.records])
        for shards in grouped.values()
    ]
    return sorted(buckets, key=lambda b: -b.latents.shape[0])


def hold_out_sources(
    bucket: LatentBucket, count: int, seed: int = 0, max_share: float = 0.1
) -> tuple[LatentBucket, LatentBucket | None]:
    """Split ``bucket`` into clips to train on and about ``count`` clips to validate on.

    Clips cut from one source video look alike, so a source is held out whole (its clips share
    the record's ``source``, else ``path``; a clip without either is its own source): otherwise
    the validation loss would reward remembering the training clips' neighbours. Sources are
    drawn in an order fixed by ``seed``, so a resumed run holds out the same clips. At most
    ``max_share`` of the clips leave training; when no source fits, nothing is held out (None).
    """
    n = bucket.latents.shape[0]
    groups: dict[object, list[int]] = {}
    for i, record in enumerate(bucket.records):
        groups.setdefault(record.get("source") or record.get("path") or ("clip", i), []).append(i)
    cap = int(max_share * n)
    limit = min(count, cap)
    order = torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed)).tolist()
    members = list(groups.values())
    held: list[int] = []
    for g in order:
        if len(held) >= limit:
            break
        if len(held) + len(members[g]) <= cap:  # a source too big to fit is skipped, a smaller one may
            held += members[g]
    if not held:
        return bucket, None
    held_set = set(held)
    kept = [i for i in range(n) if i not in held_set]
    held.sort()

    def subset(indices: list[int]) -> LatentBucket:
        return LatentBucket(bucket.latents[indices], [bucket.records[i] for i in indices])

    return subset(kept), subset(held)
