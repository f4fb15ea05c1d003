"""A calibrated sweep point: a known amount of work and a deterministic result.

Used to measure the scheduler itself (``make bench``: overhead per point = wall time beyond the
points' own time) and by the tests of the runner's mechanics (retries, resume), where a real
point's minute of training would add nothing but time.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path


def busy_point(value: int, seconds: float = 0.5, pid_file: str = "", gate: str = "") -> dict:
    """Spin for ``seconds`` (CPU work, not a sleep) and return a digest of ``value``. With
    ``pid_file``, write this process's pid there first (a test kills it mid-point); with ``gate``,
    wait until that file exists first (a test holds a sweep at a known point, whatever the load)."""
    if pid_file:
        Path(pid_file).write_text(str(os.getpid()))
    while gate and not Path(gate).exists():
        time.sleep(0.02)
    end = time.perf_counter() + seconds
    h = hashlib.sha256(str(value).encode())
    while time.perf_counter() < end:
        h = hashlib.sha256(h.digest())
    return {"value": value, "digest": hashlib.sha256(str(value).encode()).hexdigest()[:16]}
