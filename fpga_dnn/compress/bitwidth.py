"""Bit-width search under a resource budget.

Two methods, both judged by the same hardware cost model (:mod:`.cost`):

* ``greedy`` (QKeras): per-layer widths. Each round tries one bit less on every knob (each
  kernel layer's weights, each quantized activation), measures the cost drop with the cost
  model and the validation-accuracy drop without retraining (a sensitivity probe), takes the
  knob with the most LUTs saved per point of accuracy lost, and fine-tunes. It stops at the
  first model within the budget; the answer is the best validation accuracy among the models
  it trained that are within the budget.
* ``hgq2``: HGQ2 learns per-weight and per-activation widths with a resource penalty (EBOPs)
  weighted by ``beta``; the search trains one model per ``beta`` and keeps the best validation
  accuracy within the budget.

A budget nothing reaches is not an exception here: the result says ``met = False`` and gives
the smallest model found; :func:`require_met` turns that into a clear error for the flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import kerasenv
from ..errors import ConfigError
from ..log import progress
from ..train import TrainConfig, _fit, accuracy, validation_split
from .chain import KERNEL_LAYERS, activation_bits, from_chain, quantizer_config, set_activation_bits, \
    set_weight_bits, to_chain
from .cost import HardwareCost, hardware_cost
from .finetune import FineTune, fine_tune
from .search_tasks import SearchRunner

METHODS = ("greedy", "hgq2")


class BudgetError(ConfigError):
    """No model the search found meets the budget; the message names the best achieved."""


@dataclass
class SearchResult:
    model: object
    met: bool
    cost: HardwareCost
    val_accuracy: float
    test_accuracy: float
    bits: dict
    history: list = field(default_factory=list)
    method: str = "greedy"

    def info(self, budget: float) -> dict:
        return {"technique": "bitwidth", "method": self.method, "budget_luts": budget, "met": self.met,
                "luts": self.cost.luts, "bits": self.bits, "val_accuracy": self.val_accuracy,
                "accuracy": self.test_accuracy, "history": self.history}


def require_met(res: SearchResult, budget: float) -> SearchResult:
    if not res.met:
        raise BudgetError(f"bit-width search: no model within {budget:,.0f} LUT; the smallest found uses "
                          f"{res.cost.luts:,.0f} LUT ({res.cost.cost_model}) at bits {res.bits} with validation "
                          f"accuracy {res.val_accuracy:.4f}. Raise the budget or combine with pruning.")
    return res


def _check_budget(budget) -> float:
    if not isinstance(budget, (int, float)) or budget <= 0:
        raise ConfigError(f"budget_luts must be a positive number of LUTs, got {budget!r}")
    return float(budget)


def _val_accuracy(model, ds, cfg: TrainConfig) -> float:
    _, val = validation_split(len(ds.x_train), cfg)
    return accuracy(model, ds.x_train[val], ds.y_train[val])


def knob_bits(chain) -> dict:
    """Knob name -> current bits: ``<layer>.w`` for kernel layers, ``<layer>.a`` for activations."""
    out = {}
    for spec in chain.layers:
        if spec.kind in KERNEL_LAYERS and quantizer_config(spec):
            out[f"{spec.name}.w"] = int(quantizer_config(spec)["bits"])
        elif activation_bits(spec):
            out[f"{spec.name}.a"] = activation_bits(spec)[1]
    return out


def with_bits(chain, knob: str, bits: int):
    """A copy of ``chain`` with one knob at ``bits`` (integer bits kept)."""
    c = chain.copy()
    spec = c.layers[c.index(knob[:-2])]
    (set_weight_bits if knob.endswith(".w") else set_activation_bits)(spec, bits)
    return c


def _min_bits(chain, knob: str, floor: int) -> int:
    spec = chain.layers[chain.index(knob[:-2])]
    integer = int(quantizer_config(spec)["integer"]) + 1 if knob.endswith(".w") else activation_bits(spec)[2]
    return max(floor, integer + 1)


def _probe(model, chain, knobs, ds, cfg, x_calib, cost_model, cost_options, runner: SearchRunner):
    """``(cost, validation accuracy)`` of ``model`` with each ``(knob, bits)`` of ``knobs`` applied
    alone (weights kept, no retraining): inline, or as sweep tasks (see :mod:`.search_tasks`)."""
    if not runner.as_tasks:
        out = []
        for knob, bits in knobs:
            m = from_chain(with_bits(chain, knob, bits))
            out.append((hardware_cost(m, x_calib, cost_model, **(cost_options or {})), _val_accuracy(m, ds, cfg)))
        return out
    from ..sweep import Task
    from .search_tasks import plain_cost_options, probe_task, save_arrays, save_model, task_key

    _, val = validation_split(len(ds.x_train), cfg)
    kw = {"model_path": str(save_model(model, runner)),
          "data_path": str(save_arrays(runner, x_val=ds.x_train[val], y_val=ds.y_train[val], x_calib=x_calib)),
          "cost_model": cost_model, "cost_options": plain_cost_options(cost_options)}
    tasks = [Task(task_key("probe", **kw, knob=k, bits=b), f"{probe_task.__module__}:probe_task",
                  {**kw, "knob": k, "bits": b}, label=f"{k} -> {b} bits") for k, b in knobs]
    return [(HardwareCost(**r["cost"]), r["val_accuracy"]) for r in runner.run(tasks, "bit-width probes")]


def greedy_search(model, ds, budget_luts: float, *, x_calib=None, min_bits: int = 3, max_rounds: int = 30,
                  ft: FineTune | None = None, cost_model: str = "da4ml", cost_options: dict | None = None,
                  runner: SearchRunner | None = None) -> SearchResult:
    """See the module docstring. ``runner``: where each round's probes run (default: inline)."""
    budget = _check_budget(budget_luts)
    runner = runner or SearchRunner()
    ft = ft or FineTune(epochs=15, patience=5)
    x_calib = ds.x_test if x_calib is None else x_calib
    cfg = ft.train_config()
    chain = to_chain(model, "bit-width search")
    if not knob_bits(chain):
        raise ConfigError("bit-width search needs QKeras quantizers (kernel quantized_bits, quantized_relu "
                          "activations); this model has none")
    cost = hardware_cost(model, x_calib, cost_model, **(cost_options or {}))
    val = _val_accuracy(model, ds, cfg)
    trained = [(model, cost, val, knob_bits(chain))]
    history = [{"bits": knob_bits(chain), "luts": cost.luts, "val_accuracy": val}]
    progress(f"bit-width search (greedy): start {knob_bits(chain)}: {cost.luts:,.0f} LUT, val acc {val:.4f}; "
             f"budget {budget:,.0f} LUT")
    rounds = 0
    while cost.luts > budget and rounds < max_rounds:
        rounds += 1
        best = None
        knobs = [(k, b - 1) for k, b in knob_bits(chain).items() if b - 1 >= _min_bits(chain, k, min_bits)]
        for (knob, bits), (c, cand_val) in zip(knobs, _probe(model, chain, knobs, ds, cfg, x_calib, cost_model,
                                                              cost_options, runner)):
            saved = cost.luts - c.luts
            if saved <= 0:
                continue
            drop = max(val - cand_val, 1e-3)
            score = saved / drop
            if best is None or score > best[0]:
                best = (score, knob, bits)
        if best is None:
            break
        _, knob, bits = best
        chain = with_bits(chain, knob, bits)
        model = from_chain(chain)
        fine_tune(model, ds, ft, f"bits {knob}")
        cost = hardware_cost(model, x_calib, cost_model, **(cost_options or {}))  # retrained weights: cost again
        chain = to_chain(model)
        val = _val_accuracy(model, ds, cfg)
        bits = knob_bits(chain)
        trained.append((model, cost, val, bits))
        history.append({"bits": bits, "luts": cost.luts, "val_accuracy": val, "changed": knob})
        progress(f"bit-width search: round {rounds}: {knob} -> {bits[knob]} bits: {cost.luts:,.0f} LUT, "
                 f"val acc {val:.4f}")
    within = [t for t in trained if t[1].luts <= budget]
    pick = max(within, key=lambda t: t[2]) if within else min(trained, key=lambda t: t[1].luts)
    return SearchResult(pick[0], bool(within), pick[1], pick[2], accuracy(pick[0], ds.x_test, ds.y_test), pick[3], history)


