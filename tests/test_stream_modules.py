"""The streaming module library (``fpga_dnn/rtl/stream/hdl``) module by module, in Verilator.

Each module kind is built once (content-hash cache) as a ``tb_top`` holding several instances
with different parameters; the C++ harness ``tests/stream_tb/harness.cpp`` feeds every input with
random bubbles and stalls every output at random, and the outputs are compared with integer numpy
references (``fpga_dnn.rtl.stream.reference``; ``quantize_np`` for the casts). A second run
without bubbles or stalls checks the cycle counts the module headers document.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fpga_dnn.rtl.precision import HlsType, quantize_np
from fpga_dnn.rtl.stream import memfiles, reference as ref
from fpga_dnn.simulate.verilator import cached_build, run_logged, verilator_env

HARNESS = Path(__file__).resolve().parent / "stream_tb" / "harness.cpp"
VERILATOR_FLAGS = ["--cc", "--exe", "--build", "-j", "2", "-Wno-fatal", "--x-initial", "unique",
                   "--x-assign", "unique", "-CFLAGS", "-O1", "--top-module", "tb_top"]

ROUNDS = ("TRN", "RND", "RND_CONV", "RND_ZERO", "RND_INF", "RND_MIN_INF", "TRN_ZERO")
SATS = ("WRAP", "SAT", "SAT_SYM", "SAT_ZERO")


# ----------------------------------------------------------------------------------------------
# bench: a tb_top wrapper around module instances, built with the harness
# ----------------------------------------------------------------------------------------------

@dataclass
class Bench:
    exe: Path
    ins: list[int]        # widths of i0, i1, ...
    outs: list[int]       # widths of o0, o1, ...
    probe: int | None


def _wrapper(body: str, ins: list[int], outs: list[int], probe: int | None) -> str:
    ports = ["input wire clk", "input wire rst"]
    for j, w in enumerate(ins):
        ports += [f"input wire [{w-1}:0] i{j}_tdata", f"input wire i{j}_tvalid", f"output wire i{j}_tready"]
    for j, w in enumerate(outs):
        ports += [f"output wire [{w-1}:0] o{j}_tdata", f"output wire o{j}_tvalid", f"input wire o{j}_tready"]
    if probe:
        ports.append(f"output wire [{probe-1}:0] probe")
    return "module tb_top (\n    " + ",\n    ".join(ports) + "\n);\n" + body + "\nendmodule\n"


def _ports_h(ins: list[int], outs: list[int], probe: int | None) -> str:
    reg = [f"ins.push_back(make_in(&top->i{j}_tdata, &top->i{j}_tvalid, &top->i{j}_tready, {w}));"
           for j, w in enumerate(ins)]
    reg += [f"outs.push_back(make_out(&top->o{j}_tdata, &top->o{j}_tvalid, &top->o{j}_tready, {w}));"
            for j, w in enumerate(outs)]
    text = "#define REGISTER_PORTS \\\n    " + " \\\n    ".join(reg) + "\n"
    if probe:
        text += f"#define HAS_PROBE 1\n#define PROBE_WIDTH {probe}\n"
    return text


def build_bench(kind: str, body: str, ins: list[int], outs: list[int], modules: list[str],
                probe: int | None = None) -> Bench:
    wrapper = _wrapper(body, ins, outs, probe)
    ports_h = _ports_h(ins, outs, probe)
    sources = [HARNESS] + memfiles.hdl_sources(*modules)

    def build(d: Path) -> None:
        (d / "tb_top.v").write_text(wrapper)
        (d / "ports.h").write_text(ports_h)
        cmd = ["verilator", *VERILATOR_FLAGS, "-CFLAGS", f"-I{d}", "-Mdir", str(d / "obj"), "-o", "sim",
               str(d / "tb_top.v"), *map(str, sources[1:]), str(HARNESS)]
        run_logged(cmd, d / "build.log", f"Verilator build of the {kind} bench", cwd=d)
        shutil.copy(d / "obj" / "sim", d / "sim")

    d, _ = cached_build(f"stream_{kind}", sources, {"wrapper": wrapper, "ports": ports_h,
                                                    "flags": VERILATOR_FLAGS}, build)
    return Bench(d / "sim", ins, outs, probe)


@dataclass
class Run:
    outs: list[list[int]]        # beats per output
    out_cycles: list[list[int]]
    in_cycles: list[list[int]]
    cycles: int
    probe: int | None


def run_bench(bench: Bench, run_dir: Path, inputs: list[list[int]], expected: list[int], seed: int = 1,
              p_bubble: float = 0.3, p_stall: float = 0.3, max_idle: int = 5000) -> Run:
    run_dir.mkdir(parents=True, exist_ok=True)
    for j, beats in enumerate(inputs):
        nd = (bench.ins[j] + 3) // 4
        mask = (1 << bench.ins[j]) - 1
        (run_dir / f"in{j}.hex").write_text("".join(f"{int(b) & mask:0{nd}x}\n" for b in beats))
    cmd = [str(bench.exe), str(run_dir), str(seed), str(p_bubble), str(p_stall), str(max_idle),
           *map(str, expected), "+verilator+rand+reset+2", f"+verilator+seed+{seed}"]
    proc = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True, env={**__import__("os").environ, **verilator_env()})
    assert proc.returncode == 0, f"simulation failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
    outs = [[] for _ in bench.outs]
    oc = [[] for _ in bench.outs]
    ic = [[] for _ in bench.ins]
    cycles, probe = 0, None
    for line in (run_dir / "out.txt").read_text().splitlines():
        f = line.split()
        if f[0].startswith("o"):
            outs[int(f[0][1:])].append(int(f[2], 16))
            oc[int(f[0][1:])].append(int(f[1]))
        elif f[0].startswith("i"):
            ic[int(f[0][1:])].append(int(f[1]))
        elif f[0] == "cycles":
            cycles = int(f[1])
        elif f[0] == "probe":
            probe = int(f[1], 16)
    return Run(outs, oc, ic, cycles, probe)


def pack(elems, bits: int) -> int:
    return memfiles.pack_words(elems, bits)


def unpack(word: int, n: int, bits: int, signed: bool) -> list[int]:
    vals = [(word >> (i * bits)) & ((1 << bits) - 1) for i in range(n)]
    if signed:
        vals = [v - (1 << bits) if v >> (bits - 1) else v for v in vals]
    return vals


def rand_elems(rng, shape, bits: int, signed: bool) -> np.ndarray:
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    return rng.integers(lo, hi, size=shape, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# fd_requant
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RqCase:
    aw: int
    shift: int
    ow: int
    osigned: int
    round: str
    sat: str
    relu: int = 0
    reg: int = 1
    isigned: int = 1
    n: int = 3


RQ_CASES = [RqCase(12, 3, 6, 1, r, s) for r in ROUNDS for s in SATS] + [
    RqCase(12, 3, 6, 0, "RND_CONV", "SAT"),
    RqCase(12, 3, 6, 0, "RND", "WRAP", relu=1),
    RqCase(12, 4, 8, 1, "RND", "SAT", relu=1),
    RqCase(10, 0, 8, 1, "TRN", "SAT"),
    RqCase(8, -2, 12, 1, "TRN", "SAT"),
    RqCase(8, -3, 6, 1, "RND", "WRAP"),
    RqCase(9, 12, 4, 1, "RND_CONV", "SAT"),      # shift beyond the accumulator width
    RqCase(9, 1, 8, 1, "RND_CONV", "SAT_SYM"),   # one dropped bit (no bits below the half)
    RqCase(11, 5, 7, 0, "RND_INF", "SAT", isigned=0),
    RqCase(12, 3, 6, 1, "RND_ZERO", "SAT", reg=0),
]


def requant_expected(acc: np.ndarray, c: RqCase) -> np.ndarray:
    """The cast as ``quantize_np`` (ap_fixed) does it, on the value acc * 2^-f_in."""
    f_out = 2
    f_in = c.shift + f_out
    x = np.ldexp(acc.astype(np.float64), -f_in)
    if c.relu:
        x = np.maximum(x, 0.0)
    if c.sat == "SAT_ZERO":  # not in quantize_np: round into a wide type, then 0 out of range
        wide = quantize_np(x, HlsType(True, c.aw + c.ow + 8, c.aw + c.ow + 8 - f_out, c.round, "WRAP"))
        v = np.ldexp(wide, f_out)
        lo, hi = (-(1 << (c.ow - 1)), (1 << (c.ow - 1)) - 1) if c.osigned else (0, (1 << c.ow) - 1)
        return np.where((v < lo) | (v > hi), 0, v).astype(np.int64)
    t = HlsType(bool(c.osigned), c.ow, c.ow - f_out, c.round, c.sat)
    v = np.ldexp(quantize_np(x, t), f_out).astype(np.int64)
    if c.sat == "SAT_SYM" and c.osigned:
        # ap_fixed's SAT_SYM also maps the most negative value itself to -max (ap_fixed_base.h:
        # "underflow |= neg_src && rest == 0"); quantize_np clips only when some value overflows.
        v = np.maximum(v, -((1 << (c.ow - 1)) - 1))
    return v


@pytest.fixture(scope="module")
def requant_bench():
    body = []
    for j, c in enumerate(RQ_CASES):
        body.append(
            f"fd_requant #(.N({c.n}), .AW({c.aw}), .SHIFT({c.shift}), .OW({c.ow}), .OSIGNED({c.osigned}), "
            f".ROUND({ROUNDS.index(c.round)}), .SAT({SATS.index(c.sat)}), .RELU({c.relu}), .REG({c.reg}), "
            f".ISIGNED({c.isigned})) u{j} (.clk(clk), .rst(rst), .s_tdata(i{j}_tdata), .s_tvalid(i{j}_tvalid), "
            f".s_tready(i{j}_tready), .m_tdata(o{j}_tdata), .m_tvalid(o{j}_tvalid), .m_tready(o{j}_tready));")
    return build_bench("requant", "\n".join(body), [c.n * c.aw for c in RQ_CASES],
                       [c.n * c.ow for c in RQ_CASES], ["fd_requant"])


@pytest.mark.slow
def test_requant_all_modes_match_quantize_np(requant_bench, tmp_path):
    rng = np.random.default_rng(0)
    beats = 120
    inputs, accs = [], []
    for c in RQ_CASES:
        acc = rand_elems(rng, (beats, c.n), c.aw, bool(c.isigned))
        # extremes and exact ties near zero and at the range ends
        acc[:4, 0] = [(1 << (c.aw - 1)) - 1, -(1 << (c.aw - 1)), 0, -1] if c.isigned else [(1 << c.aw) - 1, 0, 1, 2]
        if c.shift > 0 and c.shift < c.aw - 1:
            half = 1 << (c.shift - 1)
            acc[4:12, 1] = [half, -half, 3 * half, -3 * half, 5 * half, -5 * half, half + 1, -half - 1]
            if not c.isigned:
                acc[4:12, 1] = np.abs(acc[4:12, 1])
        accs.append(acc)
        inputs.append([pack(row, c.aw) for row in acc])
    run = run_bench(requant_bench, tmp_path, inputs, [beats] * len(RQ_CASES), seed=3)
    for j, c in enumerate(RQ_CASES):
        got = np.array([unpack(w, c.n, c.ow, bool(c.osigned)) for w in run.outs[j]])
        exp = requant_expected(accs[j], c)
        assert got.shape == exp.shape, f"{c}: {got.shape} beats out, expected {exp.shape}"
        bad = np.argwhere(got != exp)
        assert bad.size == 0, (f"{c}: {len(bad)} mismatches, first acc={accs[j][tuple(bad[0])]} "
                               f"rtl={got[tuple(bad[0])]} ref={exp[tuple(bad[0])]}")


# ----------------------------------------------------------------------------------------------
# fd_fifo
# ----------------------------------------------------------------------------------------------

FIFO_CASES = [(8, 1, 0), (8, 2, 0), (5, 3, 0), (12, 5, 2), (16, 40, 0), (9, 33, 1), (4, 7, 3)]  # (WIDTH, DEPTH, RAM_STYLE)


def _cw(depth: int) -> int:
    return max(1, (depth).bit_length())  # $clog2(DEPTH+1)


@pytest.fixture(scope="module")
def fifo_bench():
    body, probes = [], []
    for j, (w, d, st) in enumerate(FIFO_CASES):
        cw = _cw(d)
        body.append(f"wire [{cw-1}:0] mc{j}, cnt{j};")
        body.append(
            f"fd_fifo #(.WIDTH({w}), .DEPTH({d}), .RAM_STYLE({st})) u{j} (.clk(clk), .rst(rst), "
            f".s_tdata(i{j}_tdata), .s_tvalid(i{j}_tvalid), .s_tready(i{j}_tready), .m_tdata(o{j}_tdata), "
            f".m_tvalid(o{j}_tvalid), .m_tready(o{j}_tready), .count(cnt{j}), .max_count(mc{j}));")
        probes.append(f"{{{{{8-cw}{{1'b0}}}}, mc{j}}}")
    body.append(f"assign probe = {{{', '.join(reversed(probes))}}};")
    return build_bench("fifo", "\n".join(body), [w for w, _, _ in FIFO_CASES], [w for w, _, _ in FIFO_CASES],
                       ["fd_fifo"], probe=8 * len(FIFO_CASES))


@pytest.mark.slow
@pytest.mark.parametrize("p_bubble,p_stall", [(0.3, 0.3), (0.05, 0.7), (0.0, 0.0)])
def test_fifo_order_occupancy_throughput(fifo_bench, tmp_path, p_bubble, p_stall):
    rng = np.random.default_rng(1)
    beats = 300
    data = [rand_elems(rng, beats, w, False).tolist() for w, _, _ in FIFO_CASES]
    run = run_bench(fifo_bench, tmp_path, data, [beats] * len(FIFO_CASES), seed=5, p_bubble=p_bubble, p_stall=p_stall)
    for j, (w, d, _) in enumerate(FIFO_CASES):
        assert run.outs[j] == data[j], f"FIFO {w}x{d}: output order/content differs"
        max_count = (run.probe >> (8 * j)) & 0xFF
        assert 1 <= max_count <= d, f"FIFO {w}x{d}: max_count {max_count}"
        if p_stall >= 0.7:
            assert max_count == d, f"FIFO {w}x{d}: a mostly stalled output should fill it (max_count {max_count})"
        if p_bubble == 0 and p_stall == 0:  # one beat per cycle, latency 1 (DEPTH <= 2) or 2
            oc, ic = run.out_cycles[j], run.in_cycles[j]
            assert oc == list(range(oc[0], oc[0] + beats)) and ic == list(range(ic[0], ic[0] + beats))
            assert oc[0] - ic[0] == (1 if d <= 2 else 2)


@pytest.mark.slow
@pytest.mark.parametrize("width,depth,lutram", [(512, 21, 86), (300, 65, 100)])
def test_wide_shallow_fifo_maps_to_lut_ram(tmp_path, width, depth, lutram):
    """A shallow FIFO takes LUT RAM at any width (fd_fifo's auto rule, LUTRAM_DEPTH 64): 20 x 512
    bits used to take 2.5 BRAM36 by width. The chooser's model says the same cell count."""
    from fpga_dnn import estimate
    from fpga_dnn.hw import folding

    top = tmp_path / "fifo_synth_top.v"
    top.write_text(
        f"module fifo_synth_top (input wire clk, input wire rst, input wire [{width-1}:0] s_tdata, input wire s_tvalid,\n"
        f"    output wire s_tready, output wire [{width-1}:0] m_tdata, output wire m_tvalid, input wire m_tready);\n"
        f"  fd_fifo #(.WIDTH({width}), .DEPTH({depth})) u (.clk(clk), .rst(rst), .s_tdata(s_tdata), .s_tvalid(s_tvalid),\n"
        "    .s_tready(s_tready), .m_tdata(m_tdata), .m_tvalid(m_tvalid), .m_tready(m_tready), .count(), .max_count());\n"
        "endmodule\n")
    rep = estimate.synthesize([top, *memfiles.hdl_sources("fd_fifo")], "fifo_synth_top", family="xc7",
                              method="flat", cache_dir=tmp_path / "yosys")
    assert rep.bram36 == 0 and rep.lutram == lutram, rep.cells
    model = folding.fifo_resources(depth, width)
    assert (model.bram36, model.lutram) == (0, rep.lutram)


# ----------------------------------------------------------------------------------------------
# fd_swg
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SwgCase:
    h: int
    w: int
    c: int
    ew: int
    kh: int
    kw: int
    sh: int = 1
    sw: int = 1
    pads: tuple = (0, 0, 0, 0)    # top, left, bottom, right
    lb_style: int = 0

    @property
    def oh(self):
        return ref.out_size(self.h, self.kh, self.sh, self.pads[0], self.pads[2])

    @property
    def ow(self):
        return ref.out_size(self.w, self.kw, self.sw, self.pads[1], self.pads[3])

    @property
    def steps(self):
        return (self.h + self.pads[0] + self.pads[2]) * (self.w + self.pads[1] + self.pads[3])


def same_pads(h, w, kh, kw, sh, sw):
    """Keras/TensorFlow 'same' padding (extra row/column at the bottom/right)."""
    def one(n, k, s):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    (pt, pb), (pl, pr) = one(h, kh, sh), one(w, kw, sw)
    return (pt, pl, pb, pr)


SWG_CASES = [
    SwgCase(5, 7, 3, 8, 3, 3),                                        # valid, odd sizes
    SwgCase(6, 6, 2, 6, 3, 3, 2, 2, same_pads(6, 6, 3, 3, 2, 2)),     # stride 2, 'same'
    SwgCase(8, 8, 1, 8, 4, 4, 1, 1, same_pads(8, 8, 4, 4, 1, 1)),     # even kernel 'same' (1/2 pads)
    SwgCase(8, 8, 2, 4, 4, 4, 4, 4, same_pads(8, 8, 4, 4, 4, 4)),     # rn07's k4 stride 4
    SwgCase(1, 9, 4, 8, 1, 3, 1, 1, (0, 1, 0, 1)),                    # 1-D, 'same'
    SwgCase(3, 4, 5, 3, 1, 1),                                        # 1x1 kernel
    SwgCase(5, 5, 2, 8, 2, 2, 2, 2),                                  # pool-like, odd input
    SwgCase(4, 1, 2, 8, 2, 1),                                        # one column (register line buffer)
    SwgCase(7, 5, 3, 8, 3, 2, 2, 1, (1, 0, 1, 1), lb_style=2),        # mixed strides, asymmetric pads
    SwgCase(9, 6, 2, 8, 3, 3, 3, 2, same_pads(9, 6, 3, 3, 3, 2), lb_style=1),
]
SWG_FRAMES = 3


@pytest.fixture(scope="module")
def swg_bench():
    body = []
    for j, c in enumerate(SWG_CASES):
        pt, pl, pb, pr = c.pads
        body.append(
            f"fd_swg #(.H({c.h}), .W({c.w}), .C({c.c}), .EW({c.ew}), .KH({c.kh}), .KW({c.kw}), .SH({c.sh}), "
            f".SW({c.sw}), .PT({pt}), .PL({pl}), .PB({pb}), .PR({pr}), .LB_STYLE({c.lb_style})) u{j} (.clk(clk), "
            f".rst(rst), .s_tdata(i{j}_tdata), .s_tvalid(i{j}_tvalid), .s_tready(i{j}_tready), "
            f".m_tdata(o{j}_tdata), .m_tvalid(o{j}_tvalid), .m_tready(o{j}_tready));")
    return build_bench("swg", "\n".join(body), [c.c * c.ew for c in SWG_CASES],
                       [c.kh * c.kw * c.c * c.ew for c in SWG_CASES], ["fd_swg"])


def _swg_run(bench, tmp_path, **kw):
    rng = np.random.default_rng(2)
    frames = [rand_elems(rng, (SWG_FRAMES, c.h, c.w, c.c), c.ew, False) for c in SWG_CASES]
    inputs = [[pack(px, c.ew) for px in f.reshape(-1, c.c)] for f, c in zip(frames, SWG_CASES)]
    run = run_bench(bench, tmp_path, inputs, [SWG_FRAMES * c.oh * c.ow for c in SWG_CASES], **kw)
    return frames, run


@pytest.mark.slow
def test_swg_windows_with_bubbles_and_backpressure(swg_bench, tmp_path):
    frames, run = _swg_run(swg_bench, tmp_path, seed=7)
    for j, c in enumerate(SWG_CASES):
        exp = ref.windows(frames[j], c.kh, c.kw, c.sh, c.sw, c.pads).reshape(-1, c.kh * c.kw * c.c)
        got = np.array([unpack(w, c.kh * c.kw * c.c, c.ew, False) for w in run.outs[j]])
        assert got.shape == exp.shape, f"{c}: {got.shape[0]} windows out, expected {exp.shape[0]}"
        bad = np.argwhere(np.any(got != exp, axis=1))
        assert bad.size == 0, f"{c}: window {bad[0][0]} differs: {got[bad[0][0]]} vs {exp[bad[0][0]]}"


@pytest.mark.slow
def test_swg_cycles_per_frame(swg_bench, tmp_path):
    """Fed and drained without stalls, a frame takes exactly Hp*Wp cycles (the header's formula)."""
    _, run = _swg_run(swg_bench, tmp_path, seed=8, p_bubble=0.0, p_stall=0.0)
    for j, c in enumerate(SWG_CASES):
        per = c.oh * c.ow
        oc = run.out_cycles[j]
        assert len(oc) == SWG_FRAMES * per
        gaps = {oc[(f + 1) * per + i] - oc[f * per + i] for f in range(SWG_FRAMES - 1) for i in range(per)}
        assert gaps == {c.steps}, f"{c}: cycles per frame {gaps}, expected {c.steps}"


# ----------------------------------------------------------------------------------------------
# fd_mvu
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MvuCase:
    k: int
    n: int
    simd: int
    pe: int
    in_elems: int
    iw: int = 8
    isigned: int = 0
    ww: int = 8
    aw: int = 24
    bias: int = 1
    cast: RqCase | None = None     # the fused cast (RQ = 1): its shift/ow/osigned/round/sat/relu
    mult: int = 0                  # 1: products in LUTs (shift-add), not multipliers

    @property
    def ew(self):
        return self.cast.ow if self.cast else self.aw

    @property
    def folds(self):
        return (self.n // self.pe) * (self.k // self.simd)

    @property
    def interval(self):
        return max(self.folds, self.k // self.in_elems)


MVU_CASES = [
    MvuCase(12, 6, 1, 1, 12),                          # fully folded, one beat per vector
    MvuCase(12, 6, 4, 3, 12, isigned=1),               # slices of a wide input word
    MvuCase(12, 6, 12, 6, 4, isigned=1),               # fully parallel, 3 lanes of 4 inputs
    MvuCase(18, 5, 6, 5, 3, iw=4, ww=3, bias=0),       # lanes, narrow operands, no bias
    MvuCase(8, 4, 2, 2, 2, isigned=1, aw=10),          # accumulator wraps
    MvuCase(7, 3, 7, 1, 7, iw=5, ww=6),                # odd sizes
    MvuCase(32, 4, 8, 2, 2, isigned=1, ww=4, aw=16),   # Dense-like: 16 beats per vector, input bound (8 folds)
    MvuCase(32, 4, 4, 1, 2, isigned=1, ww=4, aw=16),   # 16 beats, 32 folds
    # the first cast fused into the PE lanes (RQ = 1): rounding, saturation, ReLU, a wrapping cast
    MvuCase(12, 6, 4, 3, 12, isigned=1, aw=20, cast=RqCase(20, 5, 8, 0, "RND_CONV", "SAT", relu=1)),
    MvuCase(18, 4, 3, 1, 6, isigned=1, ww=6, aw=18, cast=RqCase(18, 3, 7, 1, "RND", "SAT_SYM")),
    MvuCase(8, 4, 2, 2, 2, isigned=1, aw=16, cast=RqCase(16, 2, 6, 1, "TRN", "WRAP")),
    MvuCase(7, 3, 7, 3, 7, iw=5, ww=6, cast=RqCase(24, -2, 20, 1, "TRN", "SAT")),
    # products in LUTs (MULT = 1): signed and unsigned inputs, extreme weights, a fused cast
    MvuCase(12, 6, 4, 3, 12, isigned=1, mult=1),
    MvuCase(18, 5, 6, 5, 3, iw=4, ww=3, bias=0, mult=1),
    MvuCase(12, 6, 4, 3, 12, aw=20, ww=13, cast=RqCase(20, 5, 8, 0, "RND_CONV", "SAT", relu=1), mult=1),
]
MVU_VECTORS = 24


@pytest.fixture(scope="module")
def mvu_bench():
    body = []
    for j, c in enumerate(MVU_CASES):
        q = c.cast
        rq = (f".RQ(1), .SHIFT({q.shift}), .OW({q.ow}), .OSIGNED({q.osigned}), .ROUND({ROUNDS.index(q.round)}), "
              f".SAT({SATS.index(q.sat)}), .RELU({q.relu}), ") if q else ""
        body.append(
            f"fd_mvu #(.K({c.k}), .N({c.n}), .SIMD({c.simd}), .PE({c.pe}), .IN_ELEMS({c.in_elems}), .IW({c.iw}), "
            f".ISIGNED({c.isigned}), .WW({c.ww}), .AW({c.aw}), .BIAS({c.bias}), {rq}.MULT({c.mult}), .WEIGHT_FILE(\"w{j}.mem\"), "
            f".BIAS_FILE(\"b{j}.mem\")) u{j} (.clk(clk), .rst(rst), .s_tdata(i{j}_tdata), .s_tvalid(i{j}_tvalid), "
            f".s_tready(i{j}_tready), .m_tdata(o{j}_tdata), .m_tvalid(o{j}_tvalid), .m_tready(o{j}_tready));")
    return build_bench("mvu", "\n".join(body), [c.in_elems * c.iw for c in MVU_CASES],
                       [c.n * c.ew for c in MVU_CASES], ["fd_mvu"])


def _mvu_run(bench, run_dir, **kw):
    rng = np.random.default_rng(3)
    run_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    for j, c in enumerate(MVU_CASES):
        w = rand_elems(rng, (c.n, c.k), c.ww, True)
        w[0, :] = -(1 << (c.ww - 1))                    # extreme weights
        b = rand_elems(rng, c.n, min(c.aw, 20), True) if c.bias else None
        memfiles.write_mvu_memfiles(w, b, c.pe, c.simd, c.ww, c.aw, run_dir / f"w{j}.mem", run_dir / f"b{j}.mem")
        x = rand_elems(rng, (MVU_VECTORS, c.k), c.iw, bool(c.isigned))
        x[0, :] = -(1 << (c.iw - 1)) if c.isigned else (1 << c.iw) - 1
        cases.append((w, b, x))
    inputs = [[pack(beat, c.iw) for beat in x.reshape(-1, c.in_elems)] for (_, _, x), c in zip(cases, MVU_CASES)]
    run = run_bench(bench, run_dir, inputs, [MVU_VECTORS] * len(MVU_CASES), **kw)
    return cases, run


@pytest.mark.slow
@pytest.mark.parametrize("seed,p_bubble,p_stall", [(11, 0.3, 0.3), (12, 0.6, 0.1), (13, 0.1, 0.8)])
def test_mvu_matches_integer_matvec(mvu_bench, tmp_path, seed, p_bubble, p_stall):
    cases, run = _mvu_run(mvu_bench, tmp_path, seed=seed, p_bubble=p_bubble, p_stall=p_stall)
    for j, c in enumerate(MVU_CASES):
        w, b, x = cases[j]
        exp = ref.matvec(x, w, b, c.aw)
        if c.cast:
            exp = requant_expected(exp, c.cast)
        got = np.array([unpack(v, c.n, c.ew, not c.cast or bool(c.cast.osigned)) for v in run.outs[j]])
        assert got.shape == exp.shape, f"{c}: {got.shape[0]} vectors out, expected {exp.shape[0]}"
        bad = np.argwhere(np.any(got != exp, axis=1))
        assert bad.size == 0, f"{c}: vector {bad[0][0]}: {got[bad[0][0]]} vs {exp[bad[0][0]]}"
    wrapped = MVU_CASES.index(MvuCase(8, 4, 2, 2, 2, isigned=1, aw=10))
    w, b, x = cases[wrapped]
    assert np.any(np.abs(x @ w.T + b) >= 512), "the wrap case must actually wrap"


@pytest.mark.slow
def test_mvu_cycles_per_vector(mvu_bench, tmp_path):
    """Fed continuously: a vector every max((N/PE)*(K/SIMD), K/IN_ELEMS) cycles, no idle cycle;
    the first result NF*KF + 4 cycles after the vector's last input beat."""
    _, run = _mvu_run(mvu_bench, tmp_path, seed=14, p_bubble=0.0, p_stall=0.0)
    for j, c in enumerate(MVU_CASES):
        oc = run.out_cycles[j]
        gaps = {b - a for a, b in zip(oc[2:], oc[3:])}
        assert gaps == {c.interval}, f"{c}: output interval {gaps}, expected {c.interval}"
        last_beat = run.in_cycles[j][c.k // c.in_elems - 1]
        assert oc[0] - last_beat == c.folds + 4, f"{c}: latency {oc[0] - last_beat}"


# ----------------------------------------------------------------------------------------------
# yosys: multiplies on DSP48E1, the weight ROM in block RAM (xc7)
# ----------------------------------------------------------------------------------------------

SYNTH_MVU = MvuCase(256, 32, 4, 2, 4, iw=8, isigned=0, ww=8, aw=24)   # 8 multipliers, 1024 x 64-bit ROM


@pytest.mark.extended
@pytest.mark.slow
def test_mvu_maps_to_dsp48_and_bram(tmp_path):
    from fpga_dnn import estimate
    from fpga_dnn.rtl.design import source_infos
    from fpga_dnn.rtl.library import stream_library

    c = SYNTH_MVU
    rng = np.random.default_rng(4)
    w = rand_elems(rng, (c.n, c.k), c.ww, True)
    b = rand_elems(rng, c.n, 16, True)
    wf, bf = memfiles.write_mvu_memfiles(w, b, c.pe, c.simd, c.ww, c.aw, tmp_path / "synth_w.mem", tmp_path / "synth_b.mem")
    top = tmp_path / "mvu_synth_top.v"
    top.write_text(
        "module mvu_synth_top (input wire clk, input wire rst, input wire [31:0] s_tdata, input wire s_tvalid,\n"
        "    output wire s_tready, output wire [767:0] m_tdata, output wire m_tvalid, input wire m_tready);\n"
        f"  fd_mvu #(.K({c.k}), .N({c.n}), .SIMD({c.simd}), .PE({c.pe}), .IN_ELEMS({c.in_elems}), .IW({c.iw}), "
        f".ISIGNED({c.isigned}), .WW({c.ww}), .AW({c.aw}), .BIAS(1), .WEIGHT_FILE(\"synth_w.mem\"), "
        ".BIAS_FILE(\"synth_b.mem\")) u (.clk(clk), .rst(rst), .s_tdata(s_tdata), .s_tvalid(s_tvalid),\n"
        "    .s_tready(s_tready), .m_tdata(m_tdata), .m_tvalid(m_tvalid), .m_tready(m_tready));\nendmodule\n")
    lib = memfiles.hdl_sources("fd_mvu")
    rep = estimate.synthesize([top, *lib], "mvu_synth_top", family="xc7", data_files=[wf, bf], method="flat",
                              cache_dir=tmp_path / "yosys", source_info=source_infos((f, stream_library(f)) for f in lib))
    assert rep.dsp == c.pe * c.simd, f"{rep.dsp} DSP48E1 for {c.pe * c.simd} 8x9-bit multipliers: {rep.cells}"
    rom_bits = c.n * c.k * c.ww
    assert 1 <= rep.bram36 <= 2 * rom_bits / 36864 + 1, f"weight ROM ({rom_bits} bits): {rep.bram36} BRAM36: {rep.cells}"
    assert rep.lut < 2000, rep.cells


@pytest.mark.slow
def test_mvu_lut_multipliers_take_no_dsp48(tmp_path):
    """MULT = 1 (a layer the chooser moved into LUTs, exact in simulation above): yosys maps its
    products to LUTs, no DSP48E1; the same unit with MULT = 0 takes one DSP48E1 per product."""
    from fpga_dnn import estimate
    from fpga_dnn.rtl.design import source_infos
    from fpga_dnn.rtl.library import stream_library

    k, n, simd, iw, ww, aw = 16, 2, 4, 8, 8, 20
    rng = np.random.default_rng(5)
    wf, bf = memfiles.write_mvu_memfiles(rand_elems(rng, (n, k), ww, True), rand_elems(rng, n, 12, True), 1, simd,
                                         ww, aw, tmp_path / "lm_w.mem", tmp_path / "lm_b.mem")
    lib = memfiles.hdl_sources("fd_mvu")
    reps = {}
    for mult in (0, 1):
        top = tmp_path / f"lm{mult}.v"
        top.write_text(
            f"module lm{mult} (input wire clk, input wire rst, input wire [{k * iw - 1}:0] s_tdata, input wire s_tvalid,\n"
            f"    output wire s_tready, output wire [{n * aw - 1}:0] m_tdata, output wire m_tvalid, input wire m_tready);\n"
            f"  fd_mvu #(.K({k}), .N({n}), .SIMD({simd}), .PE(1), .IN_ELEMS({k}), .IW({iw}), .WW({ww}), .AW({aw}), "
            f".BIAS(1), .MULT({mult}), .WEIGHT_FILE(\"lm_w.mem\"), .BIAS_FILE(\"lm_b.mem\")) u (.clk(clk), .rst(rst), "
            ".s_tdata(s_tdata), .s_tvalid(s_tvalid), .s_tready(s_tready), .m_tdata(m_tdata), .m_tvalid(m_tvalid), "
            ".m_tready(m_tready));\nendmodule\n")
        reps[mult] = estimate.synthesize([top, *lib], f"lm{mult}", family="xc7", data_files=[wf, bf], method="flat",
                                         source_info=source_infos((f, stream_library(f)) for f in lib))
    assert reps[0].dsp == simd and reps[1].dsp == 0, (reps[0].cells, reps[1].cells)
    assert reps[1].lut > reps[0].lut + simd * 50, (reps[0].lut, reps[1].lut)


# ----------------------------------------------------------------------------------------------
# fd_chanaffine, fd_pool, fd_fork, fd_add, fd_concat (one bench)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PoolCase:
    h: int
    w: int
    c: int
    ew: int
    isigned: int
    k: int
    s: int
    pads: tuple
    mode: int          # 0 max, 1 sum
    aw: int = 12


POOL_CASES = [
    PoolCase(6, 6, 3, 8, 1, 2, 2, (0, 0, 0, 0), 0),
    PoolCase(5, 7, 2, 6, 1, 3, 2, same_pads(5, 7, 3, 3, 2, 2), 0),     # signed max: padding never wins
    PoolCase(5, 5, 2, 8, 0, 2, 2, same_pads(5, 5, 2, 2, 2, 2), 1),     # unsigned sum, 'same'
    PoolCase(4, 6, 1, 5, 1, 3, 1, (1, 1, 1, 1), 1),
]
AFF = dict(n=5, iw=8, isigned=1, mw=7, aw=18)
ADD = dict(n=4, aw_a=8, shift_a=2, aw_b=10, shift_b=0, aw=12)    # signed a, unsigned b
CAT = dict(n_a=3, n_b=2, ew=6)
FORK = dict(width=10, n_out=3)
MISC_FRAMES = 3


def _misc_streams():
    """Input and output widths of the misc bench, in port order."""
    ins = [c.c * c.ew for c in POOL_CASES] + [AFF["n"] * AFF["iw"], ADD["n"] * ADD["aw_a"], ADD["n"] * ADD["aw_b"],
                                             CAT["n_a"] * CAT["ew"], CAT["n_b"] * CAT["ew"], FORK["width"]]
    outs = [c.c * (c.aw if c.mode else c.ew) for c in POOL_CASES] + [AFF["n"] * AFF["aw"], ADD["n"] * ADD["aw"],
                                                                     (CAT["n_a"] + CAT["n_b"]) * CAT["ew"]]
    outs += [FORK["width"]] * FORK["n_out"]
    return ins, outs


@pytest.fixture(scope="module")
def misc_bench():
    body = []
    for j, c in enumerate(POOL_CASES):
        pt, pl, pb, pr = c.pads
        body.append(
            f"fd_pool #(.H({c.h}), .W({c.w}), .C({c.c}), .EW({c.ew}), .ISIGNED({c.isigned}), .KH({c.k}), .KW({c.k}), "
            f".SH({c.s}), .SW({c.s}), .PT({pt}), .PL({pl}), .PB({pb}), .PR({pr}), .MODE({c.mode}), .AW({c.aw})) p{j} "
            f"(.clk(clk), .rst(rst), .s_tdata(i{j}_tdata), .s_tvalid(i{j}_tvalid), .s_tready(i{j}_tready), "
            f".m_tdata(o{j}_tdata), .m_tvalid(o{j}_tvalid), .m_tready(o{j}_tready));")
    i, o = len(POOL_CASES), len(POOL_CASES)
    a = AFF
    body.append(
        f"fd_chanaffine #(.N({a['n']}), .IW({a['iw']}), .ISIGNED({a['isigned']}), .MW({a['mw']}), .AW({a['aw']}), "
        f".SCALE_FILE(\"aff_scale.mem\"), .BIAS_FILE(\"aff_bias.mem\")) aff (.clk(clk), .rst(rst), .s_tdata(i{i}_tdata), "
        f".s_tvalid(i{i}_tvalid), .s_tready(i{i}_tready), .m_tdata(o{o}_tdata), .m_tvalid(o{o}_tvalid), .m_tready(o{o}_tready));")
    d = ADD
    body.append(
        f"fd_add #(.N({d['n']}), .AW_A({d['aw_a']}), .SHIFT_A({d['shift_a']}), .AW_B({d['aw_b']}), .SHIFT_B({d['shift_b']}), "
        f".AW({d['aw']}), .SIGNED_A(1), .SIGNED_B(0)) add (.clk(clk), .rst(rst), .a_tdata(i{i+1}_tdata), .a_tvalid(i{i+1}_tvalid), "
        f".a_tready(i{i+1}_tready), .b_tdata(i{i+2}_tdata), .b_tvalid(i{i+2}_tvalid), .b_tready(i{i+2}_tready), "
        f".m_tdata(o{o+1}_tdata), .m_tvalid(o{o+1}_tvalid), .m_tready(o{o+1}_tready));")
    body.append(
        f"fd_concat #(.N_A({CAT['n_a']}), .N_B({CAT['n_b']}), .EW({CAT['ew']})) cat (.clk(clk), .rst(rst), "
        f".a_tdata(i{i+3}_tdata), .a_tvalid(i{i+3}_tvalid), .a_tready(i{i+3}_tready), .b_tdata(i{i+4}_tdata), "
        f".b_tvalid(i{i+4}_tvalid), .b_tready(i{i+4}_tready), .m_tdata(o{o+2}_tdata), .m_tvalid(o{o+2}_tvalid), "
        f".m_tready(o{o+2}_tready));")
    n = FORK["n_out"]
    fo = [o + 3 + k for k in range(n)]
    body.append(f"wire [{FORK['width']-1}:0] fork_d; wire [{n-1}:0] fork_v;")
    body.append(
        f"fd_fork #(.WIDTH({FORK['width']}), .N_OUT({n})) u_fork (.clk(clk), .rst(rst), .s_tdata(i{i+5}_tdata), "
        f".s_tvalid(i{i+5}_tvalid), .s_tready(i{i+5}_tready), .m_tdata(fork_d), .m_tvalid(fork_v), "
        f".m_tready({{{', '.join(f'o{q}_tready' for q in reversed(fo))}}}));")
    for k, q in enumerate(fo):
        body.append(f"assign o{q}_tdata = fork_d; assign o{q}_tvalid = fork_v[{k}];")
    ins, outs = _misc_streams()
    return build_bench("misc", "\n".join(body), ins, outs,
                       ["fd_swg", "fd_pool", "fd_chanaffine", "fd_add", "fd_concat", "fd_fork"])


@pytest.mark.slow
@pytest.mark.parametrize("seed,p_bubble,p_stall", [(21, 0.3, 0.3), (22, 0.1, 0.7)])
def test_pool_affine_add_concat_fork(misc_bench, tmp_path, seed, p_bubble, p_stall):
    rng = np.random.default_rng(seed)
    inputs, expected, checks = [], [], []
    for c in POOL_CASES:
        x = rand_elems(rng, (MISC_FRAMES, c.h, c.w, c.c), c.ew, bool(c.isigned))
        inputs.append([pack(px, c.ew) for px in x.reshape(-1, c.c)])
        exp = ref.pool(x, c.k, c.k, c.s, c.s, c.pads, "sum" if c.mode else "max", bool(c.isigned), c.ew)
        checks.append((exp.reshape(-1, c.c), c.c, c.aw if c.mode else c.ew, bool(c.isigned) or bool(c.mode)))
    beats = 60
    a = AFF
    scale = rand_elems(rng, a["n"], a["mw"], True)
    bias = rand_elems(rng, a["n"], 14, True)
    memfiles.write_vector_memfile(scale, a["mw"], tmp_path / "aff_scale.mem")
    memfiles.write_vector_memfile(bias, a["aw"], tmp_path / "aff_bias.mem")
    x = rand_elems(rng, (beats, a["n"]), a["iw"], True)
    inputs.append([pack(r, a["iw"]) for r in x])
    checks.append((ref.wrap(x * scale + bias, a["aw"]), a["n"], a["aw"], True))
    d = ADD
    xa = rand_elems(rng, (beats, d["n"]), d["aw_a"], True)
    xb = rand_elems(rng, (beats, d["n"]), d["aw_b"], False)
    inputs += [[pack(r, d["aw_a"]) for r in xa], [pack(r, d["aw_b"]) for r in xb]]
    checks.append((ref.wrap((xa << d["shift_a"]) + (xb << d["shift_b"]), d["aw"]), d["n"], d["aw"], True))
    ca = rand_elems(rng, (beats, CAT["n_a"]), CAT["ew"], False)
    cb = rand_elems(rng, (beats, CAT["n_b"]), CAT["ew"], False)
    inputs += [[pack(r, CAT["ew"]) for r in ca], [pack(r, CAT["ew"]) for r in cb]]
    checks.append((np.concatenate([ca, cb], axis=1), CAT["n_a"] + CAT["n_b"], CAT["ew"], False))
    fk = rand_elems(rng, (beats, 1), FORK["width"], False)
    inputs.append([int(v) for v in fk[:, 0]])
    checks += [(fk, 1, FORK["width"], False)] * FORK["n_out"]
    expected = [len(e) for e, *_ in checks]
    run = run_bench(misc_bench, tmp_path, inputs, expected, seed=seed, p_bubble=p_bubble, p_stall=p_stall)
    names = [f"pool{c}" for c in POOL_CASES] + ["chanaffine", "add", "concat"] + [f"fork out {k}" for k in range(FORK["n_out"])]
    for j, (exp, n, bits, signed) in enumerate(checks):
        got = np.array([unpack(v, n, bits, signed) for v in run.outs[j]])
        assert got.shape == exp.shape, f"{names[j]}: {got.shape[0]} beats out, expected {exp.shape[0]}"
        bad = np.argwhere(np.any(got != exp, axis=1))
        assert bad.size == 0, f"{names[j]}: beat {bad[0][0]}: {got[bad[0][0]]} vs {exp[bad[0][0]]}"


# ----------------------------------------------------------------------------------------------
# fd_pool, sequential form (non-overlapping unpadded windows: one accumulator per output column)
# ----------------------------------------------------------------------------------------------

SEQ_POOL_CASES = [                                  # kernel == stride, no padding
    PoolCase(4, 5, 3, 8, 1, 0, 0, (0, 0, 0, 0), 1, aw=11),   # global signed sum, wraps in 11 bits
    PoolCase(3, 3, 2, 6, 0, 0, 0, (0, 0, 0, 0), 1, aw=9),    # global unsigned sum
    PoolCase(4, 4, 4, 7, 1, 0, 0, (0, 0, 0, 0), 0),          # global signed max
    PoolCase(2, 3, 2, 5, 0, 0, 0, (0, 0, 0, 0), 0),          # global unsigned max
    PoolCase(5, 6, 2, 7, 1, 2, 2, (0, 0, 0, 0), 0),          # 2x2 signed max, a leftover row
    PoolCase(4, 7, 3, 5, 0, 2, 2, (0, 0, 0, 0), 1, aw=7),    # 2x2 unsigned sum, leftover column, wraps
]


def _seq_kernel(c: PoolCase) -> tuple[int, int]:
    return (c.k, c.k) if c.k else (c.h, c.w)     # k == 0: the window is the whole image


@pytest.fixture(scope="module")
def seq_pool_bench():
    body = []
    for j, c in enumerate(SEQ_POOL_CASES):
        kh, kw = _seq_kernel(c)
        body.append(
            f"fd_pool #(.H({c.h}), .W({c.w}), .C({c.c}), .EW({c.ew}), .ISIGNED({c.isigned}), .KH({kh}), .KW({kw}), "
            f".SH({kh}), .SW({kw}), .MODE({c.mode}), .AW({c.aw})) p{j} "
            f"(.clk(clk), .rst(rst), .s_tdata(i{j}_tdata), .s_tvalid(i{j}_tvalid), .s_tready(i{j}_tready), "
            f".m_tdata(o{j}_tdata), .m_tvalid(o{j}_tvalid), .m_tready(o{j}_tready));")
    ins = [c.c * c.ew for c in SEQ_POOL_CASES]
    outs = [c.c * (c.aw if c.mode else c.ew) for c in SEQ_POOL_CASES]
    return build_bench("seqpool", "\n".join(body), ins, outs, ["fd_pool"])


@pytest.mark.parametrize("seed,p_bubble,p_stall", [(31, 0.3, 0.3), (32, 0.0, 0.0)])
def test_sequential_pool_equals_the_reference(seq_pool_bench, tmp_path, seed, p_bubble, p_stall):
    """Average (sum) and max pools whose windows do not overlap, signed and unsigned, over the whole
    image and 2x2, equal ref.pool (numpy, the hls4ml semantics) frame after frame; unobstructed, a
    pixel is taken every cycle and a window's result leaves one cycle after its last pixel."""
    rng = np.random.default_rng(seed)
    inputs, checks = [], []
    for c in SEQ_POOL_CASES:
        kh, kw = _seq_kernel(c)
        x = rand_elems(rng, (MISC_FRAMES, c.h, c.w, c.c), c.ew, bool(c.isigned))
        inputs.append([pack(px, c.ew) for px in x.reshape(-1, c.c)])
        exp = ref.pool(x, kh, kw, kh, kw, (0, 0, 0, 0), "sum" if c.mode else "max", bool(c.isigned), c.ew)
        if c.mode:
            exp = ref.wrap(exp, c.aw)
        checks.append(exp.reshape(-1, c.c))
    run = run_bench(seq_pool_bench, tmp_path, inputs, [len(e) for e in checks], seed=seed,
                    p_bubble=p_bubble, p_stall=p_stall)
    for j, (c, exp) in enumerate(zip(SEQ_POOL_CASES, checks)):
        bits = c.aw if c.mode else c.ew
        got = np.array([unpack(v, c.c, bits, bool(c.isigned) or bool(c.mode)) for v in run.outs[j]])
        assert got.shape == exp.shape, f"{c}: {got.shape[0]} beats out, expected {exp.shape[0]}"
        bad = np.argwhere(np.any(got != exp, axis=1))
        assert bad.size == 0, f"{c}: beat {bad[0][0]}: {got[bad[0][0]]} vs {exp[bad[0][0]]}"
        if p_bubble == 0 and p_stall == 0:
            kh, kw = _seq_kernel(c)
            ic, oc = run.in_cycles[j], run.out_cycles[j]
            assert ic == list(range(ic[0], ic[0] + len(ic))), f"{c}: input not taken every cycle"
            ow = (c.w - kw) // kw + 1
            lasts = [f * c.h * c.w + (oy * kh + kh - 1) * c.w + ox * kw + kw - 1
                     for f in range(MISC_FRAMES) for oy in range((c.h - kh) // kh + 1) for ox in range(ow)]
            assert [o - ic[p] for o, p in zip(oc, lasts)] == [1] * len(oc), f"{c}: output not 1 cycle after its window"
