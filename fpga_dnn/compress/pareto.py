"""The accuracy-vs-hardware Pareto report: sweep the compression techniques on a zoo model.

Each point is a trained (QAT) model that went through the same path as any flow model: hls4ml
conversion, C-sim checked bit-exact against Keras on the whole test set, and the hardware cost
of the generated RTL (:mod:`.cost`: da4ml's LUT estimate for every point; yosys
``synth_xilinx`` for the headline models, or for the whole front with ``yosys="front"``).
Outputs: ``pareto.json``, ``pareto.md`` and ``pareto.png`` (accuracy vs LUTs, the front marked,
the board LUT budgets drawn), plus each point's model in ``models/``. Points run through
:mod:`fpga_dnn.sweep` (in this process, on a local Ray, or on a cluster) and live in its store
under a content hash of what made them (model, data, recipe, training, package versions), so a
rerun only computes what changed or is missing.

The headline answers the question a user brings: the smallest model within 1 percentage point
of the float baseline's accuracy that uses fewer LUTs than the uncompressed 8-bit QAT model.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import artifacts, kerasenv, models
from ..data import load_dataset
from ..errors import ConfigError
from ..log import progress
from ..sweep.runner import Task
from ..train import TrainConfig, _fit, accuracy
from .finetune import sparsity

YOSYS_MODES = ("none", "headline", "front")


@dataclass
class Point:
    name: str
    technique: str
    detail: str
    accuracy: float
    luts: float
    dsp: int
    latency_cycles: int
    bit_exact: float
    weights: int
    sparsity: float
    yosys_luts: int | None = None
    yosys_ff: int | None = None
    yosys_dsp: int | None = None
    rtl_exact: float | None = None  # Verilator emulation of the generated Verilog = Keras (= C-sim)
    on_front: bool = False
    model_path: str = ""
    seconds: float = 0.0   # the point's own wall time
    worker: str = ""       # host:pid that computed it


@dataclass
class ParetoReport:
    model: str
    dataset: str
    float_accuracy: float
    cost_model: str
    points: list = field(default_factory=list)
    headline: dict | None = None
    boards: dict = field(default_factory=dict)  # board -> LUT budget

    def as_dict(self) -> dict:
        d = asdict(self)
        d["points"] = [asdict(p) for p in self.points]
        return d


def pareto_front(points: list[Point]) -> list[Point]:
    """Points no other point beats on both axes (fewer or equal LUTs and higher or equal accuracy,
    one strictly), by increasing LUTs."""
    front = []
    for p in points:
        dominated = any((q.luts <= p.luts and q.accuracy >= p.accuracy) and (q.luts < p.luts or q.accuracy > p.accuracy)
                        for q in points)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: p.luts)


def headline(points: list[Point], float_accuracy: float, reference: str, tolerance: float = 0.01) -> dict | None:
    """Fewest-LUT point within ``tolerance`` of the float accuracy and below the reference's LUTs."""
    ref = next((p for p in points if p.name == reference), None)
    if ref is None:
        return None
    ok = [p for p in points if p.accuracy >= float_accuracy - tolerance and p.luts < ref.luts and p.bit_exact == 1.0]
    if not ok:
        return {"found": False, "reference": ref.name, "reference_luts": ref.luts, "float_accuracy": float_accuracy,
                "tolerance": tolerance}
    best = min(ok, key=lambda p: p.luts)
    return {"found": True, "point": best.name, "accuracy": best.accuracy, "luts": best.luts,
            "yosys_luts": best.yosys_luts, "reference": ref.name, "reference_accuracy": ref.accuracy,
            "reference_luts": ref.luts, "reference_yosys_luts": ref.yosys_luts, "float_accuracy": float_accuracy,
            "tolerance": tolerance, "lut_saving": round(1 - best.luts / ref.luts, 4), "rtl_exact": best.rtl_exact}


# ---------------------------------------------------------------------------------------------
# The sweep

