"""Bulk Verilator emulation of a stitched streaming design: frames in, outputs out, cycles measured.

The design's AXI top (``<name>_axis``) is built once per content hash (the project's cache,
:func:`fpga_dnn.simulate.verilator.cached_build`) with a small C++ harness that streams every
sample's beats (fpga_dnn-lanes-v1, packed by :mod:`fpga_dnn.runtime.packing`: the runtime's own
code), optionally with random input bubbles and output backpressure, and records each output
beat. It measures cycles per frame in steady state (the interval between consecutive frames'
last output beats) and reads each FIFO's maximum occupancy from the core's debug port.

A stall watchdog replaces a timeout: when no stream of the design moves a beat for
``max_idle`` cycles while results are outstanding, the run stops and :class:`StreamStallError`
names the streams that hold a beat nobody takes (and the FIFOs that are full), i.e. the layer or
FIFO where the pipeline stalled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fpga_dnn.errors import FpgaDnnError
from fpga_dnn.log import progress
from fpga_dnn.runtime import packing
from fpga_dnn.simulate.check import rows_equal
from fpga_dnn.simulate.verilator import cached_build, run_logged, verilator_env

from fpga_dnn.rtl.stream.stitch import StreamDesign

HARNESS_VERSION = 2
VERILATOR_FLAGS = ["--cc", "--exe", "--build", "-j", "2", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "-CFLAGS", "-O1", "--x-initial", "unique", "--x-assign", "unique"]


class StreamStallError(FpgaDnnError):
    """The streamed design stopped moving data before all results came out; names where."""


@dataclass
class StreamRun:
    """What one emulation run produced."""

    outputs: np.ndarray              # integer codes, (n, *spec.output.shape)
    cycles: int                      # total simulated cycles
    cycles_per_frame: float          # steady state: interval between frames' last output beats
    first_latency: int               # cycles from the first input beat to the first frame's last output beat
    fifo_max: dict = field(default_factory=dict)   # FIFO edge -> (max occupancy, depth)
    tlast_ok: bool = True
    seconds: float = 0.0
    build_seconds: float | None = None

    @property
    def frames_per_second_sim(self) -> float:
        return len(self.outputs) / self.seconds if self.seconds else 0.0


def _harness(top: str, s_bits: int, m_bits: int, n_streams: int, n_fifos: int) -> str:
    return f"""// fpga_dnn.simulate.stream_emulator harness v{HARNESS_VERSION} for {top}.
// usage: sim IN.bin N_BEATS_IN BEATS_PER_SAMPLE_OUT N_SAMPLES OUT.bin STATS.txt SEED P_BUBBLE P_STALL MAX_IDLE
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
#include "V{top}.h"
#include "verilated.h"

static const int SB = {s_bits} / 8, MB = {m_bits} / 8, NS = {n_streams}, NF = {n_fifos};

template <typename T> static void put_bytes(T& port, const uint8_t* p, int n) {{
    uint64_t v = 0; std::memcpy(&v, p, n < 8 ? n : 8); port = (T)v;
}}
template <std::size_t N> static void put_bytes(VlWide<N>& port, const uint8_t* p, int n) {{
    for (std::size_t i = 0; i < N; ++i) {{ uint32_t w = 0; int k = (int)(4 * i);
        if (k < n) std::memcpy(&w, p + k, (n - k) < 4 ? (n - k) : 4); port[i] = w; }}
}}
template <typename T> static void get_bytes(const T& port, uint8_t* p, int n) {{
    uint64_t v = (uint64_t)port; std::memcpy(p, &v, n < 8 ? n : 8);
}}
template <std::size_t N> static void get_bytes(const VlWide<N>& port, uint8_t* p, int n) {{
    for (std::size_t i = 0; i < N; ++i) {{ uint32_t w = port[i]; int k = (int)(4 * i);
        if (k < n) std::memcpy(p + k, &w, (n - k) < 4 ? (n - k) : 4); }}
}}
template <typename T> static int bit(const T& port, int i) {{ return (int)(((uint64_t)port >> i) & 1); }}
template <std::size_t N> static int bit(const VlWide<N>& port, int i) {{ return (port[i / 32] >> (i % 32)) & 1; }}
template <typename T> static unsigned field16(const T& port, int i) {{ return (unsigned)(((uint64_t)port >> (16 * i)) & 0xffff); }}
template <std::size_t N> static unsigned field16(const VlWide<N>& port, int i) {{
    return (port[(16 * i) / 32] >> ((16 * i) % 32)) & 0xffff; }}

