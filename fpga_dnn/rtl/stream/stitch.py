"""Stitching: one streaming top from a hardware graph, built from the ``fd_*`` module library.

Each node of :class:`~fpga_dnn.hw.graph.HwGraph` becomes a short chain of library instances
(``fd_swg`` -> ``fd_mvu`` -> ``fd_requant``... for a Conv); an ``fd_fifo`` sits on every edge
between nodes; a node read by two others feeds an ``fd_fork``. FIFO depths come from the schedule
(:func:`fifo_depths`), not from simulation: the FIFO on each input of an Add/Concat holds
everything the *other* branch can absorb before it produces its first result, so the fork ahead
of the two branches can never block on a full skip branch while the long branch starves (the
classic dataflow deadlock).

The core ``<name>_stream_core`` speaks the stream contract (one pixel per beat, channel 0 in the
LSBs); ``<name>_axis`` wraps it in ``axis_stream_shell.v`` (next to this file), which unpacks
fpga_dnn-lanes-v1 AXI-Stream beats (the spec's layout, unchanged from the unrolled design) into
pixels and packs the result back, carrying tlast. So the runtime and the overlays read the same
``spec.json`` as for an unrolled design: the flat element order (h, w, c) is the pixel order.

Debug ports (left unconnected in the AXI top, read by :mod:`.emulate`): ``dbg_valid`` and
``dbg_ready`` (one bit per stream, for the stall watchdog) and ``dbg_fifo_max`` (16 bits per FIFO:
its maximum occupancy).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from fpga_dnn.errors import ConfigError
from fpga_dnn.hw.graph import (
    AddNode,
    AffineNode,
    ConcatNode,
    HwGraph,
    InputNode,
    MatVecNode,
    Node,
    PoolNode,
    Requant,
    RequantNode,
)
from fpga_dnn.rtl.design import Design, Module, SourceInfo, source_infos
from fpga_dnn.rtl.library import stream_library
from fpga_dnn.rtl.precision import HlsType
from fpga_dnn.rtl.shell import axis_port_declarations, axis_ports, axis_shell_connections

from . import memfiles

SHELL_SOURCE = Path(__file__).resolve().parent / "axis_stream_shell.v"
SHELL_MODULE = "fd_stream_shell"
#: Tag of the generator's output format (part of cache keys).
STITCH_VERSION = 1
#: Depth of the FIFO on an ordinary edge (the units have output registers; 2 keeps them busy).
EDGE_DEPTH = 2
#: Extra beats on every skip FIFO beyond the computed capacity.
SKIP_MARGIN = 4
#: The consumer named for the FIFO between the core's last unit and the AXI-Stream shell.
OUTPUT = "output shell"


@dataclass
class Stream:
    """A wire bundle ``<name>_tdata/_tvalid/_tready`` carrying ``elems`` elements of ``width`` bits."""

    name: str
    elems: int
    width: int
    signed: bool
    what: str                 # who drives it (for stall reports)

    @property
    def bits(self) -> int:
        return self.elems * self.width


@dataclass
class Fifo:
    name: str
    depth: int
    width: int
    what: str                 # the edge it sits on: "producer -> consumer"
    skip: bool = False        # sized for a skip branch (must never fill)


@dataclass
class StreamDesign:
    """The stitched design: sources in compile order, top modules, memory files, FIFOs, streams."""

    graph: HwGraph
    directory: Path
    core: str
    top: str
    sources: list[Path]
    memfiles: list[Path]
    streams: list[Stream]
    fifos: list[Fifo]
    spec: object = None           # fpga_dnn.runtime.spec.Spec
    modules: dict = field(default_factory=dict)   # node name -> instance names
    instances: dict = field(default_factory=dict)  # instance name -> Verilog module
    parameters: dict = field(default_factory=dict)  # instance name -> its Verilog parameters
    ports: dict = field(default_factory=dict)      # the top's ports {name: (direction, bits)}
    source_info: dict = field(default_factory=dict)  # str(source) -> SourceInfo (what it holds)

    def axis_design(self, interval: int) -> Design:
        """The :class:`~fpga_dnn.rtl.design.Design` later steps read (saved as design.json):
        ``interval`` is the chooser's cycles per frame; a module per library instance (the units,
        FIFOs and forks, and the AXI-Stream shell), with its layer, source and parameters."""
        design = Design(spec=self.spec, top=self.top, sources=list(self.sources), directory=self.directory,
                        data_files=list(self.memfiles), kind="streaming", core=self.core, ports=dict(self.ports),
                        interval=int(interval), source_info=dict(self.source_info),
                        modules=tuple(Module(inst, self.instances[inst], node, _library_source(self.instances[inst]),
                                             self.parameters[inst])
                                      for node, insts in self.modules.items() for inst in insts))
        design.save()
        return design

    def save_info(self) -> Path:
        path = self.directory / "stream_design.json"
        path.write_text(json.dumps({
            "version": STITCH_VERSION, "core": self.core, "top": self.top,
            "sources": [str(s) for s in self.sources], "memfiles": [str(m) for m in self.memfiles],
            "streams": [s.__dict__ for s in self.streams], "fifos": [f.__dict__ for f in self.fifos],
            "modules": self.modules,
        }, indent=2))
        return path


def _library_source(module: str) -> Path:
    return SHELL_SOURCE if module == SHELL_MODULE else memfiles.hdl_sources(module)[0]


def _ident(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if re.match(r"[A-Za-z_]", s) else f"n_{s}"


# --------------------------------------------------------------------------------------------
# FIFO sizing from the schedule
# --------------------------------------------------------------------------------------------

def capacity(node: Node) -> int:
    """Beats of its *input* stream a unit can hold before it must emit (a safe upper bound)."""
    if isinstance(node, MatVecNode):
        if node.window is not None and not node.window.trivial:
            win = node.window
            wp = node.in_shape[1] + win.pl + win.pr
            line = win.kh * wp + win.kw + 2
            return line + 3 * win.sh * win.sw
        beats = node.k // node.in_elems
        return 2 * beats + 3
    if isinstance(node, PoolNode):
        win = node.window
        return win.kh * (node.in_shape[1] + win.pl + win.pr) + win.kw + 2 + win.sh * win.sw
    return 2 + 2 * len(getattr(node, "requant", ()))  # affine/add/concat/requant: registers


def window_fifo_depth(node: Node) -> int:
    """Depth of the FIFO ahead of a window generator that feeds a folded MVU.

    The generator takes no input while it emits windows at padding positions (the bottom PB
    rows) and, behind a stride, emits a whole output row's windows at the MVU's pace during the
    one input row that completes them. Meanwhile the producer keeps going: this FIFO holds what
    it sends in that time, at most (PB + SH) padded rows, so the producer never waits and the MVU
    never idles (without it rn07 ran at 53,084 instead of 32,768 cycles/frame)."""
    win = node.window
    wp = node.in_shape[1] + win.pl + win.pr
    return (win.pb + win.sh) * wp + win.kw + SKIP_MARGIN


def padding_fifo_depth(node: Node) -> int:
    """Depth of the FIFO ahead of a padded window generator that feeds a fully parallel MVU.

    That generator steps once a cycle (its MVU takes a window a cycle) and takes an input pixel
    at every step but those in the padding. The longest run of padding steps is the bottom rows
    of one frame and the top rows of the next, with the right padding of the last row before them
    and the left padding of the first row after: ``(PT+PB)*Wp + PL + PR`` cycles without input.
    The producer sends at most a pixel a cycle, so this FIFO holds all it sends meanwhile and it
    never waits on the padding (with the 2-deep edge FIFO, a 1x1 conv at 4 cycles/pixel feeding
    an unfolded 5x5 'same' conv on 9x9 ran at 365 instead of 324 cycles/frame)."""
    win = node.window
    wp = node.in_shape[1] + win.pl + win.pr
    return (win.pt + win.pb) * wp + win.pl + win.pr + SKIP_MARGIN


def edge_depth(node: Node) -> int:
    """Depth of the FIFO on an ordinary (not skip) input edge of ``node``."""
    if isinstance(node, MatVecNode) and node.window is not None and not node.window.trivial:
        win = node.window
        if node.cycles_per_vector() > 1:
            return max(EDGE_DEPTH, window_fifo_depth(node))
        if win.pt + win.pb + win.pl + win.pr:
            return max(EDGE_DEPTH, padding_fifo_depth(node))
    return EDGE_DEPTH


def burst_depth(node: Node) -> int:
    """Depth of the FIFO after a fully parallel windowed unit (an unfolded Conv).

    Its generator steps once a cycle and emits a window at the positions on the stride grid
    only: no output at all through the padding rows and columns where no window ends, the rows
    and columns off the grid, the first KH-1 rows of the next frame (:meth:`Window.quiet_steps`),
    and a result a cycle in between. A consumer slower than that (the output shell at one
    element a cycle, a folded MVU) starves through the quiet run unless this FIFO holds what the
    unit ran ahead: at most one result per quiet step (with the 2-deep edge, a 9x9x1 'same' 3x3
    conv emitting 2-element pixels to the output shell ran at 178 instead of 162 cycles/frame)."""
    if isinstance(node, MatVecNode) and node.window is not None and not node.window.trivial \
            and node.cycles_per_vector() == 1:
        return max(EDGE_DEPTH, node.window.quiet_steps(node.in_shape[0], node.in_shape[1]) + SKIP_MARGIN)
    return EDGE_DEPTH


def edge_fifo_depth(graph: HwGraph, src: str, node: Node) -> int:
    """Depth of the ordinary FIFO on the edge ``src -> node``: what the consumer needs ahead of
    it (:func:`edge_depth`) and what the producer needs after it (:func:`burst_depth`)."""
    return max(edge_depth(node), burst_depth(graph[src]))


def _branch(graph: HwGraph, name: str, fanout: dict[str, int]) -> tuple[str, int]:
    """Walk back from ``name`` through single-consumer, single-input nodes to the branch point.

    Returns (branch point, what the branch can absorb, in beats of the branch point's stream:
    a unit after a stride holds beats each worth several of the branch point's)."""
    chain, node = [], graph[name]
    while not isinstance(node, InputNode) and fanout[node.name] == 1 and len(node.inputs) == 1:
        chain.append(node)
        node = graph[node.inputs[0]]
    total = sum((capacity(n) + edge_fifo_depth(graph, n.inputs[0], n)) * max(1, node.out_pixels // max(1, n.in_pixels))
                for n in chain)
    return node.name, total


def fifo_depths(graph: HwGraph) -> dict[tuple[str, str], tuple[int, bool]]:
    """Depth of the FIFO on each edge ``(producer, consumer)``, and whether it buffers a skip;
    ``(output node, OUTPUT)``: a FIFO between the core's last unit and the shell, where that
    unit's output comes in bursts (:func:`burst_depth`)."""
    fanout = {n.name: len(graph.consumers(n.name)) for n in graph}
    depths: dict[tuple[str, str], tuple[int, bool]] = {}
    for node in graph:
        for src in node.inputs:
            depths[(src, node.name)] = (edge_fifo_depth(graph, src, node), False)
        if len(node.inputs) == 2:
            branches = [_branch(graph, s, fanout) for s in node.inputs]
            # capacity of each branch (incl. its own last node) in beats of the branch point
            caps = [cap for _point, cap in branches]
            point_pixels = graph[branches[0][0]].out_pixels
            join_pixels = max(1, node.in_pixels)
            per = max(1, point_pixels // join_pixels)  # branch-point beats per join beat
            for i, s in enumerate(node.inputs):
                other = caps[1 - i]
                need = -(-other // per) + SKIP_MARGIN
                depths[(s, node.name)] = (max(burst_depth(graph[s]), need), True)
    out = graph.out_node
    if burst_depth(out) > EDGE_DEPTH:   # the core's output, to the shell
        depths[(out.name, OUTPUT)] = (burst_depth(out), False)
    return depths


def stream_width(node: Node, in_width: int) -> int:
    """Element width of the stream ``node``'s unit chain emits, as :class:`_Writer` wires it
    (``in_width``: that of its first input stream): the last requantiser's type, or the unit's own
    output width where the chain has no cast (lowering drops a lossless one, so an MVU feeding an
    Add without a cast streams its accumulator)."""
    chain = getattr(node, "requant", ())
    if isinstance(node, ConcatNode):
        return node.out_type.width
    if chain:
        return chain[-1].out.width
    if isinstance(node, (MatVecNode, AffineNode, AddNode)):
        return node.acc_width
    if isinstance(node, PoolNode):
        return in_width if node.mode == "max" else node.acc_width
    if isinstance(node, InputNode):
        return node.out_type.width
    return in_width


def edge_fifos(graph: HwGraph) -> list[Fifo]:
    """The FIFOs :func:`stitch` puts on ``graph``'s edges (depth from :func:`fifo_depths`, width
    = the producer's stream bits), without writing anything: what the folding chooser costs."""
    depths = fifo_depths(graph)
    widths: dict[str, int] = {}
    fifos = []
    for node in graph:
        first = widths[node.inputs[0]] if node.inputs else node.out_type.width
        widths[node.name] = stream_width(node, first)
        for src in node.inputs:
            depth, skip = depths[(src, node.name)]
            bits = widths[src] * graph[src].out_shape[2]
            fifos.append(Fifo(f"fifo{len(fifos)}", depth, bits, f"{src} -> {node.name}", skip))
    out = graph.out_node
    if (out.name, OUTPUT) in depths:
        fifos.append(Fifo(f"fifo{len(fifos)}", depths[(out.name, OUTPUT)][0], widths[out.name] * out.out_shape[2],
                          f"{out.name} -> {OUTPUT}"))
    return fifos


# --------------------------------------------------------------------------------------------
# Verilog text
# --------------------------------------------------------------------------------------------

class _Writer:
    def __init__(self, graph: HwGraph, directory: Path):
        self.graph = graph
        self.dir = directory
        self.mem_dir = directory
        self.lines: list[str] = []
        self.streams: list[Stream] = []
        self.fifos: list[Fifo] = []
        self.memfiles: list[Path] = []
        self.modules: dict[str, list[str]] = {}
        self.instances: dict[str, str] = {}   # instance name -> Verilog module
        self.parameters: dict[str, dict] = {}  # instance name -> its parameters
        self.used: set[str] = {"fd_fifo"}
        self.n = 0

    def wire(self, name: str, elems: int, width: int, signed: bool, what: str) -> Stream:
        s = Stream(name, elems, width, signed, what)
        self.lines.append(f"    wire [{s.bits - 1}:0] {name}_tdata;\n    wire {name}_tvalid, {name}_tready;")
        self.streams.append(s)
        return s

    def inst(self, module: str, label: str, params: dict, ports: dict, node: str) -> str:
        self.n += 1
        iname = f"u{self.n}_{_ident(label)}"
        self.used.add(module)
        self.modules.setdefault(node, []).append(iname)
        self.instances[iname] = module
        self.parameters[iname] = dict(params)

        def fmt(v):
            return f'"{v}"' if isinstance(v, str) else str(int(v))
        plist = ",\n        ".join(f".{k}({fmt(v)})" for k, v in params.items())
        conns = ",\n        ".join(f".{k}({v})" for k, v in ports.items())
        self.lines.append(f"    {module} #(\n        {plist}\n    ) {iname} (\n        {conns}\n    );")
        return iname

    @staticmethod
    def io(s_in: Stream | None, s_out: Stream | None, s_pre="s", m_pre="m") -> dict:
        p = {"clk": "clk", "rst": "rst"}
        if s_in is not None:
            p.update({f"{s_pre}_tdata": f"{s_in.name}_tdata", f"{s_pre}_tvalid": f"{s_in.name}_tvalid",
                      f"{s_pre}_tready": f"{s_in.name}_tready"})
        if s_out is not None:
            p.update({f"{m_pre}_tdata": f"{s_out.name}_tdata", f"{m_pre}_tvalid": f"{s_out.name}_tvalid",
                      f"{m_pre}_tready": f"{s_out.name}_tready"})
        return p

    # -- pieces ------------------------------------------------------------------------------
    def fifo(self, s_in: Stream, depth: int, what: str, skip: bool) -> Stream:
        out = self.wire(f"{s_in.name}_q", s_in.elems, s_in.width, s_in.signed, f"FIFO after {what}")
        k = len(self.fifos)
        cw = max(1, (depth).bit_length())
        self.lines.append(f"    wire [{cw - 1}:0] fifo{k}_count, fifo{k}_max;")
        ports = self.io(s_in, out)
        ports.update({"count": f"fifo{k}_count", "max_count": f"fifo{k}_max"})
        self.inst("fd_fifo", f"fifo_{s_in.name}", {"WIDTH": s_in.bits, "DEPTH": depth}, ports, what)
        self.fifos.append(Fifo(f"fifo{k}", depth, s_in.bits, what, skip))
        return out

    def requants(self, s: Stream, chain: tuple[Requant, ...], label: str, node: str) -> Stream:
        for j, rq in enumerate(chain):
            out = self.wire(f"{label}_rq{j}", s.elems, rq.out.width, rq.out.signed, f"{node} (requant {j})")
            self.inst("fd_requant", f"{label}_rq{j}", {"N": s.elems, "AW": s.width, "ISIGNED": int(s.signed),
                                                       **cast_parameters(rq)}, self.io(s, out), node)
            s = out
        return s

    # -- nodes --------------------------------------------------------------------------------
    def matvec(self, node: MatVecNode, s: Stream) -> Stream:
        lab = _ident(node.name)
        win = node.window
        if win is not None and not win.trivial:
            h, w, c = node.in_shape
            ws = self.wire(f"{lab}_win", win.kh * win.kw * c, s.width, s.signed, f"{node.name} (window)")
            self.inst("fd_swg", f"{lab}_swg", {
                "H": h, "W": w, "C": c, "EW": s.width, "KH": win.kh, "KW": win.kw, "SH": win.sh, "SW": win.sw,
                "PT": win.pt, "PL": win.pl, "PB": win.pb, "PR": win.pr}, self.io(s, ws), node.name)
            s = ws
        self.mem_dir.mkdir(parents=True, exist_ok=True)
        wpath, bpath = memfiles.write_mvu_memfiles(
            node.w, node.bias, node.fold.pe, node.fold.simd, node.weight_width, node.acc_width,
            self.mem_dir / f"{lab}_w.mem", self.mem_dir / f"{lab}_b.mem")
        self.memfiles += [wpath, bpath]
        params = {
            "K": node.k, "N": node.n, "SIMD": node.fold.simd, "PE": node.fold.pe, "IN_ELEMS": node.in_elems,
            "IW": s.width, "ISIGNED": int(s.signed), "WW": node.weight_width, "AW": node.acc_width, "BIAS": 1,
            "WEIGHT_FILE": wpath.name, "BIAS_FILE": bpath.name}
        if node.fold.mult == "lut":     # products in LUTs (set only then: a DSP unit's parameters stay as they were)
            params["MULT"] = 1
        chain = node.requant
        if chain:
            # the first cast runs in the MVU's PE lanes as each output group finishes (RQ = 1):
            # PE casts instead of N, and the output register holds the narrow elements
            params.update(RQ=1, **cast_parameters(chain[0]))
            acc = self.wire(f"{lab}_acc", node.n, chain[0].out.width, chain[0].out.signed, f"{node.name} (MVU)")
        else:
            acc = self.wire(f"{lab}_acc", node.n, node.acc_width, True, f"{node.name} (MVU)")
        self.inst("fd_mvu", f"{lab}_mvu", params, self.io(s, acc), node.name)
        return self.requants(acc, chain[1:], lab, node.name)

    def affine(self, node: AffineNode, s: Stream) -> Stream:
        lab = _ident(node.name)
        self.mem_dir.mkdir(parents=True, exist_ok=True)
        sp = memfiles.write_vector_memfile(node.scale, node.scale_width, self.mem_dir / f"{lab}_scale.mem")
        bp = memfiles.write_vector_memfile(node.bias, node.acc_width, self.mem_dir / f"{lab}_bias.mem")
        self.memfiles += [sp, bp]
        acc = self.wire(f"{lab}_acc", s.elems, node.acc_width, True, f"{node.name} (affine)")
        self.inst("fd_chanaffine", f"{lab}_aff", {
            "N": s.elems, "IW": s.width, "ISIGNED": int(s.signed), "MW": node.scale_width, "AW": node.acc_width,
            "SCALE_FILE": sp.name, "BIAS_FILE": bp.name}, self.io(s, acc), node.name)
        return self.requants(acc, node.requant, lab, node.name)

    def pool(self, node: PoolNode, s: Stream) -> Stream:
        lab = _ident(node.name)
        h, w, c = node.in_shape
        win = node.window
        ow = s.width if node.mode == "max" else node.acc_width
        osigned = s.signed if node.mode == "max" else True
        out = self.wire(f"{lab}_pool", c, ow, osigned, f"{node.name} (pool)")
        self.inst("fd_pool", f"{lab}_pool", {
            "H": h, "W": w, "C": c, "EW": s.width, "ISIGNED": int(s.signed), "KH": win.kh, "KW": win.kw,
            "SH": win.sh, "SW": win.sw, "PT": win.pt, "PL": win.pl, "PB": win.pb, "PR": win.pr,
            "MODE": 0 if node.mode == "max" else 1, "AW": node.acc_width}, self.io(s, out), node.name)
        return self.requants(out, node.requant, lab, node.name)

    def add(self, node: AddNode, a: Stream, b: Stream) -> Stream:
        lab = _ident(node.name)
        out = self.wire(f"{lab}_sum", a.elems, node.acc_width, True, f"{node.name} (add)")
        ports = {"clk": "clk", "rst": "rst"}
        ports.update(self.io(a, None, s_pre="a"))
        ports.update(self.io(b, None, s_pre="b"))
        ports.update(self.io(None, out))
        self.inst("fd_add", f"{lab}_add", {"N": a.elems, "AW_A": a.width, "SHIFT_A": node.shift_a,
                                            "AW_B": b.width, "SHIFT_B": node.shift_b, "AW": node.acc_width,
                                            "SIGNED_A": int(a.signed), "SIGNED_B": int(b.signed)},
                  ports, node.name)
        return self.requants(out, node.requant, lab, node.name)

    def concat(self, node: ConcatNode, a: Stream, b: Stream) -> Stream:
        lab = _ident(node.name)
        res = node.out_type
        ew = res.width
        a = self.requants(a, node.requant_a, f"{lab}_a", node.name)
        b = self.requants(b, node.requant_b, f"{lab}_b", node.name)
        # a lossless (dropped) cast leaves the operand's own width: bring both to the result's
        if (a.width, a.signed) != (ew, res.signed):
            a = self.requants(a, (Requant(0, res),), f"{lab}_ax", node.name)
        if (b.width, b.signed) != (ew, res.signed):
            b = self.requants(b, (Requant(0, res),), f"{lab}_bx", node.name)
        out = self.wire(f"{lab}_cat", a.elems + b.elems, ew, node.out_type.signed, f"{node.name} (concat)")
        ports = {"clk": "clk", "rst": "rst"}
        ports.update(self.io(a, None, s_pre="a"))
        ports.update(self.io(b, None, s_pre="b"))
        ports.update(self.io(None, out))
        self.inst("fd_concat", f"{lab}_cat", {"N_A": a.elems, "N_B": b.elems, "EW": ew}, ports, node.name)
        return out

    def fork(self, s: Stream, n_out: int, node: str) -> list[Stream]:
        """fd_fork: one shared tdata, a valid/ready pair per output."""
        outs = [self.wire(f"{s.name}_f{i}", s.elems, s.width, s.signed, f"fork of {node}") for i in range(n_out)]
        shared = f"{s.name}_fork_tdata"
        self.lines.append(f"    wire [{s.bits - 1}:0] {shared};")
        self.lines += [f"    assign {o.name}_tdata = {shared};" for o in outs]
        cat = lambda suffix: "{" + ", ".join(f"{o.name}_{suffix}" for o in reversed(outs)) + "}"  # noqa: E731
        ports = self.io(s, None)
        ports.update({"m_tdata": shared, "m_tvalid": cat("tvalid"), "m_tready": cat("tready")})
        self.inst("fd_fork", f"{s.name}_fork", {"WIDTH": s.bits, "N_OUT": n_out}, ports, node)
        return outs


def cast_parameters(rq: Requant) -> dict:
    """The Verilog parameters of one cast (fd_cast's, as fd_requant and fd_mvu take them)."""
    return {"SHIFT": rq.shift, "OW": rq.out.width, "OSIGNED": int(rq.out.signed), "ROUND": rq.round_code,
            "SAT": rq.sat_code, "RELU": int(rq.relu)}


def _check_supported(graph: HwGraph) -> None:
    for node in graph:
        if isinstance(node, MatVecNode):
            err = node.fold_error(node.fold)
            if err:
                raise ConfigError(err)


def stitch(graph: HwGraph, directory, *, name: str | None = None) -> StreamDesign:
    """Write ``<name>_stream_core.v`` (and its ``$readmemh`` memory files beside it) into ``directory``."""
    _check_supported(graph)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = _ident(name or graph.name)
    core = f"{name}_stream_core"
    wr = _Writer(graph, directory)
    depths = fifo_depths(graph)
    inp, out_node = graph.input, graph.out_node
    in_t, out_t = inp.out_type, out_node.out_type
    s_in = Stream("s", inp.out_shape[2], in_t.width, in_t.signed, "input")
    produced: dict[str, Stream] = {}
    pending: dict[str, list[Stream]] = {}   # node -> forked copies not yet taken
    fan = {n.name: len(graph.consumers(n.name)) for n in graph}

    def take(src: str, consumer: str) -> Stream:
        if fan[src] > 1:
            s = pending[src].pop(0)
        else:
            s = produced[src]
        depth, skip = depths[(src, consumer)]
        return wr.fifo(s, depth, f"{src} -> {consumer}", skip)

    for node in graph:
        if isinstance(node, InputNode):
            s = s_in
        else:
            ins = [take(i, node.name) for i in node.inputs]
            if isinstance(node, MatVecNode):
                s = wr.matvec(node, ins[0])
            elif isinstance(node, AffineNode):
                s = wr.affine(node, ins[0])
            elif isinstance(node, PoolNode):
                s = wr.pool(node, ins[0])
            elif isinstance(node, AddNode):
                s = wr.add(node, *ins)
            elif isinstance(node, ConcatNode):
                s = wr.concat(node, *ins)
            elif isinstance(node, RequantNode):
                s = wr.requants(ins[0], node.requant, _ident(node.name), node.name)
            else:
                raise ConfigError(f"node {node.name!r} ({node.kind}) has no streaming unit")
        produced[node.name] = s
        if fan[node.name] > 1:
            pending[node.name] = wr.fork(s, fan[node.name], node.name)
    last = produced[out_node.name]
    if (out_node.name, OUTPUT) in depths:
        last = wr.fifo(last, depths[(out_node.name, OUTPUT)][0], f"{out_node.name} -> {OUTPUT}", False)
    if (last.width, last.signed) != (out_t.width, out_t.signed):
        # the unit's last cast was lossless and dropped: widen/narrow to the port's type (exact)
        last = wr.requants(last, (Requant(0, out_t),), f"{_ident(out_node.name)}_port", out_node.name)
    wr.streams.insert(0, s_in)
    ns, nf = len(wr.streams), max(1, len(wr.fifos))
    dbg_valid = ", ".join(f"{s.name}_tvalid" for s in reversed(wr.streams))
    dbg_ready = ", ".join(f"{s.name}_tready" for s in reversed(wr.streams))
    dbg_max = ", ".join(f"{{{{{16 - max(1, f.depth.bit_length())}{{1'b0}}}}, {f.name}_max}}"
                        for f in reversed(wr.fifos)) or "16'd0"
    header = [
        f"// Generated by fpga_dnn.rtl.stream.stitch (v{STITCH_VERSION}) for {graph.name!r}; do not edit.",
        "// Streaming core: one pixel per beat (channel 0 in the LSBs), row-major, frames back to back.",
        *[f"//   {line}" for line in graph.describe()],
        "`timescale 1 ns / 1 ps",
        "/* verilator lint_off DECLFILENAME */",
        f"module {core} (",
        "    input  wire clk,",
        "    input  wire rst,",
        f"    input  wire [{s_in.bits - 1}:0] s_tdata,",
        "    input  wire s_tvalid,",
        "    output wire s_tready,",
        f"    output wire [{last.bits - 1}:0] m_tdata,",
        "    output wire m_tvalid,",
        "    input  wire m_tready,",
        f"    output wire [{ns - 1}:0] dbg_valid,",
        f"    output wire [{ns - 1}:0] dbg_ready,",
        f"    output wire [{16 * nf - 1}:0] dbg_fifo_max",
        ");",
    ]
    body = wr.lines
    footer = [
        f"    assign m_tdata = {last.name}_tdata;",
        f"    assign m_tvalid = {last.name}_tvalid;",
        f"    assign {last.name}_tready = m_tready;",
        f"    assign dbg_valid = {{{dbg_valid}}};",
        f"    assign dbg_ready = {{{dbg_ready}}};",
        f"    assign dbg_fifo_max = {{{dbg_max}}};",
        "endmodule",
        "",
    ]
    path = directory / f"{core}.v"
    text = "\n".join(header + body + footer)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    library = memfiles.hdl_sources(*sorted(wr.used))
    return StreamDesign(graph, directory, core, core, library + [path], wr.memfiles, wr.streams, wr.fifos,
                        modules=wr.modules, instances=wr.instances, parameters=wr.parameters,
                        source_info=source_infos([*((f, stream_library(f)) for f in library),
                                                  (path, SourceInfo((core,)))]))


def stream_spec(graph: HwGraph, *, name: str, stream_bits: int = 64, clock_mhz: float = 100.0,
                output_shape=None, latency: int = 0, extra: dict | None = None):
    """The bundle spec of a streamed design (the runtime's contract, unchanged in layout)."""
    from fpga_dnn.runtime.spec import Spec

    inp, out = graph.input, graph.out_node
    in_shape = tuple(int(d) for d in (graph.input_shape if hasattr(graph, "input_shape") else inp.out_shape))
    info = {"architecture": "streaming",
            "pixel_layout": {"input_pixel_elements": inp.out_shape[2], "input_pixels": inp.out_pixels,
                             "output_pixel_elements": out.out_shape[2], "output_pixels": out.out_pixels,
                             "order": "h, w, c (row-major pixels, channel 0 first): the flat sample order"},
            "softmax": graph.softmax}
    info.update(extra or {})
    return Spec.create(name, in_shape, _fmt(inp.out_type), tuple(output_shape or (out.out_elems,)),
                       _fmt(out.out_type), core_latency=int(latency), stream_bits=stream_bits,
                       clock_mhz=clock_mhz, top_module=f"{name}_axis", extra=info)


def _fmt(t: HlsType):
    return t.format


def write_stream_design(graph: HwGraph, directory, *, name: str, stream_bits: int = 64,
                        clock_mhz: float = 100.0, output_shape=None, input_shape=None) -> StreamDesign:
    """The stitched core inside the AXI-Stream shell, plus ``spec.json``: a complete design."""
    from fpga_dnn.runtime.spec import SPEC_FILENAME

    directory = Path(directory)
    name = _ident(name)
    design = stitch(graph, directory, name=name)
    spec = stream_spec(graph, name=name, stream_bits=stream_bits, clock_mhz=clock_mhz,
                       output_shape=output_shape, latency=latency_estimate(graph))
    if input_shape is not None:
        from fpga_dnn.runtime.spec import PortSpec

        spec = spec.replace(input=PortSpec(tuple(input_shape), spec.input.format, spec.input.stream_bits))
    top = f"{name}_axis"
    inp, out = graph.input, graph.out_node
    params = {
        "S_AXIS_BITS": spec.input.stream_bits, "M_AXIS_BITS": spec.output.stream_bits,
        "IN_ELEMENTS": spec.input.elements, "IN_WIDTH": inp.out_type.width, "IN_C": inp.out_shape[2],
        "OUT_ELEMENTS": spec.output.elements, "OUT_WIDTH": out.out_type.width,
        "OUT_SIGNED": int(out.out_type.signed), "OUT_C": out.out_shape[2],
    }
    plist = ",\n        ".join(f".{k}({v})" for k, v in params.items())
    in_bits = inp.out_shape[2] * inp.out_type.width
    out_bits = out.out_shape[2] * out.out_type.width
    # the AXI-Stream ports every top in the shell has (one declaration for both generators),
    # then the debug ports the emulator reads
    design.ports = {**axis_ports(spec), **debug_ports(design)}
    text = f"""// Generated by fpga_dnn.rtl.stream.stitch (v{STITCH_VERSION}); do not edit.
// {design.core} inside {SHELL_MODULE} ({SHELL_SOURCE.name}): fpga_dnn-lanes-v1 beats <-> pixels.
`timescale 1 ns / 1 ps
module {top} (
{axis_port_declarations(design.ports)}
);
    wire rst;
    wire [{in_bits - 1}:0] core_s_tdata;
    wire core_s_tvalid, core_s_tready;
    wire [{out_bits - 1}:0] core_m_tdata;
    wire core_m_tvalid, core_m_tready;
    {SHELL_MODULE} #(
        {plist}
    ) shell (
        {axis_shell_connections(spec)},
        .rst(rst),
        .core_s_tdata(core_s_tdata), .core_s_tvalid(core_s_tvalid), .core_s_tready(core_s_tready),
        .core_m_tdata(core_m_tdata), .core_m_tvalid(core_m_tvalid), .core_m_tready(core_m_tready)
    );
    {design.core} core (
        .clk(clk), .rst(rst),
        .s_tdata(core_s_tdata), .s_tvalid(core_s_tvalid), .s_tready(core_s_tready),
        .m_tdata(core_m_tdata), .m_tvalid(core_m_tvalid), .m_tready(core_m_tready),
        .dbg_valid(dbg_valid), .dbg_ready(dbg_ready), .dbg_fifo_max(dbg_fifo_max)
    );
endmodule
"""
    top_path = directory / f"{top}.v"
    if not top_path.exists() or top_path.read_text() != text:
        top_path.write_text(text)
    spec = spec.replace(top_module=top)
    spec.save(directory / SPEC_FILENAME)
    design.modules[""] = ["shell"]   # the shell instance of the top (no layer)
    design.instances["shell"] = SHELL_MODULE
    design.parameters["shell"] = params
    design.top = top
    design.spec = spec
    design.sources = [SHELL_SOURCE, *design.sources, top_path]
    design.source_info.update(source_infos([(SHELL_SOURCE, SourceInfo((SHELL_MODULE,))), (top_path, SourceInfo((top,)))]))
    design.save_info()
    return design


def debug_ports(design: StreamDesign) -> dict:
    """The streaming top's debug ports ``{name: (direction, bits)}`` as :func:`write_stream_design`
    declares them (one valid/ready bit per stream, a 16-bit maximum occupancy per FIFO)."""
    ns, nf = len(design.streams), max(1, len(design.fifos))
    return {"dbg_valid": ("output", ns), "dbg_ready": ("output", ns), "dbg_fifo_max": ("output", 16 * nf)}


def latency_estimate(graph: HwGraph) -> int:
    """Cycles from a frame's last input pixel to its first output beat, roughly (no stalls).

    A schedule estimate for the spec (the emulation measures the real figure): each unit's tail
    after its last input, plus two cycles per FIFO and requant."""
    total = 0
    for node in graph:
        if isinstance(node, MatVecNode):
            total += node.cycles_per_vector() + 6
        total += 2 + 1 * len(getattr(node, "requant", ()))
    return total