@dataclass
class Recipe:
    """How one point is made: a base QAT model (bits, hidden widths) and compression options."""

    name: str
    technique: str
    detail: str
    weight_bits: int = 6
    activation_bits: int = 6
    framework: str = "qkeras"
    hidden: tuple | None = None
    compress: dict = field(default_factory=dict)  # CompressOptions fields
    hgq_beta: float = 0.0


def default_recipes(base_cost: float | None = None, quick: bool = False) -> list[Recipe]:
    """The techniques swept for the report. ``base_cost``: the 6-bit model's LUTs (sets the
    bit-width search budget at half of it)."""
    r = [
        Recipe("qat_w8", "qat", "8-bit QAT, uncompressed (reference)", 8, 8),
        Recipe("qat_w6", "qat", "6-bit QAT", 6, 6),
        Recipe("prune50", "prune", "6-bit, 50% magnitude pruned", compress={"techniques": ["prune"], "sparsity": 0.5}),
        Recipe("prune75", "prune", "6-bit, 75% magnitude pruned", compress={"techniques": ["prune"], "sparsity": 0.75}),
    ]
    if quick:
        return r
    r += [
        Recipe("qat_w4", "qat", "4-bit QAT", 4, 4),
        Recipe("prune90", "prune", "6-bit, 90% magnitude pruned", compress={"techniques": ["prune"], "sparsity": 0.9}),
        Recipe("structured25", "structured", "6-bit, 25% of neurons removed",
               compress={"techniques": ["structured"], "structured_fraction": 0.25}),
        Recipe("structured50", "structured", "6-bit, 50% of neurons removed",
               compress={"techniques": ["structured"], "structured_fraction": 0.5}),
        Recipe("lowrank90", "lowrank", "6-bit, low-rank (90% energy, 6-bit bottleneck)",
               compress={"techniques": ["lowrank"], "energy": 0.9, "bottleneck_bits": 6}),
        Recipe("cluster8", "cluster", "6-bit, 8 shared weights per layer", compress={"techniques": ["cluster"], "clusters": 8}),
        Recipe("cluster4", "cluster", "6-bit, 4 shared weights per layer", compress={"techniques": ["cluster"], "clusters": 4}),
        Recipe("prune75_cluster8", "prune+cluster", "6-bit, 75% pruned then 8 shared weights",
               compress={"techniques": ["prune", "cluster"], "sparsity": 0.75, "clusters": 8}),
        Recipe("narrow_w6", "qat", "6-bit, hidden layers halved, trained on labels only", hidden=0.5),
        Recipe("narrow_w6_distill", "distill", "6-bit, hidden layers halved, distilled from the float teacher",
               hidden=0.5, compress={"techniques": ["distill"], "epochs": 120, "patience": 15,
                                     "learning_rate": 3e-3, "alpha": 0.5}),
        Recipe("hgq2_b1e-5", "hgq2", "HGQ2 learned widths, beta 1e-5", 8, 8, framework="hgq2", hgq_beta=1e-5),
        Recipe("hgq2_b1e-4", "hgq2", "HGQ2 learned widths, beta 1e-4", 8, 8, framework="hgq2", hgq_beta=1e-4),
    ]
    if base_cost:
        r.append(Recipe("bitwidth_half", "bitwidth", f"greedy per-layer widths, budget {base_cost / 2:,.0f} LUT",
                        compress={"techniques": ["bitwidth"], "budget_luts": round(base_cost / 2)}))
    return r