int main(int argc, char** argv) {{
    if (argc < 11) {{ std::fprintf(stderr, "usage\\n"); return 2; }}
    Verilated::commandArgs(argc, argv);
    FILE* fi = std::fopen(argv[1], "rb");
    long n_in = std::atol(argv[2]);
    long bps_out = std::atol(argv[3]);
    long n_samples = std::atol(argv[4]);
    std::vector<uint8_t> in((size_t)n_in * SB);
    std::vector<uint8_t> last((size_t)n_in);
    if (!fi || std::fread(in.data(), 1, in.size(), fi) != in.size() || std::fread(last.data(), 1, last.size(), fi) != last.size()) {{
        std::fprintf(stderr, "cannot read %s\\n", argv[1]); return 2; }}
    std::fclose(fi);
    unsigned seed = (unsigned)std::atol(argv[7]);
    double p_bubble = std::atof(argv[8]), p_stall = std::atof(argv[9]);
    long max_idle = std::atol(argv[10]);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    long n_out = bps_out * n_samples;
    std::vector<uint8_t> out((size_t)n_out * MB);
    std::vector<uint8_t> olast((size_t)n_out);
    std::vector<long> frame_done((size_t)n_samples, 0);
    V{top}* top = new V{top};
    top->clk = 0; top->aresetn = 0; top->s_axis_tvalid = 0; top->m_axis_tready = 0; top->s_axis_tlast = 0;
    {{ std::vector<uint8_t> ones((SB + 7) / 8, 0xff); put_bytes(top->s_axis_tkeep, ones.data(), (SB + 7) / 8); }}  // whole beats
    for (int i = 0; i < 4; ++i) {{ top->clk = 0; top->eval(); top->clk = 1; top->eval(); }}
    top->aresetn = 1;
    long ii = 0, oi = 0, cyc = 0, idle = 0, first_in = -1;
    bool offer = false;
    while (oi < n_out) {{
        top->clk = 0;
        if (!offer && ii < n_in && u(rng) >= p_bubble) offer = true;
        top->s_axis_tvalid = offer ? 1 : 0;
        if (offer) {{ put_bytes(top->s_axis_tdata, &in[(size_t)ii * SB], SB); top->s_axis_tlast = last[ii]; }}
        top->m_axis_tready = (u(rng) >= p_stall) ? 1 : 0;
        top->eval();
        bool in_fire = offer && top->s_axis_tready;
        bool out_fire = top->m_axis_tvalid && top->m_axis_tready;
        if (out_fire) {{
            get_bytes(top->m_axis_tdata, &out[(size_t)oi * MB], MB);
            olast[oi] = top->m_axis_tlast;
        }}
        bool moved = in_fire || out_fire;
        for (int s = 0; s < NS && !moved; ++s) moved = bit(top->dbg_valid, s) && bit(top->dbg_ready, s);
        top->clk = 1; top->eval();
        ++cyc;
        if (in_fire) {{ if (first_in < 0) first_in = cyc; ++ii; offer = false; }}
        if (out_fire) {{ ++oi; if (oi % bps_out == 0) frame_done[oi / bps_out - 1] = cyc; }}
        idle = moved ? 0 : idle + 1;
        if (idle > max_idle) break;
    }}
    FILE* fo = std::fopen(argv[5], "wb");
    std::fwrite(out.data(), 1, (size_t)oi * MB, fo);
    std::fwrite(olast.data(), 1, (size_t)oi, fo);
    std::fclose(fo);
    FILE* fs = std::fopen(argv[6], "w");
    std::fprintf(fs, "cycles %ld\\nout_beats %ld\\nin_beats %ld\\nfirst_in %ld\\nstalled %d\\n", cyc, oi, ii, first_in,
                 oi < n_out ? 1 : 0);
    std::fprintf(fs, "valid"); for (int s = 0; s < NS; ++s) std::fprintf(fs, " %d", bit(top->dbg_valid, s));
    std::fprintf(fs, "\\nready"); for (int s = 0; s < NS; ++s) std::fprintf(fs, " %d", bit(top->dbg_ready, s));
    std::fprintf(fs, "\\nfifo_max"); for (int f = 0; f < NF; ++f) std::fprintf(fs, " %u", field16(top->dbg_fifo_max, f));
    std::fprintf(fs, "\\nframe_done"); for (long f = 0; f < n_samples; ++f) std::fprintf(fs, " %ld", frame_done[f]);
    std::fprintf(fs, "\\n");
    std::fclose(fs);
    top->final();
    delete top;
    return 0;
}}
"""


class StreamEmulator:
    """A built streaming design; :meth:`run` streams a batch through it."""

    def __init__(self, design: StreamDesign, exe: Path, build_seconds: float | None):
        self.design, self.exe, self.build_seconds = design, exe, build_seconds
        self.spec = design.spec

    def run(self, codes: np.ndarray, *, seed: int = 1, p_bubble: float = 0.0, p_stall: float = 0.0,
            max_idle: int | None = None, work_dir: Path | None = None) -> StreamRun:
        """Stream input integer codes ``(n, *input shape)``; returns outputs and measurements."""
        spec = self.spec
        codes = np.asarray(codes, dtype=np.int64).reshape(len(codes), -1)
        n = len(codes)
        buf = packing.pack(codes, spec.input)                         # (n, sample_bytes)
        sb = spec.input.stream_bits // 8
        beats = buf.reshape(-1, sb)
        bps_in = spec.input.beats_per_sample
        last = np.zeros(len(beats), dtype=np.uint8)
        last[bps_in - 1::bps_in] = 1
        work = Path(work_dir or self.design.directory / "emulate")
        work.mkdir(parents=True, exist_ok=True)
        (work / "in.bin").write_bytes(beats.tobytes() + last.tobytes())
        idle = max_idle if max_idle is not None else 20_000 + 50 * self._frame_cycles_bound()
        bps_out = spec.output.beats_per_sample
        cmd = [str(self.exe), str(work / "in.bin"), str(len(beats)), str(bps_out), str(n), str(work / "out.bin"),
               str(work / "stats.txt"), str(seed), str(p_bubble), str(p_stall), str(idle)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=self.design.directory, capture_output=True, text=True,
                              env={**os.environ, **verilator_env()})
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise FpgaDnnError(f"streaming emulation failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
        stats = self._stats(work / "stats.txt")
        fifo_max = {f.what: (int(m), f.depth) for f, m in zip(self.design.fifos, stats["fifo_max"])}
        if stats["stalled"][0]:
            raise StreamStallError(self._stall_message(stats, n, fifo_max))
        mb = spec.output.stream_bits // 8
        raw = (work / "out.bin").read_bytes()
        n_out = n * bps_out
        out = np.frombuffer(raw[: n_out * mb], dtype=np.uint8).reshape(n, bps_out * mb)
        olast = np.frombuffer(raw[n_out * mb:], dtype=np.uint8)
        outputs = packing.unpack(out, spec.output, batch=n)
        done = np.array(stats["frame_done"], dtype=np.int64)
        cpf = float((done[-1] - done[0]) / (n - 1)) if n > 1 else float(done[0] - stats["first_in"][0])
        tlast_ok = bool(np.array_equal(olast, np.tile(np.r_[np.zeros(bps_out - 1), 1], n).astype(np.uint8)))
        return StreamRun(outputs, int(stats["cycles"][0]), cpf, int(done[0] - stats["first_in"][0]), fifo_max,
                         tlast_ok, seconds, self.build_seconds)

    def _frame_cycles_bound(self) -> int:
        return max((n.cycles_per_frame() for n in self.design.graph.matvec_nodes()), default=0) + \
            8 * self.design.graph.input.out_pixels

    @staticmethod
    def _stats(path: Path) -> dict:
        d = {}
        for line in path.read_text().splitlines():
            k, *v = line.split()
            d[k] = [int(x) for x in v]
        return d

    def _stall_message(self, stats: dict, n: int, fifo_max: dict) -> str:
        streams = self.design.streams
        valid, ready = stats["valid"], stats["ready"]
        blocked = [s for s, v, r in zip(streams, valid, ready) if v and not r]
        full = [w for w, (m, d) in fifo_max.items() if m >= d]
        # the stall's source: the furthest-downstream stream holding a beat nobody takes
        where = blocked[-1].what if blocked else "no stream holds a beat (a unit is waiting for input)"
        waiting = [s.what for s in blocked]
        return (f"streaming design {self.design.top} stalled after {stats['cycles'][0]} cycles with "
                f"{stats['out_beats'][0]}/{n * self.spec.output.beats_per_sample} output beats: blocked at {where}"
                + (f"; streams waiting to be taken: {', '.join(waiting)}" if waiting else "")
                + (f"; full FIFOs: {', '.join(full)}" if full else ""))


def build_emulator(design: StreamDesign, *, jobs: int = 2) -> StreamEmulator:
    """Verilate the design's AXI top with the harness, once per content hash."""
    top = design.top
    harness = _harness(top, design.spec.input.stream_bits, design.spec.output.stream_bits,
                       len(design.streams), max(1, len(design.fifos)))
    sources = [Path(s) for s in design.sources]

    def build(d: Path) -> None:
        (d / "harness.cpp").write_text(harness)
        cmd = ["verilator", *VERILATOR_FLAGS, "--top-module", top, "-Mdir", str(d / "obj"), "-o", "sim",
               *map(str, sources), str(d / "harness.cpp")]
        if jobs != 2:
            cmd[cmd.index("-j") + 1] = str(jobs)
        run_logged(cmd, d / "build.log", f"Verilator build of the streaming design {top}", cwd=d)
        shutil.copy(d / "obj" / "sim", d / "sim")

    t0 = time.perf_counter()
    d, built = cached_build("stream_design", sources, {"top": top, "harness": harness, "flags": VERILATOR_FLAGS}, build)
    from fpga_dnn.simulate.verilator import build_seconds

    secs = build_seconds(d) if not built else time.perf_counter() - t0
    return StreamEmulator(design, d / "sim", secs)


