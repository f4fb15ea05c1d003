"""cocotb testbench of a core inside the AXI-Stream shell (any Design: an unrolled core written by
``fpga_dnn.rtl.shell.write_axis_design``, or a stitched streaming design; both tops have the same
AXI-Stream ports, ``fpga_dnn.rtl.shell.axis_ports``). ``test_reset_mid_stream`` and
``test_latency_throughput`` are the unrolled shell's (credits, one sample per beat group).

Run through ``fpga_dnn.simulate.cocotb_runner.run_axis_testbench``, never by hand: the runner
writes a JSON config (path in ``$FPGA_DNN_TB_CONFIG``) with the design's spec, ``.npy`` files of
input integers and the expected output integers per sample (the dummy core's reference, or
C-sim for a real network), a seed and options. Every test writes its measurements into the
result JSON named by the config, which the runner hands back to pytest.

Samples are packed and unpacked with :mod:`fpga_dnn.runtime.packing`, the runtime's own code,
so these tests also pin the beat layout the board runtime relies on.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout
from cocotb.simtime import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from fpga_dnn.runtime.packing import pack, unpack
from fpga_dnn.runtime.spec import Spec

CLOCK_NS = 10
_CONFIG = json.loads(Path(os.environ["FPGA_DNN_TB_CONFIG"]).read_text())
_RESULTS: dict = {}


def _record(test: str, **metrics) -> None:
    """Store one test's measurements; the file is rewritten so a crash keeps earlier results."""
    _RESULTS[test] = metrics
    Path(_CONFIG["result_path"]).write_text(json.dumps(_RESULTS, indent=2, default=float))


class _BeatBus(AxiStreamBus):
    """The stream's signals but tkeep: with tkeep connected cocotbext-axi moves one byte per lane
    (no byte_lanes=1). The shell's s_axis_tkeep is driven all ones by hand (the DMA sends whole
    beats); m_axis_tkeep is checked on every output beat by HandshakeLog."""

    _optional_signals = [s for s in AxiStreamBus._optional_signals if s != "tkeep"]


def _pauses(rng: random.Random, probability: float):
    """Endless per-cycle pause flags for cocotbext-axi's pause generators."""
    return (rng.random() < probability for _ in itertools.count())


def shell_fifo_depth(core_latency: int) -> int:
    """The shell's output FIFO depth (``OUT_FIFO_DEPTH`` in sim/axis_shell.v): the smallest power
    of two >= core latency + 2, at least 2. It is also the shell's credit limit."""
    need = int(core_latency) + 2
    return 2 if need <= 2 else 1 << (need - 1).bit_length()


