"""Driver benchmark: this runtime beside hls4ml's generated pynq driver, on the same fake board.

Both drivers run against :class:`~fpga_dnn.runtime.fake.device.FakeBoardDevice` — real pynq,
real overlay parsing, real DMA driver binding — with an accelerator model that answers at once,
so what is measured is the host side. Reported per driver and batch size:

* ``us_per_call``: wall-clock time of one ``predict`` call;
* ``emulation_us_per_call``: time spent inside the fake board (its register and cache models
  and the accelerator model) — on a board that is the hardware's business, so
* ``host_us_per_call`` = the two's difference: the driver's own overhead (Python, numpy, pynq's
  MMIO and buffer layers);
* ``samples_per_s``: samples over wall-clock time.

hls4ml 1.3.0's ``VivadoAccelerator`` backend writes its driver from a template
(``hls4ml/templates/vivado_accelerator/<board>/python_drivers/axi_stream_driver.py``); the bench
loads that file from the path given (the toolchain environment's hls4ml; nothing of it is
copied into this project) and runs it as its users do: ``NeuralNetworkOverlay(bit, x_shape,
y_shape)`` on an overlay shaped like hls4ml's (``hier_0/axi_dma_0``, 32-bit float streams),
``predict(X)`` with float32 data. Its documented fixed-point use (``encode``/``decode``
functions) is measured on first calls only, because of the bug this module also reproduces
(:func:`reproduce_hls4ml_bugs`).

Runs in the board environment (pynq): ``python -m fpga_dnn.runtime.driver_bench
--hls4ml-driver PATH [--json out.json]``; :func:`run_in_board_env` starts that from the
toolchain environment and returns the dict.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

import numpy as np

HLS4ML_DRIVER_RELPATH = "templates/vivado_accelerator/pynq-z2/python_drivers/axi_stream_driver.py"

#: The benchmark's design: digits-MLP sized (64 inputs of ufixed<5,5>, 10 outputs of fixed<16,6>).
N_IN, N_OUT = 64, 10


def hls4ml_driver_path() -> Optional[Path]:
    """Where hls4ml keeps its pynq driver template: the running environment's hls4ml (found
    without importing it), else the toolchain environment's (``.venv`` beside this checkout)."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / HLS4ML_DRIVER_RELPATH
        if path.is_file():
            return path
    repo = Path(__file__).resolve().parents[2]
    found = sorted(repo.glob(f".venv/lib/python3*/site-packages/hls4ml/{HLS4ML_DRIVER_RELPATH}"))
    return found[-1] if found else None


@contextlib.contextmanager
def _active_device(device) -> Iterator[None]:
    """hls4ml's driver ignores its ``device`` argument and uses pynq's active device."""
    import pynq
    old = pynq.Device.__dict__.get("_active_device")  # where pynq's setter stores it
    pynq.Device.active_device = device
    try:
        yield
    finally:
        if old is not None:
            pynq.Device.active_device = old
        elif "_active_device" in pynq.Device.__dict__:
            delattr(pynq.Device, "_active_device")


