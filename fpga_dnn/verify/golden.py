"""Choose a design's golden vectors and take their bit-exact outputs from the verified design.

What goes in (all on the input format's grid, as the board's integers ``q``):

* **test samples**: the first sample of each predicted class, then the following ones, up to
  ``n_test``;
* **edges**: all zeros, all at the format's minimum / maximum, one LSB everywhere (and minus
  one LSB for a signed input), the mid-scale code, and minimum/maximum alternating in both
  phases — the extremes of the input grid;
* **probes**: picked greedily from a pool (random on-grid inputs, test samples scaled by 2 and 4
  and clipped, test samples with one-LSB noise) to cover *design events* the others miss: for
  every unit of the hardware graph (:mod:`fpga_dnn.hw`) and every output element, the output
  at its type's largest and smallest code (saturation or clamping), and a matrix-vector unit's
  accumulator exactly on a rounding tie of its requantisation (the case where RND_CONV, RND and
  TRN differ). The fraction of events covered is recorded with the vectors.

The expected outputs are the RTL emulation's (Verilator, the design the simulate step verified;
the hardware graph's integer reference for a streaming design), and they must equal the other
references given (C-sim): :func:`golden_for_build` refuses to write vectors the references
disagree on. :func:`fpga_dnn.runtime.golden.attach` puts them into a bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from fpga_dnn.errors import MismatchError
from fpga_dnn.runtime.golden import GoldenVectors
from fpga_dnn.runtime.packing import from_fixed, int_range, to_fixed

ModelFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Coverage:
    """Design events (name per column) and which the chosen vectors reach."""

    names: List[str] = field(default_factory=list)
    reachable: int = 0     # events some pool candidate or chosen vector reaches
    covered: int = 0       # events the chosen vectors reach

    def as_dict(self) -> Dict[str, object]:
        kinds: Dict[str, int] = {}
        for n in self.names:
            kinds[n.rsplit(":", 1)[-1]] = kinds.get(n.rsplit(":", 1)[-1], 0) + 1
        return {"events": len(self.names), "reachable": self.reachable, "covered": self.covered,
                "event_kinds": kinds}


def edge_inputs(fmt, shape: Tuple[int, ...]) -> List[Tuple[str, np.ndarray]]:
    """The input grid's extremes: (kind, codes of one sample)."""
    lo, hi = int_range(fmt)
    n = int(np.prod(shape))
    full = lambda v: np.full(n, v, dtype=np.int64)  # noqa: E731
    alt = np.where(np.arange(n) % 2 == 0, lo, hi).astype(np.int64)
    out = [("edge zero", full(0)), ("edge all-min", full(lo)), ("edge all-max", full(hi)),
           ("edge one-lsb", full(1)), ("edge mid-scale", full((lo + hi + 1) // 2)),
           ("edge alternate", alt), ("edge alternate-inverse", np.where(alt == lo, hi, lo).astype(np.int64))]
    if fmt.signed:
        out.append(("edge minus-lsb", full(-1)))
    seen, unique = set(), []
    for kind, q in out:   # an unsigned 1-bit format makes some of them equal
        key = q.tobytes()
        if key not in seen:
            seen.add(key)
            unique.append((kind, q.reshape(shape)))
    return unique


def graph_events(graph, q_in: np.ndarray) -> Tuple[np.ndarray, List[str]]:
    """Per input (rows) the hardware graph's design events it reaches (columns, named)."""
    from fpga_dnn.hw.graph import InputNode, MatVecNode
    from fpga_dnn.hw.lower import type_range
    from fpga_dnn.hw.reference import run, windows, wrap

    n = len(q_in)
    vals = run(graph, q_in.reshape((n,) + graph.input.out_shape), keep=True)
    cols, names = [], []
    for node in graph:
        if isinstance(node, InputNode):
            continue
        y = vals[node.name].reshape(n, -1)
        lo, hi = type_range(node.out_type)
        cols += [y == hi]
        names += [f"{node.name}[{i}]:max" for i in range(y.shape[1])]
        if node.out_type.signed or lo != 0:   # an unsigned minimum is ReLU's zero: not an edge
            cols += [y == lo]
            names += [f"{node.name}[{i}]:min" for i in range(y.shape[1])]
        if isinstance(node, MatVecNode) and node.requant and node.requant[0].shift > 0:
            x = vals[node.inputs[0]]
            vec = windows(x, node.window) if node.window is not None else x.reshape(n, 1, 1, -1)
            acc = wrap(np.einsum("nhwk,mk->nhwm", vec, node.w, dtype=np.int64) + node.bias, node.acc_width)
            rq = node.requant[0]
            tie = (acc & ((np.int64(1) << rq.shift) - 1)) == (np.int64(1) << (rq.shift - 1))
            if rq.relu:
                tie &= acc > 0
            tie = tie.reshape(n, -1, node.n).any(axis=1)   # per output channel, any pixel
            cols += [tie]
            names += [f"{node.name}[{i}]:tie" for i in range(node.n)]
    return np.concatenate(cols, axis=1), names


def output_events(spec, q_out: np.ndarray) -> Tuple[np.ndarray, List[str]]:
    """Without a hardware graph: each output element at its format's extremes."""
    y = q_out.reshape(len(q_out), -1)
    lo, hi = int_range(spec.output.format)
    names = [f"out[{i}]:max" for i in range(y.shape[1])] + [f"out[{i}]:min" for i in range(y.shape[1])]
    return np.concatenate([y == hi, y == lo], axis=1), names


def _test_choice(q_test: np.ndarray, q_out: np.ndarray, n_test: int) -> np.ndarray:
    """Indices: the first sample of each predicted class (argmax of the output), then in order."""
    if len(q_test) == 0:
        return np.zeros(0, dtype=int)
    pred = q_out.reshape(len(q_out), -1).argmax(axis=1)
    _, first = np.unique(pred, return_index=True)
    rest = np.setdiff1d(np.arange(len(q_test)), first)
    return np.concatenate([np.sort(first), rest])[:n_test]


def choose(spec, model_fn: ModelFn, q_test: np.ndarray, *, graph=None, n_test: int = 16, n_probes: int = 48,
           pool_size: int = 2048, seed: int = 0) -> Tuple[np.ndarray, List[str], Coverage]:
    """The golden inputs (``(n, *input shape)`` int64), their kinds and the design coverage."""
    fmt, shape = spec.input.format, tuple(spec.input.shape)
    lo, hi = int_range(fmt)
    rng = np.random.default_rng(seed)
    q_test = np.asarray(q_test, dtype=np.int64).reshape((-1,) + shape)
    test_idx = _test_choice(q_test, model_fn(q_test[: 4 * n_test]) if len(q_test) else q_test, n_test)
    fixed = [(f"test {i}", q_test[i]) for i in test_idx] + edge_inputs(fmt, shape)
    pool = [rng.integers(lo, hi + 1, size=(pool_size,) + shape, dtype=np.int64)]
    if len(q_test):
        base = q_test[rng.integers(0, len(q_test), size=pool_size // 2)]
        pool += [np.clip(base * 2, lo, hi), np.clip(base * 4, lo, hi),
                 np.clip(base + rng.integers(-1, 2, size=base.shape), lo, hi)]
    pool_q = np.concatenate(pool)
    fixed_q = np.stack([q for _, q in fixed])
    every = np.concatenate([fixed_q, pool_q])
    if graph is not None:
        events, names = graph_events(graph, every)
    else:
        events, names = output_events(spec, model_fn(every))
    covered = events[: len(fixed_q)].any(axis=0)
    cand = events[len(fixed_q):]
    chosen: List[int] = []
    for _ in range(n_probes):
        gain = cand[:, ~covered].sum(axis=1)
        best = int(np.argmax(gain))
        if gain[best] == 0:
            break
        chosen.append(best)
        covered |= cand[best]
    cov = Coverage(names, int(events.any(axis=0).sum()), int(covered.sum()))
    inputs = np.concatenate([fixed_q, pool_q[chosen]]) if chosen else fixed_q
    kinds = [k for k, _ in fixed] + [f"probe {i}" for i in range(len(chosen))]
    return inputs.reshape((-1,) + shape), kinds, cov


def make_golden(spec, model_fn: ModelFn, q_test: np.ndarray, references: Sequence[Tuple[str, ModelFn]] = (), *,
                graph=None, **choose_options) -> Tuple[GoldenVectors, Coverage]:
    """Golden vectors for ``spec``: inputs from :func:`choose`, outputs from ``model_fn`` (the
    verified design, integers in and out), each equal to every ``(name, reference_fn)`` given,
    else :class:`MismatchError` naming the first vector and element that differ."""
    inputs, kinds, cov = choose(spec, model_fn, q_test, graph=graph, **choose_options)
    outputs = np.asarray(model_fn(inputs), dtype=np.int64).reshape((len(inputs),) + tuple(spec.output.shape))
    for name, ref in references:
        other = np.asarray(ref(inputs), dtype=np.int64).reshape(outputs.shape)
        diff = (other != outputs).reshape(len(inputs), -1)
        if diff.any():
            v = int(np.argmax(diff.any(axis=1)))
            e = int(np.argmax(diff[v]))
            raise MismatchError(f"golden vectors: the design and {name} differ on {int(diff.any(axis=1).sum())} of "
                                f"{len(inputs)} vectors, first vector {v} ({kinds[v]}) element {e}: "
                                f"{outputs.reshape(len(inputs), -1)[v, e]} vs {other.reshape(len(inputs), -1)[v, e]}")
    return GoldenVectors(inputs, outputs, np.array(kinds)), cov


def golden_for_build(rtl, hls_model, model, x_test: np.ndarray, **choose_options) -> Tuple[GoldenVectors, Coverage]:
    """Golden vectors of a flow's RTL build: expected outputs from the RTL emulation (or, for a
    streaming design, the hardware graph's integer reference that its Verilog was checked
    against), checked equal to hls4ml's C-sim (through :func:`~fpga_dnn.simulate.check.rtl_reference`:
    the logits or argmax a softmax-terminated design outputs)."""
    from fpga_dnn.hw.lower import lower
    from fpga_dnn.hw.reference import quantize_inputs, run
    from fpga_dnn.simulate.check import rtl_reference

    spec = rtl.spec
    softmax = getattr(getattr(rtl, "traced", None), "softmax", None)
    try:
        graph = lower(hls_model, softmax=softmax or "logits")
    except Exception:   # noqa: BLE001 - a layer only the unrolled tracer knows: output events only
        graph = None
    in_fmt, out_fmt = spec.input.format, spec.output.format
    shape = (-1,) + tuple(spec.input.shape)
    if getattr(rtl, "architecture", "unrolled") == "streaming":
        def model_fn(q):
            return run(graph, np.asarray(q).reshape((-1,) + graph.input.out_shape)).reshape(len(q), -1)
        q_test = quantize_inputs(graph, x_test).reshape(shape)
    else:
        from fpga_dnn.simulate.emulator import compile_emulator

        emu = compile_emulator(rtl.design)

        def model_fn(q):
            return emu.predict_raw(np.asarray(q).reshape(len(q), -1))
        q_test = np.asarray(emu.input_codes(x_test), dtype=np.int64).reshape(shape)

    def csim(q):
        x = from_fixed(q, in_fmt).reshape((len(q),) + tuple(model.input_shape[1:]))
        out = np.asarray(hls_model.predict(np.ascontiguousarray(x)), dtype=np.float64).reshape(len(q), -1)
        ref, _ = rtl_reference(model, x, out, softmax)
        return to_fixed(np.asarray(ref).reshape(len(q), -1), out_fmt)

    return make_golden(spec, model_fn, q_test, [("C-sim", csim)], graph=graph, **choose_options)