class StallSchedule:
    """Stall patterns derived from the spec, so that every design exercises its credits.

    Random pauses alone fill the output FIFO only when a sample's output beats outweigh its
    input beats; a design with many input beats per output beat would drain as fast as it fills
    and never push back on s_axis. Here the sink instead alternates a *hold* window, during which
    it takes nothing, with a *drain* window of random pauses. A hold window is long enough for
    the source (paused at random too) to deliver ``fill_samples`` samples: the FIFO's depth in
    admitted samples, one more in the hold register and one whose first beat must then stall.
    So whatever the ratio of input to output beats, the first hold window alone drives the
    credits to zero and s_axis_tready low; tests that need it send at least ``fill_samples``.
    """

    SOURCE_PAUSE = 0.3  # the source also pauses every 4th cycle: bubbles are certain
    DRAIN_PAUSE = 0.5

    def __init__(self, spec: Spec, rng: random.Random, design: dict = None):
        self.rng = rng
        design = design or {}
        self.in_beats = spec.input.beats_per_sample
        self.out_beats = spec.output.beats_per_sample
        # the design's own pace (the Design's interval): a streaming core takes many cycles a sample
        self.sample_cycles = max(self.in_beats, self.out_beats, int(design.get("interval") or 0))
        if design.get("kind") == "streaming":
            # No output FIFO and no credits: the units' line buffers, banks and FIFOs hold what is
            # in flight, a few samples at most. A core slower than its input stream pushes back on
            # s_axis by itself; a hold of four samples' time backs the whole pipeline up to it.
            self.depth = None
            self.fill_samples = 2
            self.hold_cycles = 4 * self.sample_cycles + spec.total_latency + 8
        else:
            self.depth = shell_fifo_depth(spec.core_latency)
            self.fill_samples = self.depth + 2
            # the source delivers at least 3/4 * (1 - 0.3) of a beat per cycle on average: twice
            # the beats needed at that rate, plus the pipeline's own latency, is a wide margin
            beats = (self.fill_samples - 1) * self.in_beats + 1
            self.hold_cycles = int(2 * beats / (0.75 * (1 - self.SOURCE_PAUSE))) + spec.total_latency + 8
        self.drain_cycles = self.hold_cycles

    def source(self):
        rng, p = self.rng, self.SOURCE_PAUSE
        return ((i % 4 == 3) or rng.random() < p for i in itertools.count())

    def sink(self):
        rng, p = self.rng, self.DRAIN_PAUSE
        period = self.hold_cycles + self.drain_cycles
        return ((i % period) < self.hold_cycles or rng.random() < p for i in itertools.count())

    def extra_cycles(self, samples: int) -> int:
        """Simulated cycles the hold windows add to a run of ``samples`` samples (for budgets)."""
        drained_per_period = max(1, self.drain_cycles // (4 * max(self.out_beats, self.sample_cycles)))
        return (samples // drained_per_period + 2) * (self.hold_cycles + self.drain_cycles)


class HandshakeLog:
    """Per-cycle record of both streams' handshakes and stalls, sampled at each rising edge
    like cocotbext-axi does. Costs simulation speed, so only tests that need it start it."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        self.in_beats: list = []    # (cycle, tlast) of accepted s_axis beats
        self.out_beats: list = []   # (cycle, tlast) of accepted m_axis beats
        self.in_stalls = 0          # s_axis_tvalid & ~s_axis_tready
        self.out_stalls = 0         # m_axis_tvalid & ~m_axis_tready
        self.in_bubbles = 0         # s_axis idle while the shell was ready
        self.out_partial_keep = 0   # accepted m_axis beats whose tkeep was not all ones
        self.task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        d = self.dut
        sv, sr, sl = d.s_axis_tvalid, d.s_axis_tready, d.s_axis_tlast
        mv, mr, ml = d.m_axis_tvalid, d.m_axis_tready, d.m_axis_tlast
        mk, all_keep = d.m_axis_tkeep, (1 << len(d.m_axis_tkeep)) - 1
        edge = RisingEdge(d.clk)
        while True:
            await edge
            self.cycle += 1
            s_valid, s_ready = sv.value == 1, sr.value == 1
            m_valid, m_ready = mv.value == 1, mr.value == 1
            if s_valid and s_ready:
                self.in_beats.append((self.cycle, int(sl.value)))
            elif s_valid:
                self.in_stalls += 1
            elif s_ready:
                self.in_bubbles += 1
            if m_valid and m_ready:
                self.out_beats.append((self.cycle, int(ml.value)))
                self.out_partial_keep += int(mk.value) != all_keep
            elif m_valid:
                self.out_stalls += 1

    def stop(self) -> None:
        self.task.cancel()


class Bench:
    """Clock, reset, AXI-Stream source and sink, and the config's data for one cocotb test."""

    def __init__(self, dut):
        self.dut = dut
        self.spec = Spec.from_dict(_CONFIG["spec"])
        self.inputs = np.load(_CONFIG["inputs"])
        self.expected = np.load(_CONFIG["expected"])
        if len(self.inputs) != len(self.expected):
            raise ValueError("inputs and expected outputs differ in length")
        self.options = _CONFIG.get("options", {})
        self.rng = random.Random(_CONFIG.get("seed", 1))
        self.schedule = StallSchedule(self.spec, self.rng, _CONFIG.get("design"))
        self.in_beat_bytes = self.spec.input.stream_bits // 8
        self.out_sample_bytes = self.spec.output.sample_bytes
        self.clock = Clock(dut.clk, CLOCK_NS, unit="ns")
        self.clock.start()
        dut.aresetn.value = 0
        # byte_lanes=1: the drivers move one whole beat per "byte", i.e. one tdata read or
        # write per beat instead of one per byte, which roughly doubles simulation speed on wide
        # streams. Frames are then lists of beat integers (see beats()/join_beats()).
        self.source = AxiStreamSource(_BeatBus.from_prefix(dut, "s_axis"), dut.clk, dut.aresetn,
                                      reset_active_level=False, byte_lanes=1)
        self.sink = AxiStreamSink(_BeatBus.from_prefix(dut, "m_axis"), dut.clk, dut.aresetn,
                                  reset_active_level=False, byte_lanes=1)
        dut.s_axis_tkeep.value = (1 << self.in_beat_bytes) - 1  # whole beats, as the DMA sends them
        for driver in (self.source, self.sink):  # a log line per frame costs ~20% of the speed
            driver.log.setLevel(logging.WARNING)

    def use_samples(self, count: int) -> int:
        """Make the bench's data at least ``count`` samples long by cycling through the given
        ones (a 2-sample data set still fills the FIFO); returns the number of samples."""
        n = len(self.inputs)
        if count > n:
            idx = np.arange(count) % n
            self.inputs, self.expected = self.inputs[idx], self.expected[idx]
        return max(count, n)

    def stress_count(self) -> int:
        """Samples for the stall tests: the configured number (default 300) or all there are,
        but never fewer than two hold windows' worth (see :class:`StallSchedule`)."""
        want = min(len(self.inputs), int(self.options.get("stress_samples", 300)))
        want = max(want, 2 * self.schedule.fill_samples)
        self.use_samples(want)
        return want

    async def reset(self, cycles: int = 4) -> None:
        """Hold aresetn low for some cycles, drop queued traffic, release and settle."""
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.clk, cycles)
        self.source.clear()
        self.sink.clear()
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.clk, 2)

    def frame(self, lo: int, hi: int) -> bytes:
        """Samples lo..hi-1 packed as one frame (one DMA transfer)."""
        return pack(self.inputs[lo:hi], self.spec.input).tobytes()

    def beats(self, data: bytes) -> list:
        """Frame bytes -> one integer per s_axis beat (byte j of a beat is tdata[8j+7:8j])."""
        w = self.in_beat_bytes
        assert len(data) % w == 0, "frames are whole beats"
        return [int.from_bytes(data[i:i + w], "little") for i in range(0, len(data), w)]

    def join_beats(self, words) -> bytes:
        """m_axis beat integers -> frame bytes."""
        w = self.spec.output.stream_bits // 8
        return b"".join(int(x).to_bytes(w, "little") for x in words)

    def send(self, data: bytes) -> None:
        self.source.send_nowait(AxiStreamFrame(self.beats(data)))

    def send_frames(self, bounds) -> None:
        for lo, hi in bounds:
            self.send(self.frame(lo, hi))

    def random_frames(self, lo: int, hi: int, max_samples: int) -> list:
        """Split samples lo..hi-1 into frames of random sizes 1..max_samples."""
        bounds, i = [], lo
        while i < hi:
            j = min(hi, i + self.rng.randint(1, max_samples))
            bounds.append((i, j))
            i = j
        return bounds

    def cycle_budget(self, samples: int) -> int:
        """Generous simulated time for `samples` to pass even at 20% output duty: a hang fails
        the test instead of running forever."""
        per_sample = self.schedule.sample_cycles
        return (samples * per_sample * 10 + 20 * (self.spec.total_latency + 10)
                + self.schedule.extra_cycles(samples)) * CLOCK_NS

    async def recv_frames(self, count: int, samples: int) -> list:
        """Receive `count` frames within the cycle budget; returns their bytes."""
        frames = []
        budget = self.cycle_budget(samples)
        for _ in range(count):
            frame = await with_timeout(self.sink.recv(), budget, "ns")
            frames.append(self.join_beats(frame.tdata))
        return frames

    def decode(self, data: bytes) -> np.ndarray:
        if len(data) % self.out_sample_bytes:
            raise AssertionError(f"output frame of {len(data)} bytes is not whole samples "
                                 f"of {self.out_sample_bytes} bytes")
        return unpack(np.frombuffer(data, dtype=np.uint8), self.spec.output)

    def check_frames(self, frames: list, bounds: list, expected: np.ndarray = None) -> int:
        """Each received frame holds exactly its input frame's samples, in order, equal to the
        expected outputs. Returns the number of samples checked."""
        expected = self.expected if expected is None else expected
        assert len(frames) == len(bounds), f"received {len(frames)} frames, sent {len(bounds)}"
        for n, (data, (lo, hi)) in enumerate(zip(frames, bounds)):
            got = self.decode(data)
            assert len(got) == hi - lo, (f"frame {n}: {len(got)} output samples for "
                                         f"{hi - lo} input samples {lo}..{hi - 1}")
            want = expected[lo:hi]
            bad = np.flatnonzero((got != want).reshape(len(got), -1).any(axis=1))
            assert bad.size == 0, (f"frame {n}: sample {lo + bad[0]} wrong: got "
                                   f"{got[bad[0]].tolist()}, expected {want[bad[0]].tolist()} "
                                   f"({bad.size} of {len(got)} samples differ)")
            self.check_layout(data, want, f"frame {n}")
        return sum(hi - lo for lo, hi in bounds)

    def check_layout(self, data: bytes, want: np.ndarray, where: str) -> None:
        """The bytes themselves must be the beat layout of the expected values: unpack() reads
        only each lane's low bits, so this is what pins sign/zero extension and zero padding."""
        exact = pack(want, self.spec.output).tobytes()
        if data != exact:
            i = next(j for j in range(len(data)) if data[j] != exact[j])
            raise AssertionError(f"{where}: output byte {i} (sample {i // self.out_sample_bytes}) is "
                                 f"0x{data[i]:02x}, the beat layout gives 0x{exact[i]:02x} "
                                 "(lane extension or padding wrong)")

    async def expect_silence(self, cycles: int = 50) -> None:
        """Nothing more may come out: no duplicated or stale results."""
        await ClockCycles(self.dut.clk, cycles)
        assert self.sink.empty(), f"{self.sink.count()} unexpected extra frame(s) received"


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_batch(dut):
    """(a) Every sample's output equals the expected output; also measures cycles/s."""
    bench = Bench(dut)
    await bench.reset()
    n = len(bench.inputs)
    per_frame = int(bench.options.get("frame_samples", 16))
    bounds = [(i, min(n, i + per_frame)) for i in range(0, n, per_frame)]
    bench.send_frames(bounds)  # packing happens here, outside the timed simulation
    t_sim0, t_wall0, t_cpu0 = get_sim_time("ns"), time.perf_counter(), time.process_time()
    frames = await bench.recv_frames(len(bounds), n)
    wall = time.perf_counter() - t_wall0
    cpu = time.process_time() - t_cpu0  # the simulator's own CPU time: robust to a busy machine
    cycles = (get_sim_time("ns") - t_sim0) / CLOCK_NS
    checked = bench.check_frames(frames, bounds)
    await bench.expect_silence()
    _record("test_batch", samples=checked, frames=len(bounds), cycles=cycles,
            wall_seconds=wall, cycles_per_second=cycles / wall, cycles_per_cpu_second=cycles / cpu)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_backpressure(dut):
    """(b) Random input bubbles and output backpressure: no loss, no duplication, order kept."""
    bench = Bench(dut)
    await bench.reset()
    n = bench.stress_count()
    log = HandshakeLog(dut)
    bench.source.set_pause_generator(bench.schedule.source())
    bench.sink.set_pause_generator(bench.schedule.sink())
    bounds = bench.random_frames(0, n, 6)
    bench.send_frames(bounds)
    frames = await bench.recv_frames(len(bounds), n)
    checked = bench.check_frames(frames, bounds)
    await bench.expect_silence()
    log.stop()
    # the test is only meaningful if both kinds of stall really happened
    assert log.out_stalls > 0, "the sink never stalled the shell"
    assert log.in_stalls > 0, "backpressure never reached s_axis_tready (credits untested)"
    assert log.in_bubbles > 0, "the source never paused"
    assert len(log.in_beats) == n * bench.spec.input.beats_per_sample
    assert len(log.out_beats) == n * bench.spec.output.beats_per_sample
    _record("test_backpressure", samples=checked, frames=len(bounds), in_stall_cycles=log.in_stalls,
            out_stall_cycles=log.out_stalls, in_bubble_cycles=log.in_bubbles,
            fifo_depth=bench.schedule.depth, hold_cycles=bench.schedule.hold_cycles,
            in_beats=bench.spec.input.beats_per_sample, out_beats=bench.spec.output.beats_per_sample)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_framing(dut):
    """(c) Multi-sample frames of random sizes come back as frames of the same sizes, tlast on
    the last beat only; a frame cut short inside a sample (if the config provides one) ends
    that sample early with zeros and the next frame is aligned again."""
    bench = Bench(dut)
    await bench.reset()
    n = bench.stress_count()
    bench.sink.set_pause_generator(_pauses(bench.rng, 0.2))
    log = HandshakeLog(dut)
    bounds = bench.random_frames(0, n, 7)
    bench.send_frames(bounds)
    frames = await bench.recv_frames(len(bounds), n)
    checked = bench.check_frames(frames, bounds)
    out_beats = [b for b in log.out_beats]
    lasts = [i for i, (_, last) in enumerate(out_beats) if last]
    ends = list(itertools.accumulate((hi - lo) * bench.spec.output.beats_per_sample for lo, hi in bounds))
    assert lasts == [e - 1 for e in ends], "m_axis_tlast is not exactly on each frame's last beat"
    assert log.out_partial_keep == 0, f"{log.out_partial_keep} output beats without m_axis_tkeep all ones"
    partial = _CONFIG.get("partial")
    partial_checked = False
    if partial:
        # samples 0..m-1 whole, sample m cut to `beats` beats with tlast, then a normal frame
        m, beats = int(partial["whole_samples"]), int(partial["beats"])
        cut = bench.frame(0, m) + bench.frame(m, m + 1)[: beats * bench.in_beat_bytes]
        bench.send(cut)
        bench.send_frames([(m + 1, m + 3)])
        got_cut, got_next = await bench.recv_frames(2, m + 3)
        want_cut = np.concatenate([bench.expected[:m], np.asarray(partial["expected"])[None]])
        got = bench.decode(got_cut)
        assert got.shape == want_cut.shape and (got == want_cut).all(), (
            f"early-tlast frame: got {got.tolist()}, expected {want_cut.tolist()}")
        bench.check_layout(got_cut, want_cut, "early-tlast frame")
        bench.check_frames([got_next], [(m + 1, m + 3)])
        partial_checked = True
    await bench.expect_silence()
    log.stop()
    _record("test_framing", samples=checked, frames=len(bounds), frame_sizes=[hi - lo for lo, hi in bounds],
            partial_checked=partial_checked)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_reset_mid_stream(dut):
    """(d) Reset with samples in flight, then clean operation: after reset exactly the new
    samples come out, nothing stale, nothing duplicated."""
    bench = Bench(dut)
    await bench.reset()
    # the first half must still be in flight when results wait: the sink's first hold window
    # keeps results in the FIFO while the shell admits up to its credit limit
    stress = min(len(bench.inputs), int(bench.options.get("stress_samples", 300)))
    half = max(stress // 2, bench.schedule.fill_samples)
    n = max(stress, half + 1)
    bench.use_samples(n)
    bench.source.set_pause_generator(bench.schedule.source())
    bench.sink.set_pause_generator(bench.schedule.sink())
    bench.send_frames(bench.random_frames(0, half, 4))
    # Reset in a cycle where the shell admits a sample into the core, so the core pipeline,
    # the output FIFO and the stream registers all hold something that reset must drop.
    for _ in range(bench.cycle_budget(half) // CLOCK_NS):
        await FallingEdge(dut.clk)
        if dut.shell.admit.value == 1 and dut.m_axis_tvalid.value == 1:
            break
    else:
        raise AssertionError("the shell never admitted a sample while results were waiting")
    # The shortest reset: low for one clock edge. Everything in flight (hold register, core
    # pipeline, FIFO, half-sent beats) must be dropped by that single edge.
    dut.aresetn.value = 0
    bench.source.clear()  # the driver itself drops its current frame when it sees the reset
    await RisingEdge(dut.clk)
    dut.aresetn.value = 1
    await FallingEdge(dut.clk)
    assert dut.s_axis_tready.value == 0, "s_axis_tready high in the cycle after reset"
    assert dut.m_axis_tvalid.value == 0, "m_axis_tvalid high in the cycle after reset"
    await ClockCycles(dut.clk, 2)
    bench.sink.clear()
    await ClockCycles(dut.clk, bench.spec.total_latency + 2)
    assert bench.sink.empty() and dut.m_axis_tvalid.value == 0, "results came out of a reset shell"
    bench.source.set_pause_generator(_pauses(bench.rng, 0.2))
    bench.sink.set_pause_generator(_pauses(bench.rng, 0.5))
    bounds = bench.random_frames(half, n, 4)
    bench.send_frames(bounds)
    frames = await bench.recv_frames(len(bounds), n - half)
    checked = bench.check_frames(frames, bounds)
    await bench.expect_silence()
    _record("test_reset_mid_stream", samples_after_reset=checked, frames_after_reset=len(bounds))


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_latency_throughput(dut):
    """(e) Latency: the edges from accepting a sample's last input beat to accepting its first
    output beat, for isolated samples. Throughput: output samples per cycle for a long frame
    with no stalls."""
    bench = Bench(dut)
    await bench.reset()
    b_in, b_out = bench.spec.input.beats_per_sample, bench.spec.output.beats_per_sample
    n = max(min(len(bench.inputs), int(bench.options.get("throughput_samples", 200))), 8)
    bench.use_samples(n)  # 4 isolated samples, then at least 8 back to back
    log = HandshakeLog(dut)
    latencies = []
    for k in range(4):  # isolated samples: each meets an empty pipeline
        bench.send_frames([(k, k + 1)])
        (frame,) = await bench.recv_frames(1, 1)
        bench.check_frames([frame], [(k, k + 1)])
        await ClockCycles(dut.clk, bench.spec.total_latency + 5)
    for k in range(4):
        last_in = log.in_beats[(k + 1) * b_in - 1][0]
        first_out = log.out_beats[k * b_out][0]
        latencies.append(first_out - last_in)
    start_beat = len(log.out_beats)
    bench.send_frames([(0, n)])
    (frame,) = await bench.recv_frames(1, n)
    bench.check_frames([frame], [(0, n)])
    firsts = [c for c, _ in log.out_beats[start_beat::b_out]]
    assert len(firsts) == n
    gaps = np.diff(firsts)
    log.stop()
    _record("test_latency_throughput", latencies=latencies, samples=n,
            interval_mean=float(gaps.mean()), interval_max=int(gaps.max()), interval_min=int(gaps.min()),
            samples_per_cycle=float((n - 1) / (firsts[-1] - firsts[0])))
