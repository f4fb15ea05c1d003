"""The second route for HGQ2 models: da4ml's own HGQ2 tracer, and a check that both routes agree.

Why: an HGQ2 model reaches RTL through hls4ml's graph (:func:`fpga_dnn.rtl.trace_model_graph`),
which depends on hls4ml's conversion and on our reading of its C++. da4ml can also trace the
Keras 3 model directly (``da4ml.converter.trace_model``, HGQ2's tracer plugin), knowing nothing
of hls4ml. When the two independently built ``CombLogic``\\ s give the same bits on the same data,
both the conversion and the trace are confirmed.

Inputs: both routes get the same input bits. The float samples are converted to hls4ml's input
type as C-sim's ``predict`` does, and the HGQ2 route is traced with inputs of that same type
(``inputs_kif``), through which the model's own input quantizer then runs in logic. Tracing
HGQ2's route from unconstrained inputs would fail for input quantizers that saturate: da4ml's
free input variables accept only WRAP quantization.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import interpret
from .trace import TracedModel


@dataclass(frozen=True)
class RouteAgreement:
    """How often the hls4ml-graph route and da4ml's HGQ2 route give identical outputs."""

    n_samples: int
    n_equal: int
    max_abs_diff: float
    hls4ml_route_cost: float
    hgq2_route_cost: float
    hgq2_trace_seconds: float

    @property
    def fraction(self) -> float:
        return self.n_equal / self.n_samples if self.n_samples else 1.0

    def __str__(self) -> str:
        return (f"{self.n_equal}/{self.n_samples} samples identical ({self.fraction:.2%}); "
                f"estimated LUTs {self.hls4ml_route_cost:.0f} (hls4ml route) vs "
                f"{self.hgq2_route_cost:.0f} (HGQ2 route)")


def trace_hgq2(keras_model, input_type=None, *, hwconf=None, solver_options=None):
    """da4ml's direct trace of an HGQ2 (Keras 3) model into a ``CombLogic``.

    ``input_type`` (an :class:`~fpga_dnn.rtl.precision.HlsType`) fixes the inputs' format; by
    default da4ml leaves it to the model's input quantizer (which must then wrap, not saturate).
    """
    from da4ml.converter import trace_model
    from da4ml.trace import HWConfig, comb_trace

    from fpga_dnn import compat

    compat.apply_da4ml()
    hwconf = HWConfig(*(hwconf or (1, -1, -1)))
    kif = None if input_type is None else (input_type.k, input_type.i, input_type.f)
    inp, out = trace_model(keras_model, hwconf, solver_options, inputs_kif=kif)
    return comb_trace(inp, out)


def compare_routes(traced: TracedModel, keras_model, x, *, hgq2_comb=None, n_threads: int = 1) -> RouteAgreement:
    """Run ``x`` (float samples) through both routes and count identical output vectors.

    ``hgq2_comb`` may be passed to reuse a trace from :func:`trace_hgq2` (traced with
    ``traced.input_type``).
    """
    t0 = time.perf_counter()
    if hgq2_comb is None:
        hgq2_comb = trace_hgq2(keras_model, traced.input_type)
    t_trace = time.perf_counter() - t0
    xq = traced.quantize_inputs(x)  # the same input bits for both routes
    n = len(xq)
    ours = traced.predict(xq, n_threads=n_threads).reshape(n, -1)
    theirs = interpret.predict(hgq2_comb, xq, n_threads=n_threads).reshape(n, -1)
    if ours.shape != theirs.shape:
        raise AssertionError(f"the routes disagree on the output size: {ours.shape} vs {theirs.shape}")
    same = np.all(ours == theirs, axis=1)
    return RouteAgreement(
        n_samples=n,
        n_equal=int(same.sum()),
        max_abs_diff=float(np.max(np.abs(ours - theirs))) if n else 0.0,
        hls4ml_route_cost=float(traced.comb.cost),
        hgq2_route_cost=float(hgq2_comb.cost),
        hgq2_trace_seconds=t_trace,
    )
