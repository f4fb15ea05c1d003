"""The content-hash build cache: a build is made once per distinct (sources, parameters, tool).

Every tool step that turns sources into an expensive product (Verilator builds, yosys runs)
keys its output directory by :func:`content_hash` over the source files' names and contents,
the step's parameters and the tool's version, under :func:`cache_root`. :func:`cached_build`
adds the locking (two processes asking for one build wait for one) and a completion marker (an
interrupted build is redone). Tool-specific wrappers pass their tool's version:
:func:`fpga_dnn.simulate.verilator.cached_build` (Verilator), :mod:`fpga_dnn.estimate` (yosys).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

from fpga_dnn.errors import ToolError

#: Environment variable that moves the build cache (default: ``./build/cache``).
CACHE_ENV = "FPGA_DNN_CACHE"

_MARKER = ".build-complete.json"


def cache_root() -> Path:
    """Root of the build cache: ``$FPGA_DNN_CACHE`` or ``./build/cache``."""
    return Path(os.environ.get(CACHE_ENV) or Path.cwd() / "build" / "cache").resolve()


def content_hash(sources: Iterable[Path], params: Mapping, extra: str = "") -> str:
    """SHA-256 (first 16 hex digits) over source names + contents, params (as JSON) and ``extra``.

    File names enter as base names only, so two checkouts with identical sources share a
    cache entry; the order of ``sources`` matters (it is the compile order).
    """
    h = hashlib.sha256()
    for src in sources:
        src = Path(src)
        try:
            data = src.read_bytes()
        except OSError as err:
            raise ToolError(f"cannot read source {src}: {err.strerror}") from err
        h.update(src.name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update(extra.encode())
    return h.hexdigest()[:16]


def cache_dir(kind: str, sources: list[Path], params: dict, tool_version: str = "") -> Path:
    """``<cache root>/<kind>/<hash>``: the directory for one build, created if missing.

    The hash covers the sources' contents, ``params`` (top module, parameters, flags...) and
    ``tool_version``, so a change to any of them gives a fresh directory and an unchanged design
    reuses the old one.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", kind):
        raise ValueError(f"cache kind must be a plain name, got {kind!r}")
    path = cache_root() / kind / content_hash(sources, params, extra=tool_version)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path/.lock``: concurrent test processes build a design once."""
    with open(path / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_complete(build_dir: Path) -> bool:
    """True when ``build_dir`` holds a finished build (its completion marker exists)."""
    return (Path(build_dir) / _MARKER).is_file()


def cached_build(kind: str, sources: list[Path], params: dict, build: Callable[[Path], None],
                 tool_version: str = "") -> tuple[Path, bool]:
    """Build once per content hash: call ``build(dir)`` unless ``dir`` already holds a build.

    Returns ``(build_dir, built_now)``. Holds a file lock while checking and building, so two
    processes asking for the same design wait for one build. ``build`` must raise on failure
    (e.g. :class:`ToolError`); the directory is then left unmarked and the next call retries.
    """
    build_dir = cache_dir(kind, sources, params, tool_version)
    with _locked(build_dir):
        if is_complete(build_dir):
            return build_dir, False
        t0 = time.perf_counter()
        build(build_dir)
        (build_dir / _MARKER).write_text(json.dumps({
            "kind": kind,
            "sources": [str(s) for s in sources],
            "params": params,
            "tool_version": tool_version,
            "build_seconds": round(time.perf_counter() - t0, 3),
        }, indent=2, default=str))
    return build_dir, True


def build_seconds(build_dir: Path) -> float | None:
    """How long the cached build in ``build_dir`` took when it was made (None if unknown)."""
    try:
        return float(json.loads((Path(build_dir) / _MARKER).read_text())["build_seconds"])
    except (OSError, ValueError, KeyError):
        return None
