"""Artifacts on disk: each step's folder carries a ``manifest.json`` naming what produced it and
a hash of its inputs, so a step whose inputs did not change is not redone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import __version__

MANIFEST = "manifest.json"


def inputs_hash(inputs: dict) -> str:
    blob = json.dumps({"fpga_dnn": __version__, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_hash(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(folder) -> dict | None:
    p = Path(folder) / MANIFEST
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_fresh(folder, step: str, digest: str) -> bool:
    """True when ``folder`` holds a complete output of ``step`` for exactly these inputs."""
    m = load_manifest(folder)
    return bool(m and m.get("step") == step and m.get("inputs_hash") == digest and m.get("complete"))


def write_manifest(folder, step: str, digest: str, inputs: dict, outputs: dict) -> Path:
    p = Path(folder) / MANIFEST
    p.write_text(json.dumps({"step": step, "inputs_hash": digest, "inputs": inputs, "outputs": outputs,
                             "complete": True, "fpga_dnn": __version__}, indent=2, default=str))
    return p
