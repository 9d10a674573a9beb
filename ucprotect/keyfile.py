"""The keys file: which pattern each folder (or cluster) of a collection was given, kept between runs.

Protection rests on consistency: every photo a thief would put in one class must carry the same pattern.
A key chosen afresh on every run depends on what the run sees (a folder's mean over the photos present,
the keys other folders took), so photos added to a folder next month, or a second machine's shard, could
get another pattern than the photos already published. The keys file pins the choice: a later run into the
same output folder reuses every recorded key and only chooses keys for folders it has not seen, avoiding
those already taken. With two-level textures it also records each folder's shared key and the super-groups'
centroids, so a new folder joins the super-group nearest its concept. It records folder names, key numbers
and mean concept embeddings, no pixels; delete it to draw new patterns.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ConfigError
from .imageio import TEMP_MARKER

KEYS_FILE_NAME = ".ucprotect-keys.json"
KEYS_FORMAT = "ucprotect-keys"
KEYS_VERSION = 2  # 2 added the two-level fields; a version-1 file reads as one-level keys


class OtherWeightsKeysError(ConfigError):
    """A readable keys file made with other generator weights (not an unreadable one); ``weights_id`` is theirs."""

    def __init__(self, message: str, weights_id: str = ""):
        super().__init__(message)
        self.weights_id = weights_id


@dataclass
class KeyRecord:
    """Folder -> key, and cluster centroids -> key, for one set of generator weights (``weights_id``)."""

    weights_id: str
    folders: dict[str, int] = field(default_factory=dict)
    centroids: list[list[float]] = field(default_factory=list)  # unit concept embeddings, one per cluster
    cluster_keys: list[int] = field(default_factory=list)
    shared: dict[str, int] = field(default_factory=dict)  # folder -> its super-group's shared key
    super_centroids: list[list[float]] = field(default_factory=list)  # folder super-groups, unit embeddings
    super_keys: list[int] = field(default_factory=list)
    cluster_shared: list[int] = field(default_factory=list)  # per cluster, -1: none
    legacy_ids: tuple[str, ...] = field(default=(), repr=False)  # older fingerprints taken as ours (not saved)

    @classmethod
    def load(cls, path: Path, weights_id: str, legacy_ids: tuple[str, ...] = ()) -> "KeyRecord":
        """The record at ``path``, or an empty one if there is none; refuses one made with other weights.
        A file carrying one of ``legacy_ids`` (an older fingerprint of the same weights) is taken as this one."""
        path, legacy_ids = Path(path), tuple(legacy_ids)
        if not path.exists():
            return cls(weights_id, legacy_ids=legacy_ids)
        try:
            data = json.loads(path.read_text())
            if data.get("format") != KEYS_FORMAT:
                raise ValueError("not a ucprotect keys file")
            record = cls(str(data["weights_id"]), {str(k): int(v) for k, v in data.get("folders", {}).items()},
                         [[float(x) for x in c] for c in data.get("centroids", [])], [int(k) for k in data.get("cluster_keys", [])],
                         {str(k): int(v) for k, v in data.get("shared", {}).items()},
                         [[float(x) for x in c] for c in data.get("super_centroids", [])], [int(k) for k in data.get("super_keys", [])],
                         [int(k) for k in data.get("cluster_shared", [])])
            if len(record.centroids) != len(record.cluster_keys):
                raise ValueError("centroids and cluster keys differ in number")
            if len(record.super_centroids) != len(record.super_keys):
                raise ValueError("super-group centroids and keys differ in number")
            if record.cluster_shared and len(record.cluster_shared) != len(record.cluster_keys):
                raise ValueError("cluster keys and shared keys differ in number")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ConfigError(f"{path}: unreadable keys file ({e}); delete it to choose patterns afresh "
                              "(photos protected before may then get other patterns), or pass --keys with another path") from None
        record.legacy_ids = legacy_ids
        if record.weights_id in legacy_ids:
            record.weights_id = weights_id  # a save (new groups) writes today's fingerprint
        if record.weights_id != weights_id:
            raise OtherWeightsKeysError(f"{path}: keys file was made with other generator weights; use the same --weights as before, "
                              "or pass --keys with a new path to start a separate set of patterns (a folder protected with earlier default "
                              "weights needs those: weights/ keeps v3, and the README's model card says how to make v2)", record.weights_id)
        return record

    def save(self, path: Path) -> None:
        """Write atomically, merging with what another process (a parallel shard) may have written meanwhile:
        keys already recorded there win. A keys file of other weights that appeared meanwhile is refused, not
        replaced: its photos carry its patterns, and ours are not written yet (keys are saved before pixels)."""
        path = Path(path)
        if path.exists():
            try:
                other = KeyRecord.load(path, self.weights_id, self.legacy_ids)
                self.folders = {**self.folders, **other.folders}
                self.shared = {**self.shared, **other.shared}
                if other.centroids:
                    self.centroids, self.cluster_keys, self.cluster_shared = other.centroids, other.cluster_keys, other.cluster_shared
                if other.super_centroids:
                    self.super_centroids, self.super_keys = other.super_centroids, other.super_keys
            except OtherWeightsKeysError:
                raise ConfigError(f"{path}: another run with other generator weights wrote this keys file during this one; "
                                  "left as it is and nothing protected by this run. Give each weights file its own "
                                  "--out or --keys path, then run again") from None
            except ConfigError:
                pass  # unreadable: replace it with ours
        data = {"format": KEYS_FORMAT, "version": KEYS_VERSION, "weights_id": self.weights_id,
                "folders": dict(sorted(self.folders.items())), "shared": dict(sorted(self.shared.items())),
                "super_centroids": self.super_centroids, "super_keys": self.super_keys,
                "centroids": self.centroids, "cluster_keys": self.cluster_keys, "cluster_shared": self.cluster_shared}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}{TEMP_MARKER}")
        try:
            tmp.write_text(json.dumps(data, indent=1))
            tmp.replace(path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"{path}: cannot write the keys file ({e.strerror or e}); free space or pass --keys with a writable path") from None

    def nearest_cluster(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Index of the recorded cluster nearest each embedding (cosine)."""
        return _nearest(embeddings, self.centroids)

    def nearest_super_group(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Index of the recorded folder super-group nearest each embedding (cosine)."""
        return _nearest(embeddings, self.super_centroids)


def _nearest(embeddings: torch.Tensor, centroids: list[list[float]]) -> torch.Tensor:
    c = torch.tensor(centroids, dtype=torch.float32)
    return (torch.nn.functional.normalize(embeddings.float(), dim=-1) @ c.T).argmax(1)
