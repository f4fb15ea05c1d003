"""Benchmarks (``make bench``): speed figures written as JSON and Markdown, never asserted in tests.

Every figure in one file is measured in the same run, side by side, because these machines are
noisy: compare ratios within a run, not numbers across runs.

    python -m fpga_dnn.bench --out build/bench [--only toolchain]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from .log import progress

# (model, framework, quant kwargs, max epochs)
TOOLCHAIN_CASES = [
    ("digits_mlp", "qkeras", {}, 120),
    ("digits_cnn", "qkeras", {}, 60),
    ("digits_mlp", "hgq2", {}, 60),
    ("jet_mlp", "qkeras", {"weight_bits": 6, "activation_bits": 6}, 60),
]


def bench_toolchain(out: Path) -> list[dict]:
    """Train, convert and compile times, and C-sim samples/s, per zoo case."""
    from . import convert, csim, models, train
    from .modelio import load_model
    from .data import load_data_file

    rows = []
    for name, fw, q, epochs in TOOLCHAIN_CASES:
        progress(f"bench: {name} {fw} {q or ''}")
        folder = out / "toolchain" / f"{name}_{fw}"
        t0 = time.perf_counter()
        res = train.train(name, fw, models.Quant(**q), train.TrainConfig(epochs=epochs, float_baseline=False), folder)
        train_s = time.perf_counter() - t0
        model, _ = load_model(res.model_path)
        x, y = load_data_file(res.data_path)
        conv = convert.convert(model, x, convert.ConvertOptions(), output_dir=folder / "hls", framework=fw)
        compile_s = csim.compile_model(conv.hls_model)
        reps = max(1, 20000 // len(x))  # enough samples for a stable rate
        xb = np.ascontiguousarray(np.concatenate([x] * reps), dtype=np.float64)
        t0 = time.perf_counter()
        csim.hls_predict(conv.hls_model, xb)
        csim_s = time.perf_counter() - t0
        rep = csim.run_csim(conv.hls_model, model, convert.check_input(model, x), y, compiled=True)
        rows.append({
            "model": name, "framework": fw, "bits": f"w{res.meta['quant']['weight_bits']}/a{res.meta['quant']['activation_bits']}",
            "qat_accuracy": round(res.meta["qat"]["accuracy"], 4), "epochs": res.meta["qat"]["epochs"],
            "train_s": round(train_s, 2), "convert_s": round(conv.seconds, 2), "compile_s": round(compile_s, 2),
            "csim_samples": len(xb), "csim_samples_per_s": round(len(xb) / csim_s, 1),
            "bit_exact": rep.exact_fraction,
        })
    return rows


BENCHES = {"toolchain": bench_toolchain}


def to_markdown(results: dict) -> str:
    lines = [f"# fpga_dnn benchmarks\n\nMachine: {results['machine']}. Run at {results['started']}.\n"]
    for name, rows in results["benches"].items():
        if not rows:
            continue
        cols = list(rows[0])
        lines.append(f"## {name}\n")
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fpga_dnn.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("build/bench"))
    ap.add_argument("--only", choices=sorted(BENCHES), action="append", help="run only these benchmarks")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "benches": {}}
    for name in args.only or BENCHES:
        t0 = time.perf_counter()
        results["benches"][name] = BENCHES[name](args.out)
        progress(f"bench: {name} done in {time.perf_counter() - t0:.1f} s")
    (args.out / "bench.json").write_text(json.dumps(results, indent=2))
    (args.out / "bench.md").write_text(to_markdown(results))
    print(to_markdown(results))
    print(f"written: {args.out / 'bench.json'}, {args.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
