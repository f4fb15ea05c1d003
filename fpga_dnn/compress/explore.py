"""A multi-objective design-space search (Optuna, NSGA-II) beside the Pareto grid.

The search space: weight and activation bits (3-8), magnitude-pruning sparsity and the width of
the hidden layers. The objectives: test accuracy (maximised), LUTs, DSPs and latency in cycles
of the generated RTL (minimised, the da4ml cost model of :mod:`.cost`); the board's LUT and DSP
budgets are constraints (NSGA-II prefers feasible designs). Trials are asked in batches and each
batch runs through the same sweep machinery as the grid (:func:`.pareto.evaluate_recipes`: in
this process, on a local Ray or on a cluster; results in the content-hash store, so a trial
whose parameters were seen before is not recomputed and an interrupted search resumes).

Outputs ``explore.json``, ``explore.md`` and ``explore.png``: every trial, the search's front
and the grid's (the quick Pareto recipes, evaluated in the same store) side by side.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..log import progress
from ..train import TrainConfig
from .pareto import Point, Recipe, default_recipes, evaluate_recipes, pareto_front, points_of

SPARSITIES = (0.0, 0.5, 0.75, 0.9)
HIDDEN = (0.5, 0.75, 1.0)


def recipe_for(weight_bits: int, activation_bits: int, sparsity: float, hidden: float) -> Recipe:
    """The recipe of one point of the search space."""
    name = f"s_w{weight_bits}a{activation_bits}_p{int(sparsity * 100)}_h{int(hidden * 100)}"
    compress = {"techniques": ["prune"], "sparsity": sparsity} if sparsity > 0 else {}
    return Recipe(name, "search", f"{weight_bits}-bit weights, {activation_bits}-bit activations, "
                  f"{sparsity:.0%} pruned, hidden layers x{hidden}", weight_bits, activation_bits,
                  hidden=None if hidden == 1.0 else hidden, compress=compress)


@dataclass
class SearchReport:
    model: str
    board: str
    budget: dict
    float_accuracy: float
    trials: list = field(default_factory=list)       # params, objectives, feasible, on_front
    grid: list = field(default_factory=list)         # the grid's points (asdict)
    search_front: list = field(default_factory=list)
    grid_front: list = field(default_factory=list)


def run_search(zoo: str, out_dir, *, trials: int = 16, batch: int | None = None, workers: int = 1,
               ray_address: str | None = None, board: str = "pynq-z2", train: TrainConfig | None = None,
               seed: int = 0, store=None, grid: bool = True) -> SearchReport:
    """``trials`` NSGA-II trials in batches of ``batch`` (default: ``max(workers, 4)``); with
    ``grid``, the quick Pareto grid evaluated beside them."""
    import optuna

    from ..boards import load_board
    from ..sweep import ResultStore

    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    out = Path(out_dir).resolve()
    (out / "models").mkdir(parents=True, exist_ok=True)
    store = store or ResultStore(out / "store")
    train = train or TrainConfig(float_baseline=False)
    budget = {k: load_board(board).budget[k] for k in ("LUT", "DSP")}
    batch = batch or max(workers, 4)
    run = dict(store=store, workers=workers, ray_address=ray_address, what="explore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=batch)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize", "minimize"], sampler=sampler)
    rows = []
    float_acc = None
    while len(study.trials) < trials:
        asked = [study.ask() for _ in range(min(batch, trials - len(study.trials)))]
        recipes = [recipe_for(t.suggest_int("weight_bits", 3, 8), t.suggest_int("activation_bits", 3, 8),
                              t.suggest_categorical("sparsity", SPARSITIES), t.suggest_categorical("hidden", HIDDEN))
                   for t in asked]
        teacher, records, _ = evaluate_recipes(zoo, out, recipes, train, **run)
        float_acc = teacher["accuracy"]
        for t, rec, r in zip(asked, recipes, records):
            if "error" in r:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
                continue
            p = r["result"]
            t.set_constraint("lut_over_budget", p["luts"] - budget["LUT"])   # <= 0: feasible (optuna 5:
            t.set_constraint("dsp_over_budget", p["dsp"] - budget["DSP"])    # one named value per call)
            study.tell(t, [p["accuracy"], p["luts"], p["dsp"], p["latency_cycles"]])
            rows.append({"trial": t.number, "params": t.params, "recipe": rec.name, **p,
                         "feasible": p["luts"] <= budget["LUT"] and p["dsp"] <= budget["DSP"],
                         "seconds": round(r.get("seconds", 0.0), 1), "worker": r.get("worker", "")})
        progress(f"explore: {len(study.trials)}/{trials} trials")
    grid_recipes = default_recipes(quick=True) if grid else []
    grid = []
    if grid_recipes:
        _, grid_records, _ = evaluate_recipes(zoo, out, grid_recipes, train, **run)
        grid = points_of(grid_recipes, grid_records)
    search_pts = [Point(**{k: v for k, v in r.items() if k in Point.__dataclass_fields__}) for r in rows if r["feasible"]]
    s_front = {p.name for p in pareto_front(search_pts)}
    for r in rows:
        r["on_front"] = r["recipe"] in s_front
    rep = SearchReport(zoo, board, budget, float_acc, rows, [asdict(p) for p in grid],
                       sorted(s_front), [p.name for p in pareto_front(grid)])
    write_search_report(rep, out)
    return rep


def to_markdown(rep: SearchReport) -> str:
    lines = [f"# Design-space search: {rep.model} for {rep.board}", "",
             f"NSGA-II (Optuna) over weight/activation bits, pruning and hidden width; objectives accuracy (max), "
             f"LUT, DSP, latency (min); constraints LUT <= {rep.budget['LUT']:,}, DSP <= {rep.budget['DSP']}. "
             f"Float baseline accuracy {rep.float_accuracy:.4f}. Every point is C-sim checked against Keras.", "",
             "| trial | point | accuracy | LUT | DSP | latency | bit-exact | feasible | front | s | worker |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rep.trials, key=lambda r: r["luts"]):
        lines.append(f"| {r['trial']} | {r['recipe']} | {r['accuracy']:.4f} | {r['luts']:,.0f} | {r['dsp']} | "
                     f"{r['latency_cycles']} | {r['bit_exact']:.4f} | {'yes' if r['feasible'] else 'no'} | "
                     f"{'*' if r['on_front'] else ''} | {r['seconds']} | {r['worker']} |")
    lines += ["", "Grid (the quick Pareto recipes) front: " + ", ".join(rep.grid_front),
              "Search front (accuracy vs LUT): " + ", ".join(rep.search_front), ""]
    return "\n".join(lines)


def write_search_report(rep: SearchReport, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {"json": out / "explore.json", "md": out / "explore.md", "png": out / "explore.png"}
    files["json"].write_text(json.dumps(asdict(rep), indent=2))
    files["md"].write_text(to_markdown(rep))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.scatter([r["luts"] for r in rep.trials], [r["accuracy"] for r in rep.trials], s=22, c="tab:blue",
               label="search trials")
    ax.scatter([p["luts"] for p in rep.grid], [p["accuracy"] for p in rep.grid], s=30, marker="s", c="tab:orange",
               label="grid points")
    for pts, names, col, lab in ((rep.trials, rep.search_front, "tab:blue", "search front"),
                                 (rep.grid, rep.grid_front, "tab:orange", "grid front")):
        key = "recipe" if pts is rep.trials else "name"
        front = sorted((p for p in pts if p[key] in names), key=lambda p: p["luts"])
        if front:
            ax.step([p["luts"] for p in front], [p["accuracy"] for p in front], where="post", c=col, lw=1.5, label=lab)
    ax.axhline(rep.float_accuracy, ls="--", c="gray", lw=1, label=f"float baseline {rep.float_accuracy:.3f}")
    ax.set_xlabel("LUTs (da4ml estimate of the generated RTL)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{rep.model}: NSGA-II search vs grid ({rep.board} budgets as constraints)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(files["png"], dpi=120)
    plt.close(fig)
    progress(f"explore: wrote {files['json']}, {files['md']}, {files['png']}")
    return files