def versions() -> dict:
    """The versions of the packages a point's numbers depend on (part of its key)."""
    from importlib import metadata

    out = {}
    for pkg in ("tensorflow", "tf-keras", "keras", "qkeras", "hgq2", "hls4ml", "da4ml", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


_DATA_HASHES: dict = {}


def data_hash(zoo: str) -> str:
    """A content hash of the zoo model's dataset (generated or packaged: no download)."""
    import hashlib

    name = models.arch(zoo).dataset
    if name not in _DATA_HASHES:
        ds = load_dataset(name)
        h = hashlib.sha256()
        for arr in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
            h.update(memoryview(arr.tobytes()))
        _DATA_HASHES[name] = h.hexdigest()[:16]
    return _DATA_HASHES[name]


def _recipe_key(zoo: str, recipe: Recipe, train: TrainConfig) -> str:
    """What produced a point: model, data, recipe, training, package versions (a content hash)."""
    extra = {"hgq2_fit": "all epochs, last weights"} if recipe.framework == "hgq2" else {}
    return artifacts.inputs_hash({"zoo": zoo, "recipe": asdict(recipe), "train": asdict(train),
                                  "data": data_hash(zoo), "versions": versions(), **extra})


def _hidden_for(zoo: str, factor) -> tuple | None:
    if factor is None:
        return None
    return tuple(max(1, int(round(n * factor))) for n in models.arch(zoo).hidden)


def evaluate_recipes(zoo: str, out: Path, recipes: list[Recipe], train: TrainConfig, *, store, workers: int = 1,
                     ray_address: str | None = None, cost_model: str = "da4ml", bitwidth_round: bool = False,
                     what: str = "pareto"):
    """Compute (or find in ``store``) every recipe's point: ``(teacher, records, recipes)``.

    Round 1: the float teacher and the base QAT models the recipes share (so no two points
    train the same model); round 2: the recipes; with ``bitwidth_round``, round 3: the greedy
    bit-width search with a budget of half the 6-bit model's LUTs. ``records`` are the sweep
    records in the order of the returned ``recipes`` (a failed point keeps its ``error``).
    """
    from ..sweep import run_tasks
    from ..sweep.runner import results

    tr = asdict(train)
    pending = list(recipes)
    run = dict(store=store, workers=workers, ray_address=ray_address, what=what)
    base_tasks = {}
    for rec in pending:
        if rec.technique != "distill":
            b = _base_recipe(rec)
            k = _recipe_key(zoo, b, train)
            base_tasks[k] = Task(k, "fpga_dnn.compress.pareto:base_task",
                                 {"zoo": zoo, "recipe": asdict(b), "train": tr, "out": str(out)},
                                 f"base {rec.framework} w{rec.weight_bits}/a{rec.activation_bits}"
                                 + (f" hidden x{rec.hidden}" if rec.hidden else ""))
    tkey = artifacts.inputs_hash({"teacher": zoo, "train": tr, "data": data_hash(zoo), "versions": versions()})
    teacher_task = Task(tkey, "fpga_dnn.compress.pareto:teacher_task", {"zoo": zoo, "train": tr, "out": str(out)},
                        "float teacher")
    teacher = results(run_tasks([teacher_task, *base_tasks.values()], **run))[0]

    def point_tasks(recs):
        return [Task(_recipe_key(zoo, r, train), "fpga_dnn.compress.pareto:point_task",
                     {"zoo": zoo, "recipe": asdict(r), "train": tr, "out": str(out), "cost_model": cost_model,
                      "teacher_path": teacher["path"]}, r.name) for r in recs]

    records = run_tasks(point_tasks(pending), **run)
    if bitwidth_round:
        w6 = next((r for r, rec in zip(records, pending) if rec.name == "qat_w6" and "result" in r), None)
        if w6 is not None:
            extra = [r for r in default_recipes(w6["result"]["luts"]) if r.technique == "bitwidth"]
            records += run_tasks(point_tasks(extra), **run)
            pending += extra
    return teacher, records, pending


def points_of(recipes: list[Recipe], records: list) -> list[Point]:
    """The Points of the records that succeeded (failures reported and left out)."""
    points = []
    for rec, r in zip(recipes, records):
        if "error" in r:
            progress(f"pareto: {rec.name}: left out (failed: {r['error']}; log {r.get('log')})")
            continue
        p = Point(**{**r["result"], "seconds": round(r.get("seconds", 0.0), 1)})
        p.worker = r.get("worker", "")
        points.append(p)
    return points


def run_sweep(zoo: str, out_dir, *, recipes: list[Recipe] | None = None, train: TrainConfig | None = None,
              cost_model: str = "da4ml", yosys: str = "headline", quick: bool = False, workers: int = 1,
              ray_address: str | None = None, store=None) -> ParetoReport:
    """Train, compress, convert, C-sim and cost every recipe; write the report files.

    The points run through :func:`fpga_dnn.sweep.run_tasks` in three rounds (the float teacher
    and the base QAT models the recipes share; the recipes; the bit-width search, whose budget
    is half the 6-bit model's LUTs): in this process (``workers=1``), on a local Ray with
    ``workers`` processes, or on the cluster at ``ray_address``. Results live in ``store``
    (default ``<out>/store``): a re-run computes only what is missing.
    """
    from ..sweep import ResultStore

    if yosys not in YOSYS_MODES:
        raise ConfigError(f"yosys must be one of {YOSYS_MODES}, got {yosys!r}")
    a = models.arch(zoo)
    if a.kind != "mlp" and not quick:
        progress(f"pareto: {zoo} is a {a.kind}: low-rank applies to its Dense layers only")
    out = Path(out_dir).resolve()
    (out / "models").mkdir(parents=True, exist_ok=True)
    store = store or ResultStore(out / "store")
    ds = load_dataset(a.dataset)
    train = train or TrainConfig(float_baseline=False)
    pending = list(recipes) if recipes is not None else default_recipes(quick=quick)
    teacher, records, pending = evaluate_recipes(zoo, out, pending, train, store=store, workers=workers,
                                                 ray_address=ray_address, cost_model=cost_model,
                                                 bitwidth_round=recipes is None and not quick)
    float_acc = teacher["accuracy"]
    points = points_of(pending, records)
    for p in pareto_front(points):
        p.on_front = True
    ref = "qat_w8"
    head = headline(points, float_acc, ref)
    if yosys != "none":
        chosen = [p for p in points if p.on_front] if yosys == "front" else \
            [p for p in points if head and p.name in (head.get("point"), ref)]
        _add_hardware_checks(chosen, ds, out, store)
        head = headline(points, float_acc, ref)
    from ..boards import load_board

    boards = {}
    for b in ("pynq-z2", "ultra96"):
        boards[b] = load_board(b).budget["LUT"]
    rep = ParetoReport(zoo, ds.name, float_acc, cost_model, points, head, boards)
    write_report(rep, out)
    return rep


# ---------------------------------------------------------------------------------------------
# The points (run by fpga_dnn.sweep on any worker: plain data in, plain data out)

def teacher_task(zoo: str, train: dict, out: str) -> dict:
    """The float twin, trained once: the baseline accuracy and the distillation teacher."""
    from ..modelio import load_model

    cfg = TrainConfig(**train)
    ds = load_dataset(models.arch(zoo).dataset)
    path = Path(out) / "models" / f"float_{artifacts.inputs_hash({'zoo': zoo, 'train': train})}.h5"
    if path.is_file():
        teacher, _ = load_model(path)
    else:
        teacher = models.build_model(zoo, "float", seed=cfg.seed)
        _fit(teacher, kerasenv.tf_keras(), ds, cfg, "float")
        teacher.save(path)
    return {"path": str(path), "accuracy": float(accuracy(teacher, ds.x_test, ds.y_test))}


def base_task(zoo: str, recipe: dict, train: dict, out: str) -> dict:
    """A base QAT model (framework, widths, hidden) that several recipes compress."""
    rec = Recipe(**{**recipe, "hidden": recipe.get("hidden")})
    cfg = TrainConfig(**train)
    ds = load_dataset(models.arch(zoo).dataset)
    path = _trained_base(zoo, rec, ds, cfg, Path(out), return_path=True)
    return {"path": str(path)}


def point_task(zoo: str, recipe: dict, train: dict, out: str, cost_model: str, teacher_path: str) -> dict:
    """One point: compress, save, convert, C-sim against Keras, cost the RTL; the Point's fields."""
    from . import CompressOptions, apply
    from .cost import hardware_cost

    rec = Recipe(**recipe)
    cfg = TrainConfig(**train)
    ds = load_dataset(models.arch(zoo).dataset)
    return asdict(_make_point(zoo, rec, ds, cfg, Path(out), Path(teacher_path), cost_model, apply, CompressOptions,
                              hardware_cost))


def _make_point(zoo, rec: Recipe, ds, train, out: Path, teacher_path, cost_model, apply, CompressOptions,
                hardware_cost) -> Point:
    from ..convert import ConvertOptions, convert
    from ..csim import run_csim
    from ..modelio import load_model

    t0 = time.perf_counter()
    progress(f"pareto: {rec.name}: {rec.detail}")
    if rec.technique == "distill":  # a distilled student learns from the teacher from the start
        model = _build(zoo, rec, train)
    else:
        model = _trained_base(zoo, rec, ds, train, out)
    if rec.compress:
        opts = CompressOptions(**rec.compress)
        model, _ = apply(model, ds, opts, teacher=teacher_path, zoo=zoo, x_calib=ds.x_test)
    suffix = ".keras" if rec.framework == "hgq2" else ".h5"
    path = out / "models" / f"{rec.name}{suffix}"
    model.save(path)
    model, framework = load_model(path)  # what a user's flow would load
    conv = convert(model, ds.x_test, ConvertOptions(project_name=f"p_{rec.name}".replace("-", "_")),
                   output_dir=out / "hls" / rec.name, framework=framework)
    cs = run_csim(conv.hls_model, model, ds.x_test, ds.y_test)
    cost = hardware_cost(model, ds.x_test, cost_model)
    keras_sparsity = sparsity(model) if framework == "qkeras" else 0.0
    from ..train import weight_count

    p = Point(rec.name, rec.technique, rec.detail, accuracy=float(cs.accuracy), luts=cost.luts, dsp=cost.dsp,
              latency_cycles=cost.latency_cycles, bit_exact=float(cs.exact_fraction), weights=weight_count(model),
              sparsity=round(keras_sparsity, 4), model_path=str(path.relative_to(out)),
              seconds=round(time.perf_counter() - t0, 1))
    progress(f"pareto: {rec.name}: accuracy {p.accuracy:.4f}, {p.luts:,.0f} LUT, bit-exact {p.bit_exact:.4f}")
    return p


def _build(zoo: str, rec: Recipe, train: TrainConfig):
    quant = models.Quant(rec.weight_bits, 0, rec.activation_bits, 1)
    kw = {"hgq_beta": rec.hgq_beta} if rec.framework == "hgq2" else {}
    return models.build_model(zoo, rec.framework, quant, seed=train.seed, hidden=_hidden_for(zoo, rec.hidden), **kw)


def _base_recipe(rec: Recipe) -> Recipe:
    return Recipe("base", "qat", "", rec.weight_bits, rec.activation_bits, rec.framework, rec.hidden,
                  hgq_beta=rec.hgq_beta)


def _trained_base(zoo: str, rec: Recipe, ds, train: TrainConfig, out: Path, return_path: bool = False):
    """The QAT model a recipe starts from, trained once per (framework, widths, hidden) and shared
    by every recipe that compresses it (its own sweep task, run before the recipes)."""
    from ..modelio import load_model

    base = _base_recipe(rec)
    key = _recipe_key(zoo, base, train)
    path = out / "models" / f"base_{key}{'.keras' if rec.framework == 'hgq2' else '.h5'}"
    if path.is_file():
        return path if return_path else load_model(path)[0]
    model = _build(zoo, rec, train)
    label = f"{rec.framework} w{rec.weight_bits}/a{rec.activation_bits}"
    if rec.framework == "hgq2":
        from .bitwidth import fit_hgq2

        fit_hgq2(model, ds, train, label)
    else:
        _fit(model, kerasenv.tf_keras(), ds, train, label)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
    model.save(tmp)
    os.replace(tmp, path)   # a reader never sees a half-written model
    return path if return_path else model


def _add_hardware_checks(points: list[Point], ds, out: Path, store=None) -> None:
    """yosys figures, and the generated Verilog run in the Verilator emulation on the whole test
    set (equal to Keras, hence to C-sim, which equals Keras on every sample)."""
    from ..convert import ConvertOptions, check_input, convert
    from ..modelio import load_model
    from ..rtl.trace import trace_model_graph
    from ..rtl.verilog import write_verilog
    from ..simulate.emulator import compile_emulator
    from ..simulate.check import rows_equal
    from ..train import predict_logits
    from .cost import hardware_cost

    for p in points:
        # cached in the sweep's store, keyed by the model file's content
        key = artifacts.inputs_hash({"hardware_checks": artifacts.file_hash(out / p.model_path)})
        done = store.get(key) if store is not None else None
        if done is not None:
            for k, v in done["result"].items():
                setattr(p, k, v)
            continue
        model, _ = load_model(out / p.model_path)
        update = {}
        if p.yosys_luts is None:
            c = hardware_cost(model, ds.x_test, "yosys", work_dir=out / "yosys" / p.name)
            p.yosys_luts, p.yosys_ff, p.yosys_dsp = int(c.luts), c.ff, c.dsp
            update.update(yosys_luts=p.yosys_luts, yosys_ff=p.yosys_ff, yosys_dsp=p.yosys_dsp)
            progress(f"pareto: {p.name}: yosys {p.yosys_luts:,} LUT, {p.yosys_ff:,} FF, {p.yosys_dsp} DSP")
        if p.rtl_exact is None:
            x = check_input(model, ds.x_test)
            conv = convert(model, x, ConvertOptions(), output_dir=out / "rtl" / p.name / "hls", write=False,
                           quiet=True)
            core = "p_" + "".join(ch if ch.isalnum() else "_" for ch in p.name) + "_core"
            design = write_verilog(trace_model_graph(conv.hls_model), out / "rtl" / p.name / "core", name=core)
            got = compile_emulator(design).predict(x)
            p.rtl_exact = float(rows_equal(got, predict_logits(model, x)).mean())
            update["rtl_exact"] = p.rtl_exact
            progress(f"pareto: {p.name}: RTL emulation = Keras on {p.rtl_exact:.4f} of {len(x)} samples")
        if update and store is not None:
            store.put(key, {"key": key, "label": f"{p.name} hardware checks", "result": update})


# ---------------------------------------------------------------------------------------------
# Report files

def to_markdown(rep: ParetoReport) -> str:
    lines = [f"# Pareto report: {rep.model} on {rep.dataset}", "",
             f"Float baseline accuracy: {rep.float_accuracy:.4f}. LUT = {rep.cost_model} estimate of the generated "
             "RTL; yosys columns: `synth_xilinx -family xc7` (PYNQ-Z2). Every point is C-sim checked against Keras "
             "on the whole test set; the points yosys estimates also run as Verilog in the Verilator emulation.", ""]
    h = rep.headline
    if h and h.get("found"):
        y = (f" (yosys: {h['yosys_luts']:,} vs {h['reference_yosys_luts']:,})"
             if h.get("yosys_luts") and h.get("reference_yosys_luts") else "")
        lines += [f"**Headline:** `{h['point']}` reaches {h['accuracy']:.4f} (float {h['float_accuracy']:.4f}, "
                  f"within {h['tolerance'] * 100:.0f} point) with {h['luts']:,.0f} LUT, "
                  f"{h['lut_saving']:.0%} fewer than `{h['reference']}` ({h['reference_luts']:,.0f} LUT, "
                  f"accuracy {h['reference_accuracy']:.4f}){y}." +
                  (f" Its Verilog in the Verilator emulation equals Keras on {h['rtl_exact']:.4f} of the test set."
                   if h.get("rtl_exact") is not None else ""), ""]
    elif h:
        lines += [f"**Headline:** no model within {h['tolerance'] * 100:.0f} point of the float accuracy uses fewer "
                  f"LUTs than `{h['reference']}`.", ""]
    lines += ["| point | technique | accuracy | LUT | DSP | latency (cycles) | yosys LUT | yosys FF | bit-exact "
              "(C-sim = Keras) | RTL emulation = Keras | weights | sparsity | front |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(rep.points, key=lambda p: p.luts):
        lines.append(f"| {p.name} | {p.detail} | {p.accuracy:.4f} | {p.luts:,.0f} | {p.dsp} | {p.latency_cycles} | "
                     f"{'' if p.yosys_luts is None else f'{p.yosys_luts:,}'} | "
                     f"{'' if p.yosys_ff is None else f'{p.yosys_ff:,}'} | {p.bit_exact:.4f} | "
                     f"{'' if p.rtl_exact is None else f'{p.rtl_exact:.4f}'} | {p.weights:,} | "
                     f"{p.sparsity:.0%} | {'*' if p.on_front else ''} |")
    lines += ["", "Board LUT budgets: " + ", ".join(f"{b} {v:,}" for b, v in rep.boards.items()), ""]
    return "\n".join(lines)


def plot(rep: ParetoReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    pts = rep.points
    ax.scatter([p.luts for p in pts], [p.accuracy for p in pts], c="tab:blue", s=28, label="models", zorder=3)
    # Names on the front, the reference and the headline only (the Markdown table lists every
    # point): labels of a crowded sweep would overlap.
    named = {p.name for p in pts if p.on_front} | {(rep.headline or {}).get("point"), (rep.headline or {}).get("reference")}
    for i, p in enumerate(sorted((p for p in pts if p.name in named), key=lambda p: p.luts)):
        ax.annotate(p.name, (p.luts, p.accuracy), fontsize=7, xytext=(4, 4 if i % 2 == 0 else -10),
                    textcoords="offset points")
    front = sorted([p for p in pts if p.on_front], key=lambda p: p.luts)
    ax.step([p.luts for p in front], [p.accuracy for p in front], where="post", c="tab:red", lw=1.5,
            label="Pareto front", zorder=2)
    ax.axhline(rep.float_accuracy, ls="--", c="gray", lw=1, label=f"float baseline {rep.float_accuracy:.3f}")
    ax.axhline(rep.float_accuracy - 0.01, ls=":", c="gray", lw=1, label="float - 1 point")
    top = max(p.luts for p in pts)
    for (b, lut), col in zip(rep.boards.items(), ("tab:green", "tab:purple")):
        if lut <= top * 1.6:
            ax.axvline(lut, c=col, lw=1, ls="-.", label=f"{b} LUT budget ({lut:,})")
    ax.set_xlabel(f"LUTs ({rep.cost_model} estimate of the generated RTL)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{rep.model}: accuracy vs LUTs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(rep: ParetoReport, out: Path) -> dict:
    out = Path(out)
    files = {"json": out / "pareto.json", "md": out / "pareto.md", "png": out / "pareto.png"}
    files["json"].write_text(json.dumps(rep.as_dict(), indent=2))
    files["md"].write_text(to_markdown(rep))
    plot(rep, files["png"])
    progress(f"pareto: wrote {files['json']}, {files['md']}, {files['png']}")
    return files


__all__ = ["Point", "ParetoReport", "Recipe", "default_recipes", "headline", "pareto_front", "run_sweep",
           "write_report"]
