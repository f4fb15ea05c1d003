"""Running a sweep's tasks: in this process, or on Ray (local by default, a cluster by address).

See :mod:`fpga_dnn.sweep` for the model. Each task runs :func:`execute` wherever it lands:
look the key up in the store (done already: return that record), record the attempt, call the
function, store the record (first complete attempt wins). So a task that Ray retries after a
worker died, or a re-run after Ctrl-C, never counts a point twice.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..errors import FpgaDnnError
from ..log import progress
from .store import ResultStore, worker_name

#: Ray retries a task whose worker process died this many times (on any worker).
MAX_RETRIES = 3


class TaskFailure(FpgaDnnError):
    """A sweep point failed (its error and log are in the record; the sweep goes on)."""


@dataclass
class Task:
    """One point: ``key`` (content hash of what produces it), ``fn`` (``'module:function'``,
    importable on every worker), ``kwargs`` (plain data), ``label`` (for progress lines)."""

    key: str
    fn: str
    kwargs: Dict[str, Any] = field(default_factory=dict)
    label: str = ""


def _function(path: str) -> Callable:
    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def execute(task: Task, store_root: str) -> Dict[str, Any]:
    """Run one task here (a Ray worker or the driver) and return its record (see module doc).

    The record: ``key``, ``label``, ``result`` (what the function returned) or ``error`` (one
    line) with ``log`` (what the attempt printed), ``seconds`` (the function's wall time),
    ``worker`` (host:pid), ``stored_by_this_attempt``.
    """
    store = ResultStore(store_root)
    done = store.get(task.key)
    if done is not None:
        return {**done, "stored_by_this_attempt": False}
    attempt = store.begin(task.key, task.label)
    t0 = time.perf_counter()
    record: Dict[str, Any] = {"key": task.key, "label": task.label, "worker": worker_name()}
    try:
        with open(attempt.log, "w") as log, contextlib.redirect_stderr(log):
            result = _function(task.fn)(**task.kwargs)
    except Exception as err:  # noqa: BLE001 - a failed point keeps its error; the sweep goes on
        line = str(err).splitlines()[0] if str(err) else type(err).__name__
        with open(attempt.log, "a") as log:
            traceback.print_exc(file=log)
        attempt.end("error", error=line)
        return {**record, "error": f"{type(err).__name__}: {line}", "log": str(attempt.log),
                "seconds": time.perf_counter() - t0, "stored_by_this_attempt": False}
    record.update(result=result, seconds=time.perf_counter() - t0, log=str(attempt.log), finished=time.time())
    stored = store.put(task.key, record)
    attempt.end("stored" if stored else "duplicate")
    final = record if stored else store.get(task.key)
    return {**final, "stored_by_this_attempt": stored}


def _ray():
    try:
        import ray
    except ImportError as err:   # the lock file installs it; say how if it is missing
        raise FpgaDnnError(f"sweeps with workers > 1 need Ray ({err}); install requirements/toolchain.lock") from None
    return ray


@contextlib.contextmanager
def ray_session(workers: int, address: Optional[str]):
    """Ray for the sweep: connect to ``address`` or start a local Ray with ``workers`` CPUs
    (stopped again at the end). Yields the ``ray`` module."""
    ray = _ray()
    started = False
    if not ray.is_initialized():
        env = {"env_vars": {k: os.environ[k] for k in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONHASHSEED", "FPGA_DNN_QUIET")
                            if k in os.environ}}
        kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False, runtime_env=env)
        if address:
            ray.init(address=address, **kwargs)
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(num_cpus=workers, **kwargs)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _eta(done: List[Dict[str, Any]], left: int, workers: int) -> str:
    secs = [r["seconds"] for r in done if "seconds" in r]
    if not secs or not left:
        return ""
    eta = sum(secs) / len(secs) * left / max(1, workers)
    return f", ETA {int(eta // 60)}m{int(eta % 60):02d}s"


def run_tasks(tasks: List[Task], store: ResultStore, *, workers: int = 1, ray_address: Optional[str] = None,
              what: str = "sweep", on_record: Optional[Callable[[Dict[str, Any]], None]] = None,
              stats: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """Every task's record, in task order: from the store when finished before, else computed
    (see the module docstring). Failed points come back with ``error`` and ``log``; the others
    still run. Progress lines: done / in flight / failed, ETA. ``stats`` (a dict) receives the
    timing: ``startup_s`` (starting or joining Ray), ``tasks_wall_s`` (first submission to last
    result), ``computed``, ``reused``, ``failed``."""
    if workers < 1:
        raise FpgaDnnError(f"workers must be >= 1, got {workers}")
    records: Dict[str, Dict[str, Any]] = {}
    todo = []
    for t in tasks:
        rec = store.get(t.key)
        if rec is not None:
            records[t.key] = {**rec, "reused": True}
        elif t.key not in {x.key for x in todo}:
            todo.append(t)
    reused = len(records)
    total = len(todo)
    failed = 0
    finished: List[Dict[str, Any]] = []

    def note(rec: Dict[str, Any], running: int) -> None:
        nonlocal failed
        records[rec["key"]] = rec
        finished.append(rec)
        failed += "error" in rec
        state = f"failed: {rec['error']} (log {rec.get('log')})" if "error" in rec else \
            f"{rec.get('seconds', 0):.1f} s on {rec.get('worker')}"
        progress(f"{what}: {rec.get('label') or rec['key']}: {state} — {len(finished)}/{total} done"
                 f"{f' ({reused} reused)' if reused else ''}, {running} in flight, {failed} failed"
                 f"{_eta(finished, total - len(finished), workers)}")
        if on_record is not None:
            on_record(rec)

    if total:
        where = "in this process" if workers == 1 and not ray_address else \
            f"on Ray ({ray_address or 'local'}, {workers} workers)"
        progress(f"{what}: {total} point(s) to compute ({reused} already in {store.root}), {where}")
    t_start = time.perf_counter()
    t_tasks = t_start
    if workers == 1 and not ray_address:
        for t in todo:
            note(execute(t, str(store.root)), 0)
    elif todo:
        with ray_session(workers, ray_address) as ray:
            t_tasks = time.perf_counter()
            remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(execute)
            refs = {remote.remote(t, str(store.root)): t for t in todo}
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=30.0)
                for ref in ready:
                    t = refs.pop(ref)
                    try:
                        rec = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - retries exhausted (worker deaths)
                        rec = store.get(t.key) or {"key": t.key, "label": t.label,
                                                   "error": f"{type(err).__name__}: {str(err).splitlines()[0]}",
                                                   "log": str(store.root / "attempts" / t.key)}
                    note(rec, len(refs))
            t_end = time.perf_counter()
    if stats is not None:
        end = t_end if todo and (workers > 1 or ray_address) else time.perf_counter()
        stats.update(startup_s=t_tasks - t_start, tasks_wall_s=end - t_tasks, computed=len(finished) - failed,
                     reused=reused, failed=failed, workers=workers,
                     point_seconds=sum(r.get("seconds", 0.0) for r in finished))
    return [records[t.key] for t in tasks]


def results(records: List[Dict[str, Any]]) -> List[Any]:
    """The ``result`` of each record; :class:`TaskFailure` naming the first failed point."""
    for r in records:
        if "error" in r:
            raise TaskFailure(f"sweep point {r.get('label') or r['key']} failed: {r['error']} (log: {r.get('log')})")
    return [r["result"] for r in records]

