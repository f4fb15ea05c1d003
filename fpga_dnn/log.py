"""Progress lines for long steps (stderr, flushed, so they show under pipes and in CI logs)."""

from __future__ import annotations

import os
import sys
import time

_T0 = time.perf_counter()
QUIET = os.environ.get("FPGA_DNN_QUIET") == "1"


def progress(msg: str) -> None:
    if not QUIET:
        print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)
