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

from ..errors import ConfigError
from ..log import progress

ALL_TESTS = ("test_batch", "test_backpressure", "test_framing", "test_reset_mid_stream", "test_latency_throughput")


@dataclass
class SimOptions:
    """The ``[simulate]`` table of a flow file."""

    cocotb: bool = True          # run the AXI-Stream testbench (else bulk emulation only)
    tests: list = field(default_factory=lambda: list(ALL_TESTS))
    emulator_threads: int = 2    # threads for the bulk emulation
    # The bulk emulation (a Verilator build of the bare core). Off, the testbench alone checks
    # every sample, through the shell: one Verilator build instead of two (needs cocotb).
    emulation: bool = True

    def check(self) -> "SimOptions":
        """Refuse a table that would check no sample: every sample is checked by the bulk
        emulation or, with it off, by the testbench's ``test_batch`` (the other tests stream a
        few frames for timing and framing, not the test set)."""
        from ..errors import UnknownNameError

        self.tests = list(self.tests)
        for name in self.tests:
            if name not in ALL_TESTS:
                raise UnknownNameError("[simulate] test", name, ALL_TESTS)
        if not self.emulation and not (self.cocotb and "test_batch" in self.tests):
            raise ConfigError("[simulate] emulation = false checks the samples in the testbench only: it needs "
                              "cocotb = true and 'test_batch' in tests (or set emulation = true)")
        return self


@dataclass
class SimReport:
    n_samples: int
    emu_exact_csim: float | None          # None: no bulk emulation (SimOptions.emulation off)
    emu_exact_keras: float | None
    emu_samples_per_s: float | None
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
        if self.emu_exact_csim is not None and self.emu_exact_csim < 1.0:
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
    the probe set ``probe_x`` (C-sim's outputs ``probe_csim``) likewise: in the bulk emulation
    and/or the testbench (which streams the test split and the probes, comparing every output)."""
    from .emulator import compile_emulator, input_codes
    from ..runtime.packing import to_fixed

    opts = (opts or SimOptions()).check()
    softmax = getattr(build.traced, "softmax", None)
    if softmax is not None and model is None:
        raise ValueError("a softmax-terminated design is compared with the model's logits: pass model=")
    ref, what = rtl_reference(model, x, csim_out, softmax)
    rep = SimReport(n_samples=len(x), emu_exact_csim=None, emu_exact_keras=None, emu_samples_per_s=None,
                    emu_build_s=None, latency_reported=build.spec.total_latency, compared_with=what)
    x_all, ref_all = np.asarray(x), np.asarray(ref).reshape(len(x), -1)
    has_probes = probe_x is not None and len(probe_x) > 0
    if has_probes:
        p_ref, _ = rtl_reference(model, probe_x, probe_csim, softmax)
        rep.probe_samples = len(probe_x)
        x_all = np.concatenate([x_all, probe_x])
        ref_all = np.concatenate([ref_all, np.asarray(p_ref).reshape(len(probe_x), -1)])
    if opts.emulation:
        progress(f"simulate: Verilator emulation of {build.design.top} (built once, cached by content hash)")
        emu = compile_emulator(build.design)
        t0 = time.perf_counter()
        out = emu.predict(x, n_threads=opts.emulator_threads)
        emu_s = time.perf_counter() - t0
        rep.emu_exact_csim = float(rows_equal(out, ref).mean())
        if keras_out is not None and softmax is None:
            rep.emu_exact_keras = float(rows_equal(out, keras_out).mean())
        rep.emu_samples_per_s = round(len(x) / max(emu_s, 1e-9), 1)
        rep.emu_build_s, rep.outputs = emu.build_seconds, out
        progress(f"simulate: emulation {int(rep.emu_exact_csim * len(x))}/{len(x)} test samples equal the {what} "
                 f"({rep.emu_samples_per_s:,.0f} samples/s)")
        if has_probes:
            exact = rows_equal(emu.predict(probe_x, n_threads=opts.emulator_threads), p_ref)
            rep.emu_probe_exact = float(exact.mean())
            progress(f"simulate: emulation {int(exact.sum())}/{len(probe_x)} probe inputs equal the {what}")
    if not opts.cocotb:
        return rep
    spec, n = build.spec, len(x_all)
    # converted into the core's input type as C-sim's predict converts them (an HGQ2 model's input
    # quantizer may have fewer fraction bits than the data: the core takes its codes)
    q_in = np.asarray(input_codes(build.design, x_all), dtype=np.int64).reshape((n,) + spec.input.shape)
    q_out = to_fixed(ref_all, spec.output.format).reshape((n,) + spec.output.shape)
    _run_testbench(rep, build, q_in, q_out, opts, n_split=len(x))
    return rep


def _run_testbench(rep: SimReport, build, q_in, q_out, opts: SimOptions, *, n_split: int) -> None:
    """The cocotb AXI-Stream testbench on the input codes ``q_in`` (expected ``q_out``), into ``rep``."""
    from .cocotb_runner import run_axis_testbench

    n = len(q_in)
    progress(f"simulate: cocotb AXI-Stream testbench ({', '.join(opts.tests)}) on {n} samples "
             f"(test split{' + probes' if n > n_split else ''})")
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