def hgq2_search(zoo: str, ds, budget_luts: float, *, betas=(1e-6, 1e-5, 3e-5, 1e-4), quant=None,
                train_cfg: TrainConfig | None = None, x_calib=None, cost_model: str = "da4ml",
                cost_options: dict | None = None, runner: SearchRunner | None = None) -> SearchResult:
    """Train the zoo architecture with HGQ2 once per ``beta``; keep the best within the budget.
    ``runner``: where the trainings run (default: one after another, inline)."""
    from ..models import Quant, build_model

    budget = _check_budget(budget_luts)
    if not betas or any(not b >= 0 for b in betas):
        raise ConfigError(f"betas must be a non-empty list of numbers >= 0, got {betas!r}")
    cfg = train_cfg or TrainConfig(float_baseline=False)
    x_calib = ds.x_test if x_calib is None else x_calib
    runner = runner or SearchRunner()
    trained, history = [], []
    for beta, (m, c, val) in zip(betas, _hgq2_trainings(zoo, betas, quant or Quant(), cfg, ds, x_calib, cost_model,
                                                         cost_options, runner)):
        trained.append((m, c, val, {"beta": beta}))
        history.append({"beta": beta, "luts": c.luts, "val_accuracy": val})
        progress(f"bit-width search (hgq2): beta {beta:g}: {c.luts:,.0f} LUT, val acc {val:.4f}")
    within = [t for t in trained if t[1].luts <= budget]
    pick = max(within, key=lambda t: t[2]) if within else min(trained, key=lambda t: t[1].luts)
    return SearchResult(pick[0], bool(within), pick[1], pick[2], accuracy(pick[0], ds.x_test, ds.y_test), pick[3], history,
                        method="hgq2")


