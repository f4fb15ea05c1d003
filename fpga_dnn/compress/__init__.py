"""Compression: pruning, structured pruning, low-rank factorisation, weight sharing, knowledge
distillation and bit-width search, each followed by QAT fine-tuning, and the accuracy-vs-hardware
Pareto report (:mod:`.pareto`).

Every technique takes a trained QKeras model and the dataset and returns ``(model, info)``; the
flow's ``compress`` step (``[compress]`` table) applies a list of them in order and hands the
result to ``convert`` like any trained model, so compressed models take the same convert ->
C-sim -> RTL path and are checked bit-exact the same way. Hardware cost comes from the RTL this
project generates (:mod:`.cost`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError, UnknownNameError
from ..log import progress

TECHNIQUES = ("prune", "structured", "lowrank", "cluster", "distill", "bitwidth")


@dataclass
class CompressOptions:
    """The ``[compress]`` table of a flow file: techniques run in the order given."""

    techniques: list = field(default_factory=list)
    epochs: int = 40                # fine-tuning epochs after each technique (early stopping)
    learning_rate: float = 1e-3
    patience: int = 10
    sparsity: float = 0.5           # prune: fraction of zero weights per kernel
    structured_fraction: float = 0.25  # structured: fraction of neurons/filters removed per hidden layer
    energy: float = 0.9             # lowrank: singular-value energy kept (or give rank)
    rank: int = 0                   # lowrank: fixed rank (0 = use energy)
    bottleneck_bits: int = 8        # lowrank: width of the quantized bus between the two factors
    clusters: int = 16              # cluster: shared values per kernel
    temperature: float = 4.0        # distill
    alpha: float = 0.1              # distill: weight of the hard-label loss
    teacher: str = ""               # distill: float teacher model file (default: the train step's float.h5)
    budget_luts: float = 0.0        # bitwidth: LUT budget (cost model below)
    search: str = "greedy"          # bitwidth: greedy (QKeras per-layer) | hgq2 (learned widths)
    cost_model: str = "da4ml"       # da4ml (fast RTL estimate) | yosys (synth_xilinx)
    train_data: str = ""            # a model file's training data (.npz: x_train, y_train); zoo: its dataset
    # Where a bit-width search's independent evaluations run (greedy: each round's probes; hgq2:
    # one training per beta): 1 = in this process; N = a local Ray with N workers; ray_address = an
    # existing cluster. store: their results folder (default <build>/compress/store when on Ray).
    workers: int = 1
    ray_address: str = ""
    store: str = ""

    #: Keys that say where the work runs, not what it computes (kept out of a step's inputs hash).
    PLACEMENT = ("workers", "ray_address", "store")

    def check(self) -> "CompressOptions":
        from .bitwidth import METHODS
        from .cost import COST_MODELS

        if not isinstance(self.techniques, list):
            raise ConfigError(f"[compress] techniques must be a list, got {self.techniques!r}")
        for t in self.techniques:
            if t not in TECHNIQUES:
                raise UnknownNameError("compression technique", t, TECHNIQUES)
        if len(set(self.techniques)) != len(self.techniques):
            raise ConfigError(f"[compress] techniques lists one twice: {self.techniques}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"[compress] epochs must be an integer >= 0, got {self.epochs!r}")
        ranges = [("sparsity", 0.0 <= self.sparsity < 1.0, "in [0, 1): 1.0 would remove every weight"),
                  ("structured_fraction", 0.0 <= self.structured_fraction < 1.0, "in [0, 1)"),
                  ("energy", 0.0 < self.energy <= 1.0, "in (0, 1]"),
                  ("rank", isinstance(self.rank, int) and self.rank >= 0, "an integer >= 1 (0 = use energy)"),
                  ("bottleneck_bits", 2 <= self.bottleneck_bits <= 24, "in 2..24"),
                  ("clusters", isinstance(self.clusters, int) and self.clusters >= 2, "an integer >= 2"),
                  ("temperature", self.temperature > 0, "> 0"),
                  ("alpha", 0.0 <= self.alpha <= 1.0, "in [0, 1]")]
        for key, ok, rule in ranges:
            if not ok:
                raise ConfigError(f"[compress] {key} = {getattr(self, key)!r}: must be {rule}")
        if "bitwidth" in self.techniques and not self.budget_luts > 0:
            raise ConfigError("[compress] bitwidth needs budget_luts > 0 (LUTs by the cost model)")
        if self.search not in METHODS:
            raise UnknownNameError("bit-width search", self.search, METHODS)
        if self.cost_model not in COST_MODELS:
            raise UnknownNameError("cost model", self.cost_model, COST_MODELS)
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"[compress] workers = {self.workers!r}: must be an integer >= 1")
        return self

    def runner(self, default_store=None):
        """Where the bit-width search's evaluations run (:class:`~.search_tasks.SearchRunner`)."""
        from .search_tasks import SearchRunner

        on_ray = self.workers > 1 or bool(self.ray_address)
        store = self.store or (str(default_store) if on_ray and default_store is not None else None)
        return SearchRunner(self.workers, self.ray_address or None, store)

    def fine_tune(self):
        from .finetune import FineTune

        return FineTune(epochs=self.epochs, learning_rate=self.learning_rate, patience=self.patience)


def compress_options(raw: dict) -> CompressOptions:
    bad = set(raw) - set(CompressOptions.__dataclass_fields__)
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in [compress]; known: "
                          f"{sorted(CompressOptions.__dataclass_fields__)}")
    try:
        return CompressOptions(**raw).check()
    except TypeError as err:
        raise ConfigError(f"[compress]: {err}") from None


def apply(model, ds, opts: CompressOptions, *, teacher=None, zoo: str | None = None, x_calib=None,
          cost_options: dict | None = None, store_dir=None):
    """Apply ``opts.techniques`` in order; returns ``(model, [info per technique])``.

    ``cost_options``: keyword arguments of :func:`~fpga_dnn.compress.cost.hardware_cost` (the
    flow's conversion and RTL options and target), so that a search prices the design the flow builds.
    ``store_dir``: the search's results folder when it runs on Ray and ``opts.store`` is unset."""
    from . import bitwidth, cluster, distill, lowrank, prune

    opts.check()
    ft = opts.fine_tune()
    infos = []
    for t in opts.techniques:
        progress(f"compress: {t}")
        if t == "prune":
            model, info = prune.magnitude_prune(model, ds, opts.sparsity, ft)
        elif t == "structured":
            model, info = prune.structured_prune(model, ds, opts.structured_fraction, ft)
        elif t == "lowrank":
            model, info = lowrank.low_rank(model, ds, energy=opts.energy, rank=opts.rank or None,
                                           bottleneck_bits=opts.bottleneck_bits, ft=ft)
        elif t == "cluster":
            model, info = cluster.cluster_weights(model, ds, opts.clusters, ft)
        elif t == "distill":
            model, info = distill.distill(model, ds, opts.teacher or teacher, temperature=opts.temperature,
                                          alpha=opts.alpha, ft=ft)
        else:
            res = bitwidth.search_bitwidths(model, ds, opts.budget_luts, method=opts.search, zoo=zoo,
                                            x_calib=x_calib, cost_model=opts.cost_model,
                                            cost_options=cost_options, runner=opts.runner(store_dir),
                                            **({"ft": ft} if opts.search == "greedy" else {}))
            bitwidth.require_met(res, opts.budget_luts)
            model, info = res.model, res.info(opts.budget_luts)
        infos.append(info)
    return model, infos


__all__ = ["TECHNIQUES", "CompressOptions", "compress_options", "apply"]
