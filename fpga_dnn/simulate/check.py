"""The ``simulate`` step: the generated RTL against C-sim (and so Keras), two ways.

1. **Bulk emulation**: the core compiled by Verilator (:func:`fpga_dnn.simulate.emulator.compile_emulator`),
   called on the whole test set; fraction of samples identical to C-sim and to Keras, samples/s.
2. **cocotb + Verilator AXI-Stream testbench** (``sim/tb_axis_shell.py``): the core inside the
   shell, driven beat by beat: every test sample through the stream (outputs must equal C-sim),
   random bubbles and backpressure, tlast framing, reset mid-stream, and the latency in cycles
   measured against the latency that generation reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..log import progress

ALL_TESTS = ("test_batch", "test_backpressure", "test_framing", "test_reset_mid_stream", "test_latency_throughput")


@dataclass
class SimOptions:
    """The ``[simulate]`` table of a flow file."""

    cocotb: bool = True          # run the AXI-Stream testbench (else bulk emulation only)
    tests: list = field(default_factory=lambda: list(ALL_TESTS))
    emulator_threads: int = 2    # threads for the bulk emulation


@dataclass
class SimReport:
    n_samples: int
    emu_exact_csim: float
    emu_exact_keras: float | None
    emu_samples_per_s: float
    emu_build_s: float | None
    tb: dict | None = None       # per test: passed / message / metrics
    tb_exact_samples: int | None = None
    latency_reported: int | None = None
    latency_measured: list | None = None
    tb_cycles_per_s: float | None = None
    tb_build_s: float | None = None
    outputs: np.ndarray | None = field(default=None, repr=False)
    tb_samples: int | None = None         # samples the testbench's batch test streamed
    compared_with: str = "C-sim outputs"  # what the RTL must equal (see rtl_reference)
    probe_samples: int = 0
    emu_probe_exact: float | None = None  # on the probe set of random on-grid inputs

    @property
    def tb_passed(self) -> bool | None:
        return None if self.tb is None else all(t.get("passed") for t in self.tb.values())

    def failures(self) -> list[str]:
        out = []
        if self.emu_exact_csim < 1.0:
            out.append(f"RTL emulation equals the {self.compared_with} on {self.emu_exact_csim:.4f} of the test samples")
        if self.emu_probe_exact is not None and self.emu_probe_exact < 1.0:
            out.append(f"RTL emulation equals the {self.compared_with} on {self.emu_probe_exact:.4f} of "
                       f"{self.probe_samples} probe inputs")
        for name, t in (self.tb or {}).items():
            if not t.get("passed"):
                out.append(f"{name}: {t.get('message', 'failed')}")
        if self.latency_measured and any(l != self.latency_reported for l in self.latency_measured):
            out.append(f"measured latency {self.latency_measured} != reported {self.latency_reported}")
        return out


def rows_equal(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a.reshape(len(a), -1) == b.reshape(len(b), -1)).all(axis=1)


def rtl_reference(model, x: np.ndarray, csim_out: np.ndarray, softmax: str | None) -> tuple:
    """What the RTL must equal on ``x``, and its name.

    Without a softmax at the output: C-sim's outputs. The RTL implements no softmax: with
    ``[rtl] softmax = "logits"`` it outputs the softmax's input, compared with Keras's logits
    (which C-sim's probabilities came from); with ``"argmax"`` its index, compared with the argmax
    of those logits (the first maximum, as the RTL's comparator chain takes it).
    """
    from ..csim import softmax_input

    if softmax is None:
        return np.asarray(csim_out), "C-sim outputs"
    logits = softmax_input(model, x)
    if softmax == "logits":
        return logits, "Keras logits (the softmax's input)"
    return logits.argmax(axis=1)[:, None].astype(np.float64), "argmax of the Keras logits"


def simulate_rtl(build, x: np.ndarray, csim_out: np.ndarray, keras_out=None,
                 opts: SimOptions | None = None, *, model=None, probe_x: np.ndarray | None = None,
                 probe_csim: np.ndarray | None = None) -> SimReport:
    """Check ``build`` (an :class:`~fpga_dnn.rtl.build.RtlBuild`) on inputs ``x`` against C-sim
    (or, for a softmax-terminated ``model``, against its logits: :func:`rtl_reference`), and on
    the probe set ``probe_x`` (C-sim's outputs ``probe_csim``) likewise."""
    from .emulator import compile_emulator
    from ..runtime.packing import to_fixed
    from .cocotb_runner import run_axis_testbench

    opts = opts or SimOptions()
    softmax = getattr(build.traced, "softmax", None)
    if softmax is not None and model is None:
        raise ValueError("a softmax-terminated design is compared with the model's logits: pass model=")
    ref, what = rtl_reference(model, x, csim_out, softmax)
    progress(f"simulate: Verilator emulation of {build.design.top} (built once, cached by content hash)")
    emu = compile_emulator(build.design)
    t0 = time.perf_counter()
    out = emu.predict(x, n_threads=opts.emulator_threads)
    emu_s = time.perf_counter() - t0
    rep = SimReport(
        n_samples=len(x),
        emu_exact_csim=float(rows_equal(out, ref).mean()),
        emu_exact_keras=float(rows_equal(out, keras_out).mean()) if keras_out is not None and softmax is None
        else None,
        emu_samples_per_s=round(len(x) / max(emu_s, 1e-9), 1),
        emu_build_s=emu.build_seconds, latency_reported=build.spec.total_latency, outputs=out,
        compared_with=what,
    )
    progress(f"simulate: emulation {int(rep.emu_exact_csim * len(x))}/{len(x)} test samples equal the {what} "
             f"({rep.emu_samples_per_s:,.0f} samples/s)")
    x_all, ref_all = np.asarray(x), np.asarray(ref).reshape(len(x), -1)
    if probe_x is not None and len(probe_x):
        p_ref, _ = rtl_reference(model, probe_x, probe_csim, softmax)
        p_out = emu.predict(probe_x, n_threads=opts.emulator_threads)
        exact = rows_equal(p_out, p_ref)
        rep.probe_samples, rep.emu_probe_exact = len(probe_x), float(exact.mean())
        progress(f"simulate: emulation {int(exact.sum())}/{len(probe_x)} probe inputs equal the {what}")
        x_all = np.concatenate([x_all, probe_x])
        ref_all = np.concatenate([ref_all, np.asarray(p_ref).reshape(len(probe_x), -1)])
    if not opts.cocotb:
        return rep
    spec = build.spec
    n = len(x_all)
    # converted into the core's input type as C-sim's predict converts them (an HGQ2 model's input
    # quantizer may have fewer fraction bits than the data: the core takes its codes)
    q_in = np.asarray(emu.input_codes(x_all), dtype=np.int64).reshape((n,) + spec.input.shape)
    q_out = to_fixed(ref_all, spec.output.format).reshape((n,) + spec.output.shape)
    progress(f"simulate: cocotb AXI-Stream testbench ({', '.join(opts.tests)}) on {n} samples "
             f"(test split{' + probes' if n > len(x) else ''})")
    tb = run_axis_testbench(build.axis, q_in, q_out, testcases=list(opts.tests))
    rep.tb = {k: {"passed": v.get("passed"), "message": v.get("message", ""), "metrics": v.get("metrics", {})}
              for k, v in tb.tests.items()}
    rep.tb_build_s = tb.build_seconds
    batch = rep.tb.get("test_batch", {})
    rep.tb_samples = n
    if batch.get("passed"):
        rep.tb_exact_samples = int(batch["metrics"].get("samples", 0))
        rep.tb_cycles_per_s = round(float(batch["metrics"].get("cycles_per_second", 0.0)), 1)
    lat = rep.tb.get("test_latency_throughput", {}).get("metrics", {})
    rep.latency_measured = lat.get("latencies")
    progress(f"simulate: testbench {'passed' if rep.tb_passed else 'FAILED'}; latency measured "
             f"{rep.latency_measured} vs reported {rep.latency_reported} cycles"
             + (f"; {rep.tb_cycles_per_s:,.0f} cycles/s" if rep.tb_cycles_per_s else ""))
    return rep