def _hgq2_trainings(zoo, betas, quant, cfg, ds, x_calib, cost_model, cost_options, runner: SearchRunner):
    """``(model, cost, validation accuracy)`` per beta: inline, or as sweep tasks."""
    from ..models import build_model

    if not runner.as_tasks:
        out = []
        for beta in betas:
            m = build_model(zoo, "hgq2", quant, seed=cfg.seed, hgq_beta=float(beta))
            fit_hgq2(m, ds, cfg, f"hgq2 beta={beta:g}")
            out.append((m, hardware_cost(m, x_calib, cost_model, **(cost_options or {})), _val_accuracy(m, ds, cfg)))
        return out
    from dataclasses import asdict

    from ..modelio import load_model
    from ..sweep import Task
    from .search_tasks import hgq2_task, plain_cost_options, save_arrays, task_key

    kw = {"zoo": zoo, "quant": asdict(quant), "train": asdict(cfg), "cost_model": cost_model,
          "cost_options": plain_cost_options(cost_options),
          "data_path": str(save_arrays(runner, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
                                       y_test=ds.y_test, x_calib=x_calib))}
    tasks = [Task(task_key("hgq2", **kw, beta=float(b)), f"{hgq2_task.__module__}:hgq2_task",
                  {**kw, "beta": float(b), "store": str(runner.store)}, label=f"hgq2 beta={b:g}") for b in betas]
    return [(load_model(r["model_path"])[0], HardwareCost(**r["cost"]), r["val_accuracy"])
            for r in runner.run(tasks, "hgq2 trainings")]


def fit_hgq2(model, ds, cfg: TrainConfig, label: str) -> dict:
    """Train an HGQ2 model for the full epoch count and keep the last weights. Early stopping on the
    validation loss (cross-entropy) would restore an early epoch, before the resource penalty has
    narrowed the widths: a larger beta then came out *larger* (measured on digits_mlp)."""
    from dataclasses import replace

    return _fit(model, kerasenv.keras3(), ds, replace(cfg, patience=cfg.epochs), label, restore_best=False)


def search_bitwidths(model, ds, budget_luts: float, method: str = "greedy", zoo: str | None = None, **kw):
    if method not in METHODS:
        raise ConfigError(f"unknown bit-width search method {method!r}; known: {', '.join(METHODS)}")
    if method == "hgq2":
        if zoo is None:
            raise ConfigError("the hgq2 bit-width search trains the architecture anew: it needs a zoo model name")
        return hgq2_search(zoo, ds, budget_luts, **kw)
    return greedy_search(model, ds, budget_luts, **kw)

