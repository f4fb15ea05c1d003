"""The bit-width searches' independent evaluations as sweep tasks (in this process or on Ray).

A greedy round probes every knob one bit narrower (a conversion and a cost estimate each, no
training); the HGQ2 search trains one model per ``beta``. Those evaluations do not depend on
each other, so they run through :func:`fpga_dnn.sweep.run_tasks` like the Pareto sweep's
points: each is keyed by the content hash of what produces it (the model file's bytes, the
data's bytes, the knob and width or the beta, the cost options, the package versions), its
record lives in the store, a re-run or a resumed search recomputes nothing that finished, and
a worker that dies has its task retried elsewhere.

The model and data a task reads are files in the store's ``inputs/`` folder, named by their own
content hash, so every node that reaches the store reads exactly what the driver wrote.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ConfigError


@dataclass
class SearchRunner:
    """Where a search's evaluations run.

    ``workers``: 1 = in this process; N = a local Ray with N worker processes, started and
    stopped by the search. ``ray_address``: an existing Ray cluster instead (every node needs the
    project's environment and ``store`` at the same path). ``store``: the results folder; with a
    store a search is resumable even in this process. Without one (and one worker) the
    evaluations run inline, as before: nothing is written.
    """

    workers: int = 1
    ray_address: Optional[str] = None
    store: Optional[str] = None

    def __post_init__(self):
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"search workers must be an integer >= 1, got {self.workers!r}")
        if (self.workers > 1 or self.ray_address) and not self.store:
            raise ConfigError("a search on Ray needs a results store folder (every worker writes its records there)")

    @property
    def as_tasks(self) -> bool:
        return bool(self.store)

    def run(self, tasks, what: str):
        from ..sweep import ResultStore, run_tasks
        from ..sweep.runner import results

        return results(run_tasks(tasks, ResultStore(self.store), workers=self.workers,
                                 ray_address=self.ray_address, what=what))


def _stored(folder: Path, stem: str, suffix: str, write) -> Path:
    """``write(tmp)`` once, then the file renamed to ``<stem>_<sha256[:16]><suffix>`` in ``folder``
    (atomic; a file of that content already there is reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{stem}.{os.getpid()}{suffix}"
    write(tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:16]
    final = folder / f"{stem}_{digest}{suffix}"
    if final.is_file():
        tmp.unlink()
    else:
        os.replace(tmp, final)
    return final


def save_model(model, runner: SearchRunner) -> Path:
    suffix = ".keras" if _is_hgq2(model) else ".h5"
    return _stored(Path(runner.store) / "inputs", "model", suffix, lambda p: model.save(p))


def save_arrays(runner: SearchRunner, **arrays) -> Path:
    from ..runtime.golden import save_npz

    # deterministic bytes: the file's content hash names it and keys the tasks that read it
    return _stored(Path(runner.store) / "inputs", "data", ".npz", lambda p: save_npz(p, **arrays))


def _is_hgq2(model) -> bool:
    from ..modelio import framework_of

    return framework_of(model) == "hgq2"


def plain_cost_options(cost_options: dict | None) -> dict:
    """``cost_options`` as plain data (the flow's ConvertOptions as a dict) for a task's kwargs."""
    out = dict(cost_options or {})
    if out.get("convert_options") is not None and not isinstance(out["convert_options"], dict):
        out["convert_options"] = asdict(out["convert_options"])
    return out


def _cost_options(plain: dict) -> dict:
    from ..convert import ConvertOptions

    out = dict(plain)
    if isinstance(out.get("convert_options"), dict):
        out["convert_options"] = ConvertOptions(**out["convert_options"])
    return out


def task_key(kind: str, **inputs) -> str:
    from ..artifacts import file_hash, inputs_hash
    from .pareto import versions

    files = {k: file_hash(v) for k, v in inputs.items() if k.endswith("_path")}
    rest = {k: v for k, v in inputs.items() if not k.endswith("_path")}
    return f"{kind}_{inputs_hash({'kind': kind, 'files': files, **rest, 'versions': versions()})}"


# ---------------------------------------------------------------------------------------------
# the tasks (plain data in, plain data out; run on any worker)

def probe_task(model_path: str, data_path: str, knob: str, bits: int, cost_model: str, cost_options: dict) -> dict:
    """One greedy probe: the model with ``knob`` at ``bits`` (weights kept), priced by the cost
    model and scored on the validation split, without retraining."""
    from ..modelio import load_model
    from ..train import accuracy
    from .bitwidth import with_bits
    from .chain import from_chain, to_chain
    from .cost import hardware_cost

    model, _ = load_model(model_path)
    with np.load(data_path, allow_pickle=False) as d:
        x_val, y_val, x_calib = d["x_val"], d["y_val"], d["x_calib"]
    m = from_chain(with_bits(to_chain(model, "bit-width search"), knob, bits))
    cost = hardware_cost(m, x_calib, cost_model, **_cost_options(cost_options))
    return {"cost": cost.as_dict(), "val_accuracy": float(accuracy(m, x_val, y_val))}


def hgq2_task(zoo: str, beta: float, quant: dict, train: dict, data_path: str, cost_model: str,
              cost_options: dict, store: str) -> dict:
    """One HGQ2 training at ``beta``: the model file (in the store), its cost and validation accuracy."""
    from ..models import Quant, build_model
    from ..train import TrainConfig, accuracy, validation_split
    from .bitwidth import fit_hgq2
    from .cost import hardware_cost

    cfg = TrainConfig(**train)
    with np.load(data_path, allow_pickle=False) as d:
        ds = _Arrays(**{k: d[k] for k in d.files})
    m = build_model(zoo, "hgq2", Quant(**quant), seed=cfg.seed, hgq_beta=float(beta))
    fit_hgq2(m, ds, cfg, f"hgq2 beta={beta:g}")
    cost = hardware_cost(m, ds.x_calib, cost_model, **_cost_options(cost_options))
    _, val = validation_split(len(ds.x_train), cfg)
    path = save_model(m, SearchRunner(store=store))
    return {"model_path": str(path), "cost": cost.as_dict(),
            "val_accuracy": float(accuracy(m, ds.x_train[val], ds.y_train[val]))}


@dataclass
class _Arrays:
    """The dataset fields a training task reads (from the task's data file)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_calib: np.ndarray
    name: str = "search data"
    extra: dict = field(default_factory=dict)   # (a classifier's: no reconstruction task)