@dataclass
class StreamCheck:
    """A streamed design against C-sim, Keras and the hardware graph's reference, on one batch
    (the test split) and on the probe set (random inputs on the input grid)."""

    n_samples: int
    exact_csim: float
    exact_keras: float | None
    exact_reference: float
    cycles_per_frame: float
    predicted_cycles_per_frame: int | None
    first_latency: int
    fifo_max: dict
    tlast_ok: bool
    samples_per_s: float
    build_seconds: float | None
    backpressure_exact: float | None = None
    probe_samples: int = 0
    probe_exact: float | None = None      # None: no probe set
    first_mismatch: str | None = None     # the first departing sample, and the layer where it departs
    compared_with: str = "C-sim"

    @property
    def probe_exact_samples(self) -> str | None:
        return None if self.probe_exact is None else f"{round(self.probe_exact * self.probe_samples)}/{self.probe_samples}"

    def failures(self) -> list[str]:
        bad = []
        for what, v in ((self.compared_with, self.exact_csim), ("the reference", self.exact_reference),
                        (f"{self.compared_with} under backpressure", self.backpressure_exact)):
            if v is not None and v != 1.0:
                bad.append(f"streamed RTL equals {what} on {v:.4f} of {self.n_samples} samples")
        if self.probe_exact is not None and self.probe_exact != 1.0:
            bad.append(f"streamed RTL equals {self.compared_with} on {self.probe_exact:.4f} of "
                       f"{self.probe_samples} probe inputs")
        if self.first_mismatch:
            bad.append(f"first mismatch: {self.first_mismatch}")
        if not self.tlast_ok:
            bad.append("tlast did not mark each result's last beat")
        return bad


