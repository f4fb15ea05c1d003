"""The results store of a sweep: one JSON record per point, keyed by content hash, in a folder.

Layout (under ``root``)::

    results/<key>.json        the point's record (written once, atomically: the first attempt
                              that completes wins; os.link refuses to replace an existing file)
    attempts/<key>/<id>.json  one per attempt: worker (host:pid), start time, and when it ended,
                              its outcome; ``<id>.log`` holds what the attempt printed

The folder is the only state a sweep has: a driver that dies loses nothing, a second driver
(or a re-run) sees every finished point. On a cluster it must be a folder every node reaches at
the same path.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, Optional


class ResultStore:
    """Point records by key in ``root`` (created if missing); see the module docstring."""

    def __init__(self, root):
        self.root = Path(root)
        (self.root / "results").mkdir(parents=True, exist_ok=True)
        (self.root / "attempts").mkdir(parents=True, exist_ok=True)

    def _result(self, key: str) -> Path:
        return self.root / "results" / f"{key}.json"

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        """The stored record of ``key``, or ``None``."""
        try:
            return json.loads(self._result(key).read_text())
        except FileNotFoundError:
            return None

    def put(self, key: str, record: Dict[str, Any]) -> bool:
        """Store ``record`` under ``key`` unless a record is there already; True if this call
        stored it. Atomic: readers never see a partial file, two writers never both win."""
        final = self._result(key)
        tmp = final.with_name(f".{key}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str))
        try:
            os.link(tmp, final)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        return (p.stem for p in (self.root / "results").glob("*.json"))

    # -- attempts -------------------------------------------------------------------------------------
    def begin(self, key: str, label: str) -> "Attempt":
        """Record that an attempt at ``key`` starts here (this process)."""
        return Attempt(self.root / "attempts" / key, label)

    def attempts(self, key: str) -> list:
        """Every attempt record of ``key`` (oldest first)."""
        folder = self.root / "attempts" / key
        recs = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
        return sorted(recs, key=lambda r: r.get("started", 0))


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Attempt:
    """One attempt's record file and log file."""

    def __init__(self, folder: Path, label: str):
        folder.mkdir(parents=True, exist_ok=True)
        ident = uuid.uuid4().hex[:12]
        self.path = folder / f"{ident}.json"
        self.log = folder / f"{ident}.log"
        self.record = {"label": label, "worker": worker_name(), "pid": os.getpid(), "started": time.time(),
                       "log": str(self.log)}
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record, indent=2))
        tmp.replace(self.path)

    def end(self, outcome: str, **extra) -> None:
        self.record.update(outcome=outcome, ended=time.time(), **extra)
        self._write()