def load_hls4ml_driver(path: Path):
    """hls4ml's driver module, imported from ``path`` (a copy in a temporary folder)."""
    tmp = Path(tempfile.mkdtemp(prefix="hls4ml_driver_"))
    target = tmp / "hls4ml_axi_stream_driver.py"
    target.write_text(Path(path).read_text())
    spec = importlib.util.spec_from_file_location("hls4ml_axi_stream_driver", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Timer:
    """Per-call wall and emulation time of one callable, over interleaved repeats."""

    def __init__(self, fn: Callable[[], Any], calls: int, device, samples_per_call: int):
        self.fn, self.calls, self.device, self.samples = fn, calls, device, samples_per_call
        self.walls: list = []
        self.emus: list = []
        fn()  # warm: buffers allocated, code paths taken once

    def run_once(self) -> None:
        e0, t0 = self.device.emulation_seconds, time.perf_counter()
        for _ in range(self.calls):
            self.fn()
        self.walls.append((time.perf_counter() - t0) / self.calls)
        self.emus.append((self.device.emulation_seconds - e0) / self.calls)

    def result(self) -> Dict[str, float]:
        """Medians over the repeats (and the best repeat's host time: the least disturbed)."""
        wall, emu = statistics.median(self.walls), statistics.median(self.emus)
        host = [w - e for w, e in zip(self.walls, self.emus)]
        return {"us_per_call": wall * 1e6, "emulation_us_per_call": emu * 1e6,
                "host_us_per_call": statistics.median(host) * 1e6, "host_us_per_call_best": min(host) * 1e6,
                "samples_per_s": self.samples / wall, "repeats": len(self.walls), "calls_per_repeat": self.calls}


def _ours(workdir: Path, **open_kw):
    """This runtime (``sim`` backend, instant model, no register trace) on a digits-sized design
    (``open_kw``: e.g. the fake DMA's ``bandwidth``, ``chunk_bytes``)."""
    from fpga_dnn.runtime.accelerator import Accelerator
    from fpga_dnn.runtime.fake.hwh import OverlayDesign
    from fpga_dnn.runtime.spec import Spec

    spec = Spec.create("bench_mlp", (N_IN,), "ufixed<5,5>", (N_OUT,), "fixed<16,6>", 3, stream_bits=64)
    bundle = workdir / "ours"
    if not (bundle / "spec.json").is_file():
        OverlayDesign.for_spec(spec).write(bundle, spec.name)
        spec.with_checksums(bundle, [f"{spec.name}.bit", f"{spec.name}.hwh"]).save(bundle)
    return Accelerator.open(bundle, backend="sim", model="instant", allow_unsigned=True, **open_kw)  # a generated test bundle


def _hls4ml_design(workdir: Path, name: str, sg_length_width: int = 26):
    from fpga_dnn.runtime.fake.hwh import OverlayDesign
    design = OverlayDesign(in_stream_bits=32, out_stream_bits=32, hierarchy="hier_0", accel_name="myproject_axi_0",
                           accel_vlnv="xilinx.com:hls:myproject_axi:1.0", design_name="design_1",
                           sg_length_width=sg_length_width)
    bit, _ = design.write(workdir / name, "design_1")
    return bit


def compare(driver_module, workdir: Path, batches: Sequence[int], calls: Dict[int, int],
            repeats: int = 5) -> Dict[str, Any]:
    """Both drivers at each batch size, timed in alternation (``repeats`` rounds) so that load
    from other processes falls on both alike. Without ``driver_module`` only ours is timed."""
    from fpga_dnn.runtime.backends import StageTimes
    from fpga_dnn.runtime.fake.device import FakeBoardDevice
    from fpga_dnn.runtime.fake.models import Float32Model

    # host overhead alone: the fake DMA completes at once on both sides (bandwidth=None)
    acc = _ours(workdir, bandwidth=None)
    ours: Dict[str, Any] = {"design": f"{N_IN} x ufixed<5,5> -> {N_OUT} x fixed<16,6>, 64-bit streams",
                            "dma": "instant (host overhead alone)", "input_dtype": "float32"}
    theirs: Dict[str, Any] = {"design": f"{N_IN} x float32 -> {N_OUT} x float32, 32-bit streams (hier_0/axi_dma_0)",
                              "dma": "instant (host overhead alone)", "input_dtype": "float32"}
    dev = FakeBoardDevice(Float32Model(N_IN, N_OUT), trace=False, bandwidth=None)
    bit = _hls4ml_design(workdir, "hls4ml") if driver_module else None
    try:
        for b in batches:
            x_ours = acc.random_inputs(b, seed=b).astype(np.float32)   # the same dtype as hls4ml's
            timers = {"ours": _Timer(lambda: acc.predict(x_ours), calls[b], acc.backend.fake, b)}
            nn = None
            if driver_module:
                with _active_device(dev):
                    nn = driver_module.NeuralNetworkOverlay(str(bit), x_shape=(b, N_IN), y_shape=(b, N_OUT))
                x_theirs = np.random.default_rng(b).random((b, N_IN), dtype=np.float32)
                timers["hls4ml"] = _Timer(lambda: nn.predict(x_theirs), calls[b], dev, b)
            acc.times = StageTimes()
            for _ in range(repeats):
                for t in timers.values():
                    t.run_once()
            r = timers["ours"].result()
            n = repeats * calls[b]
            r["breakdown_us_per_call"] = {k: v / n * 1e6 for k, v in acc.times.as_dict().items()}
            pu = acc.times.pack + acc.times.unpack
            r["pack_unpack_elements_per_s"] = n * b * (N_IN + N_OUT) / pu if pu else None
            ours[f"batch_{b}"] = r
            if nn is not None:
                theirs[f"batch_{b}"] = timers["hls4ml"].result()
                del nn
    finally:
        acc.close()
    if driver_module:
        theirs["batch_1_fixed_point_first_call"] = _hls4ml_fixed_point_first_calls(driver_module, workdir)
    return {"ours": ours, "hls4ml": theirs if driver_module else {"skipped": "no hls4ml driver"}}


def _hls4ml_fixed_point_first_calls(driver_module, workdir: Path) -> Dict[str, float]:
    """hls4ml's documented ap_fixed use (encode/decode with np.vectorize, from its docstring),
    timed on the first predict of fresh overlay objects: a second predict breaks (the bug)."""
    from fpga_dnn.runtime.fake.device import FakeBoardDevice

    dev = FakeBoardDevice(_Int16Model(N_IN, N_OUT), trace=False)
    bit = _hls4ml_design(workdir, "hls4ml_fixed")
    enc = np.vectorize(lambda v: np.int16(round(v * 2 ** 10)))
    dec = np.vectorize(lambda v: v * 2 ** -10)
    walls, emus = [], []
    with _active_device(dev):
        for i in range(12):
            nn = driver_module.NeuralNetworkOverlay(str(bit), x_shape=(1, N_IN), y_shape=(1, N_OUT), dtype=np.int16)
            x = np.random.default_rng(i).random((1, N_IN))
            e0, t0 = dev.emulation_seconds, time.perf_counter()
            nn.predict(x, encode=enc, decode=dec)
            walls.append(time.perf_counter() - t0)
            emus.append(dev.emulation_seconds - e0)
            del nn
    host = [w - e for w, e in zip(walls[2:], emus[2:])]
    return {"us_per_call": statistics.median(walls[2:]) * 1e6,
            "emulation_us_per_call": statistics.median(emus[2:]) * 1e6,
            "host_us_per_call": statistics.median(host) * 1e6, "host_us_per_call_best": min(host) * 1e6,
            "calls": len(host)}


class _Int16Model:
    """16-bit integer lanes (hls4ml's ap_fixed<16,6> interface): ``y_i = 2 * x_{i mod n_in}``."""

    frame_model = True

    def __init__(self, n_in: int, n_out: int):
        self.n_in, self.n_out = n_in, n_out
        self.idx = np.arange(n_out) % n_in

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(frame).view(np.int16).reshape(-1, self.n_in)
        return (x[:, self.idx] * 2).astype(np.int16).reshape(-1).view(np.uint8)


def reproduce_hls4ml_bugs(driver_module, workdir: Path) -> Dict[str, Any]:
    """Run hls4ml's driver where it breaks and record what the fake DMA saw.

    1. Second ``predict`` with ``decode`` (its fixed-point use): ``decode`` replaces
       ``self.output_buffer`` by a new array, the DMA buffer is freed, and the new array's
       ``physical_address`` is pynq's bookkeeping carried over with an offset of the two
       arrays' virtual-address difference — an address that is no buffer at all. Run on a strict
       fake (the S2MM DMA gets a decode error) and on a board-like one (every DDR address
       decodes: the DMA writes into unallocated memory and predict returns the previous call's
       results, decoded twice).
    2. Results aliasing without ``decode``: ``predict`` returns its own DMA buffer, so the next
       call overwrites the previous call's result.
    3. No batch splitting: a batch larger than the DMA's transfer limit raises in pynq.
    """
    from fpga_dnn.runtime.fake.device import FakeBoardDevice
    from fpga_dnn.runtime.fake.memory import FakeMemory
    from fpga_dnn.runtime.fake.models import Float32Model

    report: Dict[str, Any] = {}
    bit = _hls4ml_design(workdir, "bug")
    enc = lambda x: np.round(x * 2 ** 10).astype(np.int16)  # noqa: E731 - as hls4ml's docstring
    dec = lambda y: y * 2.0 ** -10  # noqa: E731
    x1, x2 = np.full((3, 4), 0.5), np.full((3, 4), 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mode, strict in (("strict", True), ("board_like", False)):
            dev = FakeBoardDevice(_Int16Model(4, 2), memory=FakeMemory(limit=0x2000_0000, strict=strict))
            with _active_device(dev):
                nn = driver_module.NeuralNetworkOverlay(str(bit), x_shape=(3, 4), y_shape=(3, 2), dtype=np.int16)
                out_buf_addr = int(nn.output_buffer.physical_address)
                y1 = np.array(nn.predict(x1, encode=enc, decode=dec))
                new_addr = getattr(nn.output_buffer, "physical_address", None)
                entry: Dict[str, Any] = {
                    "first_predict": y1[0].tolist(),
                    "dma_output_buffer_address": hex(out_buf_addr),
                    "output_buffer_after_decode": f"{type(nn.output_buffer).__name__} claiming address "
                                                  f"{hex(new_addr) if new_addr is not None else None}",
                    "original_output_buffer": dev.memory.describe(out_buf_addr),
                }
                try:
                    y2 = np.array(nn.predict(x2, encode=enc, decode=dec))
                    entry["second_predict"] = y2[0].tolist()
                    entry["second_predict_expected"] = (x2[0, :2] * 2).tolist()
                except Exception as err:  # noqa: BLE001 - the reproduction records whatever happens
                    entry["second_predict_error"] = f"{type(err).__name__}: {err}"
                s2mm = [t for t in dev.dma.transfers if t.channel == "S2MM"]
                entry["s2mm_destinations"] = [(hex(t.address), t.target, t.status) for t in s2mm]
                entry["memory_violations"] = list(dev.memory.violations)
                report[f"decode_second_predict_{mode}"] = entry
                del nn
        dev = FakeBoardDevice(Float32Model(4, 2))
        with _active_device(dev):
            nn = driver_module.NeuralNetworkOverlay(str(bit), x_shape=(1, 4), y_shape=(1, 2))
            a = nn.predict(np.ones((1, 4), np.float32))
            a_before = np.array(a)
            b = nn.predict(np.full((1, 4), 2, np.float32))
            report["result_aliasing"] = {"first_result_before": a_before[0].tolist(),
                                         "first_result_after_second_call": np.array(a)[0].tolist(),
                                         "same_object": a is b}
            del nn
        small_bit = _hls4ml_design(workdir, "bug_small", sg_length_width=12)
        dev = FakeBoardDevice(Float32Model(N_IN, N_OUT))
        with _active_device(dev):
            nn = driver_module.NeuralNetworkOverlay(str(small_bit), x_shape=(100, N_IN), y_shape=(100, N_OUT))
            try:
                nn.predict(np.zeros((100, N_IN), np.float32))
                report["no_batch_split"] = "no error"
            except Exception as err:  # noqa: BLE001
                report["no_batch_split"] = f"{type(err).__name__}: {err}"
            del nn
    return report


def _board_rate(fn: Callable[[], Any], device, samples: int, repeats: int) -> Dict[str, float]:
    """``fn`` timed ``repeats`` times: samples per second of wall-clock time and of board time
    (wall minus the time spent inside the fake: what a board would show, its DMA's time
    included). Medians."""
    fn()
    walls, boards = [], []
    for _ in range(repeats):
        e0, t0 = device.emulation_seconds, time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        walls.append(wall)
        boards.append(wall - (device.emulation_seconds - e0))
    wall, board = statistics.median(walls), statistics.median(boards)
    return {"samples": samples, "wall_s": wall, "board_s": board, "samples_per_s_wall": samples / wall,
            "samples_per_s": samples / board, "best_samples_per_s": samples / min(boards)}


def _copy_seconds(x: np.ndarray, repeats: int = 5) -> float:
    """The best of ``repeats`` plain copies of ``x`` into a preallocated array (seconds)."""
    dst = np.empty_like(x)
    np.copyto(dst, x)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, x)
        best = min(best, time.perf_counter() - t0)
    return best


def dma_bound(spec, bandwidth: float, core_interval_cycles: int = 1) -> Dict[str, Any]:
    """The most samples/s a design can move: the slowest of

    * the memory port: each direction at ``bandwidth`` bytes/s (an AXI HP port has separate
      read and write channels; MM2S reads the inputs, S2MM writes the outputs), so
      ``bandwidth / max(in, out bytes per sample)``;
    * the AXI-Stream beats: one ``stream_bits`` beat per clock each way, so
      ``clock / max(in, out beats per sample)`` (:attr:`Spec.interval_cycles`);
    * the core's own interval (``core_interval_cycles`` per sample; 1 for an unrolled core,
      which takes a sample per clock).

    With the bench's design (64 x 8-bit lanes in = 64 bytes = 8 beats of 64 bits, 10 x 16-bit
    out = 24 bytes = 3 beats, 100 MHz, 800 MB/s) the port and the beats agree: 12.5 M samples/s.
    """
    port = bandwidth / max(spec.input.sample_bytes, spec.output.sample_bytes)
    clock = spec.clock_mhz * 1e6
    beats = clock / spec.interval_cycles
    core = clock / core_interval_cycles
    parts = {"memory_port_samples_per_s": port, "stream_beats_samples_per_s": beats,
             "core_interval_samples_per_s": core}
    limit = min(parts.values())
    return {"samples_per_s": limit, **parts, "bandwidth_bytes_per_s": bandwidth, "clock_mhz": spec.clock_mhz,
            "limited_by": [k.rsplit("_samples", 1)[0] for k, v in parts.items() if v == limit]}


#: The stream runs of :func:`bench_overlap`, each reported as a fraction of the DMA bound.
STREAM_RUNS = ("float64_overlapped", "float64_overlapped_1_thread", "float32_overlapped", "float64_no_overlap",
               "fixed_overlapped", "fixed_no_overlap")


def bench_overlap(driver_module, workdir: Path, large_batch: int = 10_000, stream_samples: int = 100_000,
                  stream_batch: int = 10_000, repeats: int = 5) -> Dict[str, Any]:
    """Throughput on the timed fake DMA (800 MB/s per channel, a PYNQ-Z2 HP port), board time.

    * ``large_batch``: ``predict`` of one large float32 batch (overlapped pieces), the zero-copy
      path (fixed-point lanes written straight into the DMA buffer, then ``run_buffer``), and
      hls4ml's driver with float32 data — same fake board model, same run; hls4ml's also with
      the fake DMA at its 32-bit streams' beat rate (400 MB/s at 100 MHz), which is what its
      design can move (the 800 MB/s figure, kept as the comparison of record, is generous to it).
    * ``stream``: ``stream_samples`` in batches of ``stream_batch`` through ``predict_stream``
      (overlapped: float64 input with the default threads and with one, float32 input, the
      fixed-point integers) and through a loop of ``predict`` calls with one transfer per batch
      and no overlap (``chunk_bytes`` above the batch), beside the DMA bound
      (:func:`dma_bound`): a transfer completes ``max(in, out bytes) / bandwidth`` after it
      starts, so at best ``bandwidth / max(in, out bytes per sample)`` samples/s.
    """
    from fpga_dnn.runtime.fake.device import FakeBoardDevice
    from fpga_dnn.runtime.fake.dma import HP_PORT_BYTES_PER_S
    from fpga_dnn.runtime.fake.models import Float32Model
    from fpga_dnn.runtime.packing import to_fixed

    bw = HP_PORT_BYTES_PER_S
    res: Dict[str, Any] = {"bandwidth_bytes_per_s": bw, "time": "board time (wall minus time inside the fake)"}
    acc = _ours(workdir, bandwidth=bw)
    seq = _ours(workdir, bandwidth=bw, chunk_bytes=1 << 30)
    one = _ours(workdir, bandwidth=bw, threads=1)
    try:
        fake = acc.backend.fake
        x = acc.random_inputs(large_batch, seed=1).astype(np.float32)
        q8 = to_fixed(x, acc.spec.input.format).astype(np.uint8)
        lanes = None

        def zero_copy():
            nonlocal lanes
            if lanes is None:
                lanes = acc.input_buffer(large_batch)
            lanes[...] = q8   # what a producer writing fixed-point data in place does
            return acc.run_buffer(large_batch)

        large = {"ours_predict_float32": _board_rate(lambda: acc.predict(x), fake, large_batch, repeats),
                 "ours_predict_float32_no_overlap": _board_rate(lambda: seq.predict(x), seq.backend.fake,
                                                                large_batch, repeats),
                 "ours_zero_copy": _board_rate(zero_copy, fake, large_batch, repeats)}
        lanes = None
        acc.predict(x[:1])   # predict reclaims the buffer the zero-copy view lived in
        if driver_module is not None:
            bit = _hls4ml_design(workdir, "hls4ml_timed")

            def hls4ml_rate(bandwidth: float) -> Dict[str, Any]:
                """hls4ml's driver on a fresh fake board whose DMA moves ``bandwidth`` bytes/s."""
                dev = FakeBoardDevice(Float32Model(N_IN, N_OUT), trace=False, bandwidth=bandwidth)
                with _active_device(dev):
                    nn = driver_module.NeuralNetworkOverlay(str(bit), x_shape=(large_batch, N_IN),
                                                            y_shape=(large_batch, N_OUT))
                    return _board_rate(lambda: nn.predict(x), dev, large_batch, repeats)

            large["hls4ml_float32"] = hls4ml_rate(bw)
            hls_bw = min(bw, 32 // 8 * 100e6)   # its 32-bit streams at 100 MHz
            large["hls4ml_float32_at_its_stream_rate"] = {"bandwidth_bytes_per_s": hls_bw, **hls4ml_rate(hls_bw)}
            h = large["hls4ml_float32"]["samples_per_s"]
            large["ratio_predict_vs_hls4ml"] = large["ours_predict_float32"]["samples_per_s"] / h
            large["ratio_zero_copy_vs_hls4ml"] = large["ours_zero_copy"]["samples_per_s"] / h
            large["target_ratio"] = 1.0
        res["large_batch"] = large

        xs = acc.random_inputs(stream_samples, seed=2)
        batches = [xs[i: i + stream_batch] for i in range(0, stream_samples, stream_batch)]
        limit = dma_bound(acc.spec, bw)
        bound = limit["samples_per_s"]
        qbatches = [to_fixed(b, acc.spec.input.format).astype(acc.spec.input.lane_dtype) for b in batches]
        batches32 = [b.astype(np.float32) for b in batches]
        rounds = max(3, repeats // 2)
        stream = {"samples": stream_samples, "batch": stream_batch, "chunk_samples": acc.stream_chunk_samples,
                  "threads": acc.threads, "dma_bound_samples_per_s": bound, "dma_bound": limit,
                  "target_fraction_of_bound": 0.8,
                  "float64_overlapped": _board_rate(lambda: sum(len(y) for y in acc.predict_stream(batches)), fake,
                                                    stream_samples, rounds),
                  "float64_overlapped_1_thread": _board_rate(
                      lambda: sum(len(y) for y in one.predict_stream(batches)), one.backend.fake, stream_samples,
                      rounds),
                  "float32_overlapped": _board_rate(lambda: sum(len(y) for y in acc.predict_stream(batches32)),
                                                    fake, stream_samples, rounds),
                  "float64_no_overlap": _board_rate(lambda: [seq.predict(b) for b in batches], seq.backend.fake,
                                                    stream_samples, rounds),
                  "fixed_overlapped": _board_rate(
                      lambda: sum(len(y) for y in acc.predict_stream(qbatches, fixed=True)), fake, stream_samples,
                      rounds),
                  "fixed_no_overlap": _board_rate(lambda: [seq.predict_fixed(b) for b in qbatches],
                                                  seq.backend.fake, stream_samples, rounds)}
        for k in STREAM_RUNS:
            stream[f"{k}_fraction_of_bound"] = stream[k]["samples_per_s"] / bound
            stream[f"{k}_best_fraction_of_bound"] = stream[k]["best_samples_per_s"] / bound
        # what memory alone costs the float64 stream, same run: one plain numpy copy of its input
        # (every float64 conversion reads these bytes at least once) against the DMA's time
        copy_s = _copy_seconds(xs)
        stream["float64_input_bytes"] = xs.nbytes
        stream["float64_input_numpy_copy_s"] = copy_s
        stream["float64_input_copy_fraction_of_dma_time"] = copy_s / (stream_samples / bound)
        res["stream"] = stream
    finally:
        acc.close()
        seq.close()
        one.close()
    return res


def bench_packing(samples: int = 100_000) -> Dict[str, Any]:
    """Elements per second of the runtime's conversion path alone (to_fixed + pack, unpack +
    from_fixed) on ``samples`` digits-sized samples."""
    from fpga_dnn.runtime.packing import from_fixed, pack, to_fixed, unpack
    from fpga_dnn.runtime.spec import Spec
    spec = Spec.create("bench_mlp", (N_IN,), "ufixed<5,5>", (N_OUT,), "fixed<16,6>", 3, stream_bits=64)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 32, size=(samples, N_IN)).astype(np.float64)
    q_out = rng.integers(-2 ** 15, 2 ** 15, size=(samples, N_OUT))
    packed_out = pack(q_out, spec.output)
    buf = np.empty(samples * spec.input.sample_bytes, np.uint8)
    t = []
    for _ in range(3):
        t0 = time.perf_counter()
        pack(to_fixed(x, spec.input.format), spec.input, out=buf)
        t1 = time.perf_counter()
        from_fixed(unpack(packed_out, spec.output), spec.output.format)
        t.append((t1 - t0, time.perf_counter() - t1))
    tp, tu = min(a for a, _ in t), min(b for _, b in t)
    return {"samples": samples, "pack_elements_per_s": samples * N_IN / tp,
            "unpack_elements_per_s": samples * N_OUT / tu,
            "pack_unpack_elements_per_s": samples * (N_IN + N_OUT) / (tp + tu)}


def bench_drivers(hls4ml_driver: Optional[Path] = None, large_batch: int = 10_000, calls_small: int = 1000,
                  calls_large: int = 5, repeats: int = 5) -> Dict[str, Any]:
    """The whole comparison; see the module docstring.

    hls4ml_driver: the template's path (``None``: :func:`hls4ml_driver_path`; hls4ml's side is
    skipped with a note if there is none). large_batch: the large batch size. calls_small /
    calls_large: predict calls per repeat at batch 1 / at the large batch. repeats: rounds of
    alternating measurements (medians are reported).
    """
    import pynq  # noqa: F401 - fail early outside the board environment

    batches = (1, large_batch)
    calls = {1: calls_small, large_batch: calls_large}
    result: Dict[str, Any] = {"python": sys.version.split()[0], "numpy": np.__version__, "pynq": pynq.__version__,
                              "cpus": os.cpu_count(), "load_average_1min_before": os.getloadavg()[0]}
    path = Path(hls4ml_driver) if hls4ml_driver else hls4ml_driver_path()
    module = load_hls4ml_driver(path) if path is not None and path.is_file() else None
    with tempfile.TemporaryDirectory(prefix="fpga_dnn_driver_bench_") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = Path(tmp)
        result.update(compare(module, work, batches, calls, repeats))
        result["timed_dma"] = bench_overlap(module, work, large_batch=large_batch, repeats=repeats)
        result["packing"] = bench_packing()
        if module is None:
            result["hls4ml"] = {"skipped": f"hls4ml driver template not found ({path})"}
            return result
        result["hls4ml"]["template"] = str(path)
        result["hls4ml_bugs"] = reproduce_hls4ml_bugs(module, work)
    result["load_average_1min_after"] = os.getloadavg()[0]
    ours1 = result["ours"]["batch_1"]["host_us_per_call"]
    theirs1 = result["hls4ml"]["batch_1"]["host_us_per_call"]
    fixed1 = result["hls4ml"]["batch_1_fixed_point_first_call"]["host_us_per_call"]
    result["summary"] = {
        "ours_host_us_batch1": ours1,
        "hls4ml_float_host_us_batch1": theirs1,
        "hls4ml_fixed_point_host_us_batch1": fixed1,
        "ratio_vs_hls4ml_float": ours1 / theirs1,
        "ratio_vs_hls4ml_fixed_point": ours1 / fixed1,
        "target_ratio": 1 / 3,
        # the same ratio under the names of issue 13's targets (at most 1/3), and of the least
        # disturbed repeats (the machine may be shared)
        "batch1_overhead_ratio": ours1 / theirs1,
        "batch1_overhead_ratio_best": result["ours"]["batch_1"]["host_us_per_call_best"]
        / result["hls4ml"]["batch_1"]["host_us_per_call_best"],
        "batch1_overhead_ratio_target_max": 1 / 3,
        "ours_samples_per_s_large": result["ours"][f"batch_{large_batch}"]["samples_per_s"],
        "hls4ml_samples_per_s_large": result["hls4ml"][f"batch_{large_batch}"]["samples_per_s"],
        "pack_unpack_elements_per_s": result["ours"][f"batch_{large_batch}"]["pack_unpack_elements_per_s"],
        "target_elements_per_s": 10e6,
    }
    timed = result["timed_dma"]
    result["summary"].update({
        "timed_dma_ours_predict_samples_per_s": timed["large_batch"]["ours_predict_float32"]["samples_per_s"],
        "timed_dma_ours_zero_copy_samples_per_s": timed["large_batch"]["ours_zero_copy"]["samples_per_s"],
        "timed_dma_hls4ml_samples_per_s": timed["large_batch"]["hls4ml_float32"]["samples_per_s"],
        "timed_dma_ratio_predict_vs_hls4ml": timed["large_batch"]["ratio_predict_vs_hls4ml"],
        "timed_dma_ratio_zero_copy_vs_hls4ml": timed["large_batch"]["ratio_zero_copy_vs_hls4ml"],
        "timed_dma_ratio_target_min": 1.0,
        "timed_dma_hls4ml_at_its_stream_rate_samples_per_s":
            timed["large_batch"]["hls4ml_float32_at_its_stream_rate"]["samples_per_s"],
        "dma_bound_samples_per_s": timed["stream"]["dma_bound_samples_per_s"],
        "dma_bound_limited_by": timed["stream"]["dma_bound"]["limited_by"],
        "stream_threads": timed["stream"]["threads"],
        **{f"stream_{k}_fraction_of_dma_bound": timed["stream"][f"{k}_fraction_of_bound"] for k in STREAM_RUNS},
        **{f"stream_{k}_best_fraction_of_dma_bound": timed["stream"][f"{k}_best_fraction_of_bound"]
           for k in STREAM_RUNS if "overlapped" in k},
        "stream_fraction_of_dma_bound_target_min": 0.8,
        "stream_float64_input_copy_fraction_of_dma_time": timed["stream"]["float64_input_copy_fraction_of_dma_time"],
        "instant_dma_ratio_large_batch_vs_hls4ml": result["ours"][f"batch_{large_batch}"]["samples_per_s"]
        / result["hls4ml"][f"batch_{large_batch}"]["samples_per_s"],
    })
    return result


def run_in_board_env(board_python: Path, hls4ml_driver: Optional[Path] = None, timeout_s: float = 600,
                     extra_args: Sequence[str] = ()) -> Dict[str, Any]:
    """From the toolchain environment: run :func:`bench_drivers` in the board environment's
    Python (``board_python``, e.g. ``.venv-board/bin/python``) and return its dict."""
    path = hls4ml_driver or hls4ml_driver_path()
    cmd = [str(board_python), "-m", "fpga_dnn.runtime.driver_bench", "--json", "-"]
    if path:
        cmd += ["--hls4ml-driver", str(path)]
    cmd += list(extra_args)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=repo)
    if proc.returncode != 0:
        from fpga_dnn.errors import ToolError
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolError(f"driver bench in {board_python} failed: {tail}")
    return json.loads(proc.stdout)


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m fpga_dnn.runtime.driver_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--hls4ml-driver", type=Path, help="hls4ml's axi_stream_driver.py template")
    ap.add_argument("--large-batch", type=int, default=10_000)
    ap.add_argument("--calls-small", type=int, default=1000)
    ap.add_argument("--calls-large", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="write the result as JSON to this file ('-': stdout)")
    args = ap.parse_args(argv)
    res = bench_drivers(args.hls4ml_driver, args.large_batch, args.calls_small, args.calls_large, args.repeats)
    text = json.dumps(res, indent=2, default=str)
    if args.json == "-":
        print(text)
    elif args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