def _exact(a, b) -> float:
    return float(np.mean(rows_equal(a, b)))


def check_stream(build, x, csim_out, keras_out=None, *, probe_x=None, probe_csim=None,
                 backpressure_samples: int = 20, seed: int = 1, compared_with: str = "C-sim",
                 locate=None) -> StreamCheck:
    """Run ``build`` (an :class:`fpga_dnn.rtl.build.StreamBuild`) on float samples ``x`` and on the
    probe set ``probe_x`` (what the RTL must equal on them: ``csim_out``, ``probe_csim``); compare.

    Test split and probes stream in one run (frames back to back). On a departure the first
    differing sample (test split first, then probes) is named with the first layer whose stream
    departs on it: ``locate(codes)`` (default :func:`first_departing_layer` on the build's graph,
    a Verilator build per node up to that layer) returns that layer's name or None."""
    from fpga_dnn.hw import reference

    graph = build.graph
    emu = build_emulator(build.design)
    codes = reference.quantize_inputs(graph, x)
    n = len(codes)
    want = np.asarray(csim_out).reshape(n, -1)
    if probe_x is not None and len(probe_x):
        codes = np.concatenate([codes, reference.quantize_inputs(graph, probe_x)])
        want = np.concatenate([want, np.asarray(probe_csim).reshape(len(probe_x), -1)])
    run = emu.run(codes, seed=seed)
    f = graph.out_node.out_type.f
    y = np.ldexp(run.outputs.reshape(len(codes), -1).astype(np.float64), -f)
    ref = np.ldexp(reference.run(graph, codes[:n]).reshape(n, -1).astype(np.float64), -f)
    same = rows_equal(y, want)
    bp = None
    if backpressure_samples:
        k = min(backpressure_samples, n)
        run_bp = emu.run(codes[:k], seed=seed + 1, p_bubble=0.3, p_stall=0.3)
        bp = _exact(np.ldexp(run_bp.outputs.reshape(k, -1).astype(np.float64), -f), want[:k])
    plan = getattr(build, "plan", None)
    check = StreamCheck(n, float(same[:n].mean()), None if keras_out is None else _exact(y[:n], keras_out),
                        _exact(y[:n], ref), run.cycles_per_frame, plan.cycles_per_frame if plan else None,
                        run.first_latency, run.fifo_max, run.tlast_ok, run.frames_per_second_sim,
                        emu.build_seconds, bp, probe_samples=len(codes) - n,
                        probe_exact=float(same[n:].mean()) if len(codes) > n else None, compared_with=compared_with)
    if not same.all():
        i = int(np.flatnonzero(~same)[0])
        which = f"test sample {i}" if i < n else f"probe sample {i - n}"
        locate = locate or (lambda c: first_departing_layer(graph, c, Path(build.design.directory) / "layer_check"))
        progress(f"simulate: {which} departs from {compared_with}: checking the stream layer by layer")
        layer = locate(codes[i:i + 1])
        check.first_mismatch = (f"{which}: first departing layer {layer!r}" if layer else
                                f"{which}: every layer's stream equals the hardware graph's reference, "
                                f"which departs from {compared_with} on it")
    return check


def first_departing_layer(graph, codes: np.ndarray, directory: Path, stream_bits: int = 64,
                          expected: dict | None = None) -> str | None:
    """The first node (topological order) whose streamed output departs from the expected codes.

    Builds the sub-design computing each node in turn (``HwGraph.upto``) and compares its output
    stream with ``expected`` (node name -> codes; default :func:`fpga_dnn.hw.reference.run` on
    ``codes``, which equals hls4ml's C-sim layer by layer); None when every node agrees.
    Costs a Verilator build per node checked: run it on a mismatch, with the failing samples."""
    from fpga_dnn.hw import reference

    from fpga_dnn.rtl.stream.stitch import write_stream_design

    want = expected if expected is not None else reference.run(graph, codes, keep=True)
    for node in graph.nodes[1:]:
        sub = graph.upto(node.name)
        design = write_stream_design(sub, Path(directory) / node.name, name=f"chk_{len(sub)}",
                                     stream_bits=stream_bits)
        got = build_emulator(design).run(codes).outputs.reshape(len(codes), -1)
        if not np.array_equal(got, want[node.name].reshape(len(codes), -1)):
            return node.name
    return None
