"""sha256 of files, byte strings and ONNX graphs: the identity that manifests and caches key on."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

__all__ = ["sha256_file", "sha256_bytes", "graph_sha256", "is_sha256"]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def graph_sha256(proto: Any) -> str:
    """Hash of an ONNX ModelProto's graph alone (nodes, weights, I/O), not of its metadata: embedding
    a manifest or a creation time does not change it, and re-exporting the same weights gives the same hash."""
    return sha256_bytes(proto.graph.SerializeToString(deterministic=True))


def is_sha256(value: object) -> bool:
    """A 64-digit lowercase hex string, as ``hexdigest`` writes it."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
