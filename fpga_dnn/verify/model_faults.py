"""Model-level faults: bit errors in the quantized weights and activations of the bit-exact
fixed-point model, like FKeras's bit-error-rate sweeps, beside the RTL injection campaigns.

The model is the hardware graph (:mod:`fpga_dnn.hw`) run by its numpy integer reference
(:func:`fpga_dnn.hw.reference.run`), checked equal to C-sim on the test set before any fault is
injected. Every value is the integer code the hardware holds, so a flipped bit is a flipped
bit of a weight word or an activation register:

* **weights**: each Conv/Dense unit's weight words (``weight_width``-bit two's complement);
* **activations**: each unit's output codes (its output type's width, signed or not), per
  sample — the registers between the layers; the input node's are the input registers.

Two campaigns, per layer (unit) and target:

* **bit-error rate**: every bit flips independently with probability ``ber`` (1e-6 .. 1e-2);
  ``trials`` draws per point; accuracy mean with a 95% interval over the trials;
* **single flips per bit position**: one bit ``b`` flipped (in one random weight word per draw,
  or in one random activation of every sample); accuracy, and the fraction of samples whose
  output or class changed, with 95% intervals — which bit positions matter (the sign and high
  bits, by a lot).

:func:`sweep` returns a dict; :func:`write` makes ``model_faults.json/.md/.png``;
:func:`run_model_faults` does it for a zoo model or a model file through the flow's steps.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from fpga_dnn.errors import MismatchError
from fpga_dnn.verify.report import mean_ci95, table, wilson95, write_report

BERS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def flip_bits(codes: np.ndarray, positions: np.ndarray, width: int, signed: bool) -> np.ndarray:
    """``codes`` (int64, any shape) with the bits at flat bit ``positions`` (element * width + bit)
    flipped, read back as ``width``-bit (two's complement when ``signed``) integers."""
    flat = codes.reshape(-1) & np.int64((1 << width) - 1)
    if len(positions):
        elem, bit = np.divmod(positions, width)
        # XOR of every flip on an element (np.bitwise_xor.at handles an element hit twice)
        np.bitwise_xor.at(flat, elem, np.left_shift(np.int64(1), bit.astype(np.int64)))
    if signed:
        flat = np.where(flat >= (1 << (width - 1)), flat - (1 << width), flat)
    return flat.reshape(codes.shape)


def _positions(rng, total_bits: int, ber: float) -> np.ndarray:
    """Bits hit at rate ``ber`` among ``total_bits``: a binomial count, uniform positions."""
    k = rng.binomial(total_bits, ber)
    return np.unique(rng.integers(0, total_bits, size=k)) if k else np.zeros(0, dtype=np.int64)


class _Model:
    """The graph with its clean outputs, and predictions under one fault."""

    def __init__(self, graph, x_codes: np.ndarray, labels: Optional[np.ndarray]):
        from fpga_dnn.hw.reference import run

        self.graph, self.run = graph, run
        self.x = np.asarray(x_codes, dtype=np.int64).reshape((-1,) + graph.input.out_shape)
        self.n = len(self.x)
        self.labels = None if labels is None else np.asarray(labels).reshape(-1)
        vals = run(graph, self.x, keep=True)
        self.shapes = {k: v.shape[1:] for k, v in vals.items()}
        self.clean = vals[graph.output].reshape(self.n, -1)
        self.clean_class = self.classes(self.clean)

    def classes(self, out: np.ndarray) -> np.ndarray:
        return out[:, 0] if self.graph.softmax == "argmax" else out.argmax(axis=1)

    def outcome(self, graph=None, hook=None) -> Dict[str, float]:
        out = self.run(graph or self.graph, self.x, hook=hook).reshape(self.n, -1)
        cls = self.classes(out)
        return {"accuracy": float((cls == self.labels).mean()) if self.labels is not None else float("nan"),
                "changed": int((out != self.clean).any(axis=1).sum()),
                "misclassified": int((cls != self.clean_class).sum())}

    def with_weights(self, name: str, w: np.ndarray):
        from fpga_dnn.hw.graph import HwGraph

        g = self.graph
        return HwGraph(g.name, [replace(n, w=w) if n.name == name else n for n in g.nodes], g.output, g.softmax)

    def activation_hook(self, name: str, flip):
        return lambda node, y: flip(y) if node.name == name else y


def sweep(graph, x_codes, labels=None, *, bers: Sequence[float] = BERS, trials: int = 10, flips_per_bit: int = 16,
          targets: Sequence[str] = ("weights", "activations"), seed: int = 0) -> Dict:
    """Bit-error-rate and per-bit-position campaigns on ``graph`` (module docstring).

    x_codes: the test inputs as the graph's input codes; labels: their classes (accuracy; without
    them only the changed/misclassified-vs-fault-free fractions mean something).
    """
    from fpga_dnn.hw.graph import MatVecNode

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    m = _Model(graph, x_codes, labels)
    clean_acc = float((m.clean_class == m.labels).mean()) if m.labels is not None else None
    layers = {"weights": [n for n in graph if isinstance(n, MatVecNode)], "activations": list(graph)}
    result: Dict = {"model": graph.name, "samples": m.n, "clean_accuracy": clean_acc, "trials": trials,
                    "flips_per_bit": flips_per_bit, "bers": list(bers), "seed": seed, "ber": {}, "bit_position": {},
                    "layers": {}}
    for target in targets:
        result["ber"][target], result["bit_position"][target] = {}, {}
        for node in layers[target]:
            if target == "weights":
                width, signed, words = node.weight_width, True, node.w
            else:
                width, signed = node.out_type.width, node.out_type.signed
                words = np.zeros((m.n,) + m.shapes[node.name], dtype=np.int64)   # shape only
            total = words.size * width
            result["layers"].setdefault(node.name, {})[target] = {"words": int(words.size), "bits_per_word": width,
                                                                   "bits": int(total)}

            def outcome_for(positions, node=node, width=width, signed=signed):
                if target == "weights":
                    return m.outcome(graph=m.with_weights(node.name, flip_bits(node.w, positions, width, signed)))
                return m.outcome(hook=m.activation_hook(node.name, lambda y: flip_bits(y, positions, width, signed)))

            rows = []
            for ber in bers:
                runs = [(len(p), outcome_for(p)) for p in (_positions(rng, total, ber) for _ in range(trials))]
                acc = mean_ci95([o["accuracy"] for _, o in runs])
                changed = sum(o["changed"] for _, o in runs)
                rows.append({"ber": ber, "flips_mean": float(np.mean([k for k, _ in runs])),
                             "accuracy": acc[0], "accuracy_ci95": [acc[1], acc[2]],
                             "changed_fraction": changed / (trials * m.n),
                             "misclassified_fraction": sum(o["misclassified"] for _, o in runs) / (trials * m.n)})
            result["ber"][target][node.name] = rows
            per_bit = []
            n_words = words.size // (m.n if target == "activations" else 1)
            for b in range(width):
                if target == "weights":   # one word per draw
                    draws = [np.array([rng.integers(0, words.size) * width + b]) for _ in range(flips_per_bit)]
                else:                     # one random element of every sample per draw
                    draws = [(np.arange(m.n) * n_words + rng.integers(0, n_words, size=m.n)) * width + b
                             for _ in range(max(1, flips_per_bit // 4))]
                runs = [outcome_for(p) for p in draws]
                pairs = len(runs) * m.n
                mis = sum(o["misclassified"] for o in runs)
                acc = mean_ci95([o["accuracy"] for o in runs])
                per_bit.append({"bit": b, "accuracy": acc[0], "accuracy_ci95": [acc[1], acc[2]],
                                "changed_fraction": sum(o["changed"] for o in runs) / pairs,
                                "misclassified_fraction": mis / pairs, "misclassified_ci95": list(wilson95(mis, pairs)),
                                "draws": len(runs)})
            result["bit_position"][target][node.name] = per_bit
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def write(result: Dict, out_dir, stem: str = "model_faults") -> Dict[str, Path]:
    """JSON + Markdown + PNG (accuracy vs BER per layer, misclassification per bit position)."""
    md = [f"# Model-level faults: {result['model']}", "",
          f"Bit-exact fixed-point model (hardware graph, integer reference, equal to C-sim on the "
          f"{result['samples']} test samples); fault-free accuracy {result['clean_accuracy']}. "
          f"{result['trials']} trials per BER point; {result['seconds']} s.", ""]
    panels = []
    for target, per_layer in result["ber"].items():
        md += [f"## Accuracy vs bit-error rate, {target}", ""]
        header = ["layer", "bits"] + [f"BER {b:g}" for b in result["bers"]]
        md += table(header, [[name, result["layers"][name][target]["bits"]]
                             + [f"{r['accuracy']:.4f} ± {(r['accuracy_ci95'][1] - r['accuracy_ci95'][0]) / 2:.4f}"
                                for r in rows] for name, rows in per_layer.items()]) + [""]
        panels.append({"title": f"accuracy vs BER ({target})", "xlabel": "bit-error rate", "ylabel": "accuracy",
                       "xscale": "log", "series": {name: {"x": [r["ber"] for r in rows],
                                                          "y": [r["accuracy"] for r in rows],
                                                          "lo": [r["accuracy_ci95"][0] for r in rows],
                                                          "hi": [r["accuracy_ci95"][1] for r in rows]}
                                                   for name, rows in per_layer.items()}})
    for target, per_layer in result["bit_position"].items():
        md += [f"## One flipped bit per position, {target}: fraction of samples misclassified (vs fault-free)", ""]
        width = max(len(rows) for rows in per_layer.values())
        md += table(["layer"] + [f"bit {b}" for b in range(width)],
                    [[name] + [r["misclassified_fraction"] for r in rows] + [""] * (width - len(rows))
                     for name, rows in per_layer.items()]) + [""]
        panels.append({"title": f"single flip per bit position ({target})", "xlabel": "bit (0 = LSB)",
                       "ylabel": "misclassified fraction", "series": {
                           name: {"x": [r["bit"] for r in rows], "y": [r["misclassified_fraction"] for r in rows],
                                  "lo": [r["misclassified_ci95"][0] for r in rows],
                                  "hi": [r["misclassified_ci95"][1] for r in rows]}
                           for name, rows in per_layer.items()}})
    return write_report(result, out_dir, stem, md, panels, f"model-level faults: {result['model']}")


def graph_of(st) -> tuple:
    """(hardware graph, test input codes) of a flow state after convert + csim, the graph checked
    equal to C-sim (the logits for a softmax model) on the whole test set."""
    from fpga_dnn.convert import check_input
    from fpga_dnn.hw.lower import lower
    from fpga_dnn.hw.reference import quantize_inputs, run
    from fpga_dnn.simulate.check import rows_equal, rtl_reference

    graph = lower(st.convert.hls_model, name=st.config.model_name(), softmax="logits")
    x = check_input(st.model, st.x)
    q = quantize_inputs(graph, x)
    out = run(graph, q).reshape(len(q), -1)
    ref, what = rtl_reference(st.model, x, st.csim.outputs, graph.softmax)
    value = np.ldexp(out.astype(np.float64), -graph.out_node.out_type.f)
    exact = rows_equal(value, ref)
    if not exact.all():
        raise MismatchError(f"the hardware graph's integer reference equals the {what} on only "
                            f"{int(exact.sum())}/{len(x)} test samples: no fault study on a model that is not bit-exact")
    return graph, q


def run_model_faults(config, build_dir, out_dir=None, **sweep_options) -> Dict[str, Path]:
    """The flow's train/convert/csim steps for ``config`` (a :class:`~fpga_dnn.flow.FlowConfig`),
    then :func:`sweep` and :func:`write` into ``out_dir`` (default ``<build>/faults``)."""
    from fpga_dnn.flow import execute_flow

    config.steps = [s for s in config.steps if s in ("train", "convert", "csim")]
    st = execute_flow(config, build_dir)
    graph, q = graph_of(st)
    result = sweep(graph, q, st.y, **sweep_options)
    return write(result, out_dir or Path(build_dir) / "faults")
