"""The hardware graph: the network as the streaming RTL builds it, with integer-level parameters.

Why a graph of its own: hls4ml's ``ModelGraph`` describes C++ loops; a streaming design needs
the same network as *hardware units* (a window generator + folded matrix-vector unit per
Conv/Dense, a per-channel affine unit, a pool, an adder, a concat) whose parameters are the
integers the Verilog modules take. :mod:`fpga_dnn.hw.lower` is the only reader of hls4ml on this
path; everything downstream (the folding chooser, the numpy reference executor
:mod:`fpga_dnn.hw.reference`, the stitcher) reads only this module's classes.

Conventions (those of the stream contract, ``/work/notes/STREAM_CONTRACT.md``):

* Shapes are ``(H, W, C)``, channels_last; a 1-D tensor has ``H = 1``; a flat vector of ``n``
  values is ``(1, 1, n)``. A stream carries one pixel (C elements) per beat, row-major.
* Every element is an integer: the fixed-point value times ``2**frac`` of its port type, an
  :class:`~fpga_dnn.rtl.precision.HlsType` (the project's one fixed-point type class).
* A matrix ``w`` is ``(N, K)``: ``acc[n] = bias[n] + sum_k w[n, k] * x[k]`` with ``x`` in the
  window order of ``fd_swg``: index ``(kh*KW + kw)*C + c``. For a Dense after a Flatten, ``x`` is
  the flattened (h, w, c) pixel order, which is hls4ml's Flatten order for channels_last.
* Accumulators are two's complement integers of ``acc_width`` bits on the grid ``2**-acc_frac``
  and wrap (hls4ml's WRAP ``accum_t``); :mod:`.lower` refuses a saturating accumulator, because a
  folded unit sums in another order than hls4ml's loops.
* A :class:`Requant` turns an integer of one grid into an element of an output type exactly as
  ``ap_fixed``'s assignment does (``fpga_dnn.rtl.precision.quantize_np``): arithmetic shift right
  by ``shift`` with the output type's rounding, then its overflow mode; ``relu`` clamps negative
  values to 0 first (hls4ml's ``x > 0 ? x : 0`` before the cast). A node's ``requant`` is a chain
  (a layer's own cast, then e.g. a following activation's cast, fused into the same unit).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import prod

import numpy as np

from fpga_dnn.rtl.precision import HlsType

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class Fold:
    """Parallelism of a matrix-vector unit: ``pe`` outputs and ``simd`` inputs per clock, and
    where its ``pe * simd`` products are made: ``mult = "dsp"`` (a DSP48 each) or ``"lut"``
    (shift-add in LUTs, ``fd_mvu`` MULT = 1; the same products, for a DSP budget that binds)."""

    pe: int = 1
    simd: int = 1
    mult: str = "dsp"

    MULTS = ("dsp", "lut")


@dataclass(frozen=True)
class Window:
    """A sliding window's geometry (``fd_swg`` / ``fd_pool`` parameters KH..PR)."""

    kh: int = 1
    kw: int = 1
    sh: int = 1
    sw: int = 1
    pt: int = 0
    pl: int = 0
    pb: int = 0
    pr: int = 0

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        return ((h + self.pt + self.pb - self.kh) // self.sh + 1,
                (w + self.pl + self.pr - self.kw) // self.sw + 1)

    @property
    def size(self) -> int:
        return self.kh * self.kw

    @property
    def padded(self) -> bool:
        return any((self.pt, self.pl, self.pb, self.pr))

    @property
    def trivial(self) -> bool:
        """1x1, stride 1, no padding: the unit reads pixels directly (no line buffer)."""
        return self == Window()

    def gaps(self, h: int, w: int) -> tuple[list[int], int]:
        """The walk of a generator over an ``h`` x ``w`` input padded by this window (``fd_swg``:
        one position a step, row-major): the window-less steps before each window it emits, and
        the steps after the last one."""
        hp, wp = h + self.pt + self.pb, w + self.pl + self.pr
        at = [r * wp + c for r in range(self.kh - 1, hp, self.sh) for c in range(self.kw - 1, wp, self.sw)]
        return [b - a - 1 for a, b in zip([-1] + at, at)], hp * wp - 1 - at[-1]

    def quiet_steps(self, h: int, w: int) -> int:
        """The longest run of window-less steps, frames back to back (the last window's tail and
        the next frame's lead-in are one run)."""
        gaps, tail = self.gaps(h, w)
        return max(gaps[0] + tail, *gaps[1:])

    @property
    def tiles(self) -> bool:
        """Stride == kernel, no padding: windows that do not overlap, so ``fd_pool`` accumulates
        them pixel by pixel (its sequential form; the rule is fd_pool's ``SEQ``)."""
        return self.sh == self.kh and self.sw == self.kw and not self.padded


@dataclass(frozen=True)
class Requant:
    """``y = out_type(relu?(x))`` for an integer ``x`` on the grid ``2**-(out.f + shift)``."""

    shift: int          # input frac - output frac (negative: shift left)
    out: HlsType        # output element type, with its rounding and overflow modes
    relu: bool = False

    # fd_requant's ROUND / SAT parameter codes (the contract's numbering)
    ROUNDING_CODES = {"TRN": 0, "RND": 1, "RND_CONV": 2, "RND_ZERO": 3, "RND_INF": 4,
                      "RND_MIN_INF": 5, "TRN_ZERO": 6}
    OVERFLOW_CODES = {"WRAP": 0, "SAT": 1, "SAT_SYM": 2, "SAT_ZERO": 3}

    @property
    def round_code(self) -> int:
        return self.ROUNDING_CODES[self.out.rounding]

    @property
    def sat_code(self) -> int:
        return self.OVERFLOW_CODES[self.out.overflow]


@dataclass
class Node:
    """One hardware unit. ``inputs`` name the producing nodes (the graph's edges).

    ``in_type``/``out_type`` are the element types of the input and output streams; for a node
    with two inputs, ``in_type`` is the first one's (see the node class for the second).
    """

    name: str                      # the hls4ml layer name (the last one fused into this unit)
    inputs: tuple[str, ...]
    in_shape: Shape
    out_shape: Shape
    in_type: HlsType
    out_type: HlsType
    layers: tuple[str, ...] = ()   # every hls4ml layer this unit implements, in order
    kind: str = field(default="node", init=False)

    @property
    def in_pixels(self) -> int:
        return self.in_shape[0] * self.in_shape[1]

    @property
    def out_pixels(self) -> int:
        return self.out_shape[0] * self.out_shape[1]

    @property
    def out_elems(self) -> int:
        return int(prod(self.out_shape))

    @property
    def in_bits(self) -> int:
        return self.in_type.width

    @property
    def out_bits(self) -> int:
        return self.out_type.width


@dataclass
class InputNode(Node):
    """The network input, streamed pixel by pixel in ``out_type``."""

    kind: str = field(default="input", init=False)


@dataclass
class MatVecNode(Node):
    """Conv1D/Conv2D (``kind='conv'``) or Dense (``kind='dense'``): window + folded MVU + requant.

    ``w`` (N, K) int64 and ``bias`` (N,) int64 are on the accumulator grid: the integer product
    ``w[n,k] * x[k]`` is worth ``2**-acc_frac``, so ``acc = bias + w @ x`` needs no alignment.
    A Dense has ``window = None`` and reads ``K / C`` beats of ``C = in_shape[2]`` elements per
    vector (K = all input elements); a Conv reads one window beat of ``K = KH*KW*C`` elements per
    output pixel.
    """

    window: Window | None = None
    w: np.ndarray = None               # (N, K) integers
    bias: np.ndarray = None            # (N,) integers on the accumulator grid
    weight_width: int = 8              # bits of the signed weight integers
    acc_width: int = 32                # two's complement, wrap-around
    acc_frac: int = 0
    requant: tuple[Requant, ...] = ()
    fold: Fold = Fold()

    def __post_init__(self):
        self.kind = "conv" if self.window is not None else "dense"

    @property
    def n(self) -> int:
        return int(self.w.shape[0])

    @property
    def k(self) -> int:
        return int(self.w.shape[1])

    @property
    def in_elems(self) -> int:
        """Elements per input beat of the MVU (a window for a Conv, a pixel for a Dense)."""
        return self.k if self.window is not None else self.in_shape[2]

    @property
    def vectors_per_frame(self) -> int:
        """Matrix-vector products per frame: output pixels (1 for a Dense)."""
        return self.out_pixels

    @property
    def macs_per_frame(self) -> int:
        return self.vectors_per_frame * self.n * self.k

    def legal_pe(self) -> list[int]:
        return _divisors(self.n)

    def legal_simd(self) -> list[int]:
        """Divisors of K that divide, or are multiples of, the elements per input beat (fd_mvu)."""
        e = self.in_elems
        return [d for d in _divisors(self.k) if e % d == 0 or d % e == 0]

    def fold_error(self, fold: Fold) -> str | None:
        """Why ``fold`` is illegal for this node (None when it is legal)."""
        bad = []
        if fold.pe < 1 or self.n % fold.pe:
            bad.append(f"pe={fold.pe} does not divide N={self.n} (legal pe: {_fmt(self.legal_pe())})")
        if fold.simd not in self.legal_simd():
            bad.append(f"simd={fold.simd} is not legal for K={self.k} in beats of {self.in_elems} "
                       f"(legal simd: {_fmt(self.legal_simd())})")
        if fold.mult not in Fold.MULTS:
            bad.append(f"mult={fold.mult!r} (legal mult: {', '.join(map(repr, Fold.MULTS))})")
        return f"layer {self.name!r}: " + "; ".join(bad) if bad else None

    def cycles_per_vector(self, fold: Fold | None = None) -> int:
        f = fold or self.fold
        return (self.n // f.pe) * (self.k // f.simd)

    def cycles_per_frame(self, fold: Fold | None = None) -> int:
        return self.vectors_per_frame * self.cycles_per_vector(fold)

    @property
    def weight_bits(self) -> int:
        return self.n * self.k * self.weight_width


@dataclass
class AffineNode(Node):
    """BatchNormalization not folded into a weight layer: ``y[c] = x[c]*scale[c] + bias[c]``.

    ``scale`` is on the grid ``2**-scale_frac`` (signed ``scale_width`` bits); the product and
    ``bias`` are on ``2**-acc_frac`` = input frac + scale_frac, in ``acc_width`` bits that hold the
    exact result (hls4ml computes it at full precision).
    """

    scale: np.ndarray = None
    bias: np.ndarray = None
    scale_width: int = 8
    scale_frac: int = 0
    acc_width: int = 32
    acc_frac: int = 0
    requant: tuple[Requant, ...] = ()
    kind: str = field(default="affine", init=False)


@dataclass
class PoolNode(Node):
    """Max or average pooling (``mode`` 'max' | 'avg') over ``window``, per channel.

    Max: the window's maximum (already in the input grid), then ``requant``. Average: the sum of
    the window in ``acc_width`` bits on the input grid, then ``requant`` (whose first step divides
    by the window size with a shift, truncating towards zero as C does).
    """

    window: Window = Window()
    mode: str = "max"
    acc_width: int = 32
    requant: tuple[Requant, ...] = ()
    kind: str = field(default="pool", init=False)


@dataclass
class AddNode(Node):
    """Element-wise sum of two streams (hls4ml ``Merge(add)``), then ``requant``.

    Each operand is shifted left by its ``shift_*`` onto the common grid ``2**-acc_frac``; the sum
    is exact in ``acc_width`` bits. The second operand's element type is ``in_type_b``.
    """

    in_type_b: HlsType = None
    shift_a: int = 0
    shift_b: int = 0
    acc_width: int = 32
    acc_frac: int = 0
    requant: tuple[Requant, ...] = ()
    kind: str = field(default="add", init=False)


@dataclass
class ConcatNode(Node):
    """Channel concatenation of two streams; each operand is cast by its requant chain first."""

    in_type_b: HlsType = None
    requant_a: tuple[Requant, ...] = ()
    requant_b: tuple[Requant, ...] = ()
    kind: str = field(default="concat", init=False)


@dataclass
class RequantNode(Node):
    """An element-wise cast on its own (an activation that could not be fused into its producer)."""

    requant: tuple[Requant, ...] = ()
    kind: str = field(default="requant", init=False)


@dataclass
class ArgmaxNode(Node):
    """A Softmax at the output replaced by argmax: one index per frame (ties to the lowest)."""

    kind: str = field(default="argmax", init=False)


NODE_KINDS = ("input", "conv", "dense", "affine", "pool", "add", "concat", "requant", "argmax")


@dataclass
class HwGraph:
    """Nodes in topological order (the first is the input); ``output`` names the last node."""

    name: str
    nodes: list[Node]
    output: str
    softmax: str | None = None           # what happened to an output Softmax ('logits'/'argmax')
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._by_name = {n.name: n for n in self.nodes}
        if len(self._by_name) != len(self.nodes):
            raise ValueError("hardware graph: duplicate node names")

    def __getitem__(self, name: str) -> Node:
        return self._by_name[name]

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def input(self) -> InputNode:
        return self.nodes[0]

    @property
    def out_node(self) -> Node:
        return self._by_name[self.output]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def matvec_nodes(self) -> list[MatVecNode]:
        return [n for n in self.nodes if isinstance(n, MatVecNode)]

    def folds(self) -> dict[str, Fold]:
        return {n.name: n.fold for n in self.matvec_nodes()}

    def with_folds(self, folds: dict[str, Fold]) -> "HwGraph":
        """A copy with the given folds applied (checked; unnamed nodes keep theirs)."""
        from fpga_dnn.errors import ConfigError

        mv = {n.name: n for n in self.matvec_nodes()}
        unknown = sorted(set(folds) - set(mv))
        if unknown:
            raise ConfigError(f"folding names {', '.join(map(repr, unknown))}, not a Conv/Dense layer of "
                              f"{self.name}; its Conv/Dense layers: {', '.join(mv) or '(none)'}")
        nodes = []
        for n in self.nodes:
            if n.name in folds:
                err = n.fold_error(folds[n.name])
                if err:
                    raise ConfigError(err)
                n = replace(n, fold=folds[n.name])
            nodes.append(n)
        return HwGraph(self.name, nodes, self.output, self.softmax, list(self.notes))

    def upto(self, name: str) -> "HwGraph":
        """The sub-graph that computes node ``name`` (its ancestors), with ``name`` as output."""
        need, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n not in need:
                need.add(n)
                todo.extend(self._by_name[n].inputs)
        nodes = [n for n in self.nodes if n.name in need]
        return HwGraph(f"{self.name}_upto_{name}", nodes, name, None, [])

    def describe(self) -> list[str]:
        """One line per node, for logs and reports."""
        lines = []
        for n in self.nodes:
            extra = ""
            if isinstance(n, MatVecNode):
                extra = (f" K={n.k} N={n.n} pe={n.fold.pe} simd={n.fold.simd}"
                         f"{' mult=lut' if n.fold.mult == 'lut' else ''} acc={n.acc_width}b")
            lines.append(f"{n.kind:8s} {n.name}: {n.in_shape} -> {n.out_shape} {n.out_type}{extra}")
        return lines


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _fmt(values: list[int]) -> str:
    return ", ".join(map(str, values))
