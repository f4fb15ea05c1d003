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
