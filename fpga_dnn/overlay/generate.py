"""Write the Vivado scripts that turn a verified design into a PYNQ overlay bundle.

One output folder per (design, board, path) holds everything a machine with Vivado needs, with
paths relative to the folder (no path of the generating machine in any script), so it can be
copied there and run as it is::

    <out_dir>/
      run_vivado.sh        the one command: [HLS synthesis ->] Vivado -> checksums
      build_overlay.tcl    Vivado entry point; sources the steps below
      config.tcl           every design- and board-specific value (generated)
      common.tcl, package_ip.tcl (RTL path), block_design.tcl, build_bitstream.tcl,
      export_bundle.tcl    fixed templates from overlays/templates/
      finalize_bundle.py   adds the .bit/.hwh checksums to the bundle's spec.json
      rtl/                 RTL path: the Verilog sources (shell, core, generated top)
      hls/                 HLS path: hls_synth.tcl and a copy of the hls4ml project + fpga_dnn top
      bundle/              the bundle the scripts build: spec.json now; <name>.bit, <name>.hwh
                           and the checksums and real PL clock in spec.json after Vivado

Board facts come from ``overlays/boards/<board>.toml`` (:mod:`fpga_dnn.boards`); the templates
contain no board names. Vivado runs here only when named (``vivado=`` or an environment
variable, see :mod:`fpga_dnn.overlay.vivado`); otherwise :meth:`OverlayScripts.next_step` is
the one line to show the user.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from fpga_dnn.boards import Board, load_board
from fpga_dnn.errors import ConfigError
from fpga_dnn.log import progress
from fpga_dnn.runtime.golden import attach, golden_file
from fpga_dnn.runtime.spec import BOARD_STREAM_BITS, SPEC_FILENAME, Spec

from .bundle import bundle_files, finalize_bundle
from .encryption import TEMPLATES as ENCRYPTION_TEMPLATES, describe_encryption, encryption_values
from .hls import AXIS_HEADER, HLS_SCRIPT, HlsProject, copy_hls_project, hls_spec, read_hls_project
from .tcl import config_tcl
from .vivado import find_vivado, run_overlay

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "overlays" / "templates"
COMMON_TEMPLATES = ("common.tcl", "build_overlay.tcl", "block_design.tcl", "build_bitstream.tcl",
                    "export_bundle.tcl", "finalize_bundle.py")
RTL_TEMPLATES = ("package_ip.tcl",)
PATHS = ("rtl", "hls")
BUNDLE_SUBDIR = "bundle"       # the scripts' bundle folder, inside the overlay folder
PL_CLOCK_FILE = "reports/pl_clock_mhz.txt"   # the PL clock Vivado set (export_bundle.tcl)

IP_VENDOR = "fpga-dnn.org"
IP_VERSION = "1.0"
INTERCONNECT_VLNV = "xilinx.com:ip:smartconnect"
RESET_VLNV = "xilinx.com:ip:proc_sys_reset"
DMA_CELL = "axi_dma_0"   # pynq's ip_dict key for the DMA
ACCEL_CELL = "accel"
BD_NAME = "fpga_dnn_bd"


@dataclass(frozen=True)
class OverlayScripts:
    """What :func:`generate_overlay` wrote, and how to run it."""

    design: str                 # the spec's name: the bundle's base name (<design>.bit/.hwh)
    board: str
    flow: str                   # 'rtl' or 'hls'
    out_dir: Path
    bundle_dir: Path            # where the finished bundle is delivered (the copy when Vivado ran here)
    files: dict                 # role -> path of every generated script
    command: str                # the exact shell command to run on a machine with Vivado
    vivado_version: str         # the Vivado release the scripts target
    ran: bool = False           # True if Vivado ran here and the bundle is complete
    log: Optional[Path] = None

    @property
    def built_dir(self) -> Path:
        """The bundle folder the scripts write (``<out_dir>/bundle``, relative in every script)."""
        return self.out_dir / BUNDLE_SUBDIR

    @property
    def spec_path(self) -> Path:
        return self.built_dir / SPEC_FILENAME

    @property
    def bit_path(self) -> Path:
        return self.built_dir / f"{self.design}.bit"

    @property
    def hwh_path(self) -> Path:
        return self.built_dir / f"{self.design}.hwh"

    def next_step(self) -> str:
        """One line for the user: where the bundle is, or what to run where."""
        if self.ran:
            return f"overlay bundle for {self.design} on {self.board}: {self.bundle_dir}"
        return (f"overlay scripts for {self.design} on {self.board} ({self.flow} path) written to {self.out_dir}; "
                f"no Vivado here: run `{self.command}` on a machine with Vivado {self.vivado_version} (or copy "
                f"the folder there and run ./run_vivado.sh in it); the bundle is then {self.built_dir}")


# ---------------------------------------------------------------------------------------------
# checks shared by both paths
# ---------------------------------------------------------------------------------------------

def _check_stream_widths(spec: Spec) -> None:
    for side, port in (("input", spec.input), ("output", spec.output)):
        if port.stream_bits not in BOARD_STREAM_BITS:
            raise ConfigError(
                f"design {spec.name!r}: {side} stream is {port.stream_bits} bits; the boards' AXI DMA streams are "
                f"{' or '.join(map(str, BOARD_STREAM_BITS))} bits (regenerate the design with stream_bits=64)")


def _check_top_ports(design, spec: Spec) -> None:
    """The top's AXI-Stream ports, as the Design records them, must have the spec's widths (a
    cheap check before Vivado)."""
    from fpga_dnn.rtl.shell import axis_ports

    ports, top = design.ports, design.top
    for port, (d, w) in axis_ports(spec).items():
        if tuple(ports.get(port, ())) != (d, w):
            got = "missing" if port not in ports else f"{ports[port][0]} [{ports[port][1]} bits]"
            raise ConfigError(f"top {top}: port {port} should be {d} [{w} bits] (spec {spec.name!r}), is {got}")


def _hash_files(paths: Sequence[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(p.name.encode() + b"\0" + Path(p).read_bytes() + b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------------------------

def _mhz(x: float) -> str:
    return f"{x:g}"


def _board_config(board: Board, spec: Spec) -> dict:
    """config.tcl entries that come from the board file and the stream widths."""
    ps, dma = board.ps, board.dma
    ps_config = dict(ps.config)
    ps_config[ps.clock_freq_property] = _mhz(board.pl_clock_mhz)  # after the source (ps_clock_config)
    in_bits, out_bits = spec.input.stream_bits, spec.output.stream_bits
    dma_config = {
        "c_include_sg": 0, "c_sg_include_stscntrl_strm": 0, "c_micro_dma": 0,
        "c_sg_length_width": dma.sg_length_width, "c_addr_width": dma.addr_width,
        "c_include_mm2s": 1, "c_m_axi_mm2s_data_width": max(32, in_bits),
        "c_m_axis_mm2s_tdata_width": in_bits, "c_mm2s_burst_size": dma.burst_size,
        "c_include_s2mm": 1, "c_m_axi_s2mm_data_width": max(32, out_bits),
        "c_s_axis_s2mm_tdata_width": out_bits, "c_s2mm_burst_size": dma.burst_size,
    }
    return {
        "board": board.name, "part": board.part, "board_part": board.board_part,
        "board_files": board.board_files, "vivado_version": board.vivado_version,
        "pynq_image": board.pynq_image, "clock_mhz": _mhz(board.pl_clock_mhz),
        "ps_vlnv": ps.vlnv, "ps_rule": ps.automation_rule, "ps_rule_config": dict(ps.automation_config),
        "ps_clock_config": dict(ps.clock_config), "ps_config": ps_config,
        "ps_clock_actual": ps.clock_actual_property,
        "ps_master": ps.master_port, "ps_master_clk": ps.master_clock_pin,
        "ps_hp": board.hp_port, "ps_hp_clk": ps.hp_clock_pin, "ps_clk": ps.clock_pin,
        "ps_resetn": ps.reset_pin,
        "dma_vlnv": dma.vlnv, "dma_pynq_vlnv": dma.pynq_vlnv, "dma_config": dma_config,
        "in_bits": in_bits, "out_bits": out_bits,
        "interconnect_vlnv": INTERCONNECT_VLNV, "reset_vlnv": RESET_VLNV,
    }


def _bundle_spec(spec: Spec, board: Board, flow: str, accel_vlnv: str, inputs_sha256: str) -> Spec:
    """The spec copied into the bundle: the board's PL clock and what the runtime needs to find
    and drive the hardware, under ``extra['overlay']``. ``clock_mhz`` is the requested clock
    until Vivado has run; finalize_bundle then records the clock Vivado really set."""
    overlay = {
        "board": board.name, "flow": flow, "part": board.part, "pynq_image": board.pynq_image,
        "pynq_image_source": board.pynq_image_source, "vivado": board.vivado_version,
        "clock_mhz": board.pl_clock_mhz, "clock_mhz_requested": board.pl_clock_mhz,
        "dma": DMA_CELL, "dma_vlnv": board.dma.pynq_vlnv,
        "dma_max_transfer_bytes": board.dma.max_transfer_bytes,
        "accelerator": ACCEL_CELL, "accelerator_ip": accel_vlnv,
        "bitstream": f"{spec.name}.bit", "hwh": f"{spec.name}.hwh",
        "inputs_sha256": inputs_sha256,
    }
    if spec.clock_mhz != board.pl_clock_mhz:
        progress(f"overlay: design {spec.name} was made for {spec.clock_mhz:g} MHz; "
                 f"{board.name}'s PL clock is {board.pl_clock_mhz:g} MHz (the bundle records the board's)")
    extra = {**spec.extra, "board": board.name, "overlay": overlay}  # extra.board: checked by fpga-dnn bundle
    return spec.replace(clock_mhz=board.pl_clock_mhz, checksums={}, extra=extra)


def _as_generated(spec: Spec) -> Spec:
    """``spec`` without what the Vivado run adds (checksums but the golden vectors', the real PL clock)."""
    overlay = dict(spec.extra.get("overlay") or {})
    requested = overlay.get("clock_mhz_requested", spec.clock_mhz)
    if overlay:
        overlay["clock_mhz"] = requested
    extra = {**spec.extra, "overlay": overlay} if overlay else spec.extra
    golden = golden_file(spec)
    return spec.replace(checksums={k: v for k, v in spec.checksums.items() if k == golden}, clock_mhz=requested,
                        extra=extra)


def _drop_unless_build_of(bundle_dir: Path, spec: Spec) -> bool:
    """True if ``bundle_dir`` holds a spec generated from exactly these inputs (built or not: kept).
    If it holds another one, its files are removed, so a stale .bit/.hwh cannot pass for this design."""
    old_path = bundle_dir / SPEC_FILENAME
    if not old_path.is_file():
        return False
    try:
        old = Spec.load(old_path)
    except ConfigError:
        old = None
    if old is not None and _as_generated(old) == spec:
        return True
    for name in {SPEC_FILENAME, *bundle_files(spec), *(bundle_files(old) if old else [])}:
        (bundle_dir / name).unlink(missing_ok=True)
    return False


def _write_bundle_spec(bundle_dir: Path, spec: Spec) -> None:
    """Write the bundle's spec. If the bundle already holds a build of exactly these inputs, keep it
    (and its checksums and clock); otherwise remove stale .bit/.hwh so they cannot pass for the new design."""
    bundle_dir.mkdir(parents=True, exist_ok=True)
    if not _drop_unless_build_of(bundle_dir, spec):
        spec.save(bundle_dir / SPEC_FILENAME)


def _deliver(built: Path, dest: Path, spec: Spec) -> None:
    """Copy the finished bundle (spec.json, .bit, .hwh) from the overlay folder to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    golden = golden_file(spec)
    for name in (SPEC_FILENAME, *bundle_files(spec), *([golden] if golden else [])):
        shutil.copy2(built / name, dest / name)
    Spec.load(dest / SPEC_FILENAME).verify_checksums(dest)


def _rel(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when inside it (keeps the folder relocatable), else absolute."""
    path, base = path.resolve(), base.resolve()
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _install(src: Path, dest: Path, executable: bool = False, subs: Optional[dict] = None) -> Path:
    text = src.read_text()
    for key, value in (subs or {}).items():
        text = text.replace(f"@@{key}@@", str(value))
    if "@@" in text and subs is not None:
        raise RuntimeError(f"unreplaced placeholder in {src}")
    dest.write_text(text)
    if executable:
        dest.chmod(0o755)
    return dest


def generate_overlay(design, board: Union[str, Board], out_dir, path: str = "rtl", *,
                     bundle_dir=None, spec: Optional[Spec] = None, stream_bits: int = 64,
                     vivado=None, jobs: int = 2, tclargs: Sequence[str] = (),
                     encryption=None, golden=None) -> OverlayScripts:
    """Write the overlay scripts for ``design`` on ``board`` into ``out_dir``; run Vivado if named.

    ``path='rtl'``: ``design`` is a :class:`~fpga_dnn.rtl.design.Design` or its folder (Verilog sources,
    top, spec). ``path='hls'``: ``design`` is the convert step's project folder (with its
    ``fpga_dnn_interface.json``), an :class:`~fpga_dnn.hw.interface.HlsInterface` or a written
    hls4ml ``ModelGraph``; ``spec``
    optionally supplies name, shapes and stream widths (see :func:`~fpga_dnn.overlay.hls.hls_spec`),
    else both streams are ``stream_bits`` wide. ``bundle_dir``: where the finished bundle
    (``<name>.bit``, ``<name>.hwh``, ``spec.json``) is delivered when Vivado runs here (default
    ``out_dir/bundle``); the scripts always build it in ``out_dir/bundle``, so the folder can be
    copied to another machine and run there. ``vivado``: the Vivado binary or install
    folder to run now; None looks at ``FPGA_DNN_VIVADO``/``XILINX_VIVADO``; False never runs.
    ``jobs``: parallel Vivado jobs. ``tclargs``: passed to ``build_overlay.tcl`` (e.g. ``--bd-only``).
    ``encryption``: a :class:`~fpga_dnn.overlay.encryption.BitstreamEncryption` to encrypt the
    bitstream (the scripts then hold the key files' paths, never the keys); None: plaintext.
    ``golden``: ``(GoldenVectors, info)`` for the bundle's self-test (:mod:`fpga_dnn.runtime.golden`),
    written into the bundle now and covered by the spec's checksums.
    """
    if path not in PATHS:
        raise ConfigError(f"unknown overlay path {path!r}; known: {', '.join(PATHS)}")
    board = load_board(board) if isinstance(board, str) else board
    if board.ps is None or board.dma is None or board.path is None:
        raise ConfigError(f"board {board.name!r} has no [ps]/[dma] data: load it with fpga_dnn.boards.load_board")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    built_dir = out_dir / BUNDLE_SUBDIR
    # The scripts always build the bundle inside the folder (a relative path), so the folder can
    # be copied to another machine; a bundle_dir elsewhere gets a copy once Vivado has run here.
    bundle_dir = Path(bundle_dir) if bundle_dir is not None else built_dir
    files: dict[str, Path] = {}

    if path == "rtl":
        spec, values, inputs = _prepare_rtl(design, board, out_dir, files)
    else:
        spec, values, inputs = _prepare_hls(design, board, out_dir, files, spec, stream_bits)
    _check_stream_widths(spec)

    project_name = re.sub(r"[^A-Za-z0-9_]", "_", f"{spec.name}_{board.name}")
    values = {
        "design": spec.name, "flow": path, **_board_config(board, spec), **values,
        "project_name": project_name, "project_dir": "vivado", "bd_name": BD_NAME,
        "bundle_dir": BUNDLE_SUBDIR, "reports_dir": "reports", "jobs": int(jobs),
        "ip_vendor": IP_VENDOR, "ip_version": IP_VERSION,
    }
    enc_values = encryption_values(encryption, board, out_dir, bundle_dir) if encryption is not None else {}
    values.update(enc_values)
    header = (f"Generated by fpga_dnn.overlay for design {spec.name!r} on board {board.name!r} ({path} path);\n"
              f"regenerate rather than edit. Board data: overlays/boards/{board.path.name}. Targets Vivado "
              f"{board.vivado_version} (PYNQ {board.pynq_image} image).\nEvery path below is relative to this folder.")
    files["config"] = out_dir / "config.tcl"
    files["config"].write_text(config_tcl(values, header))
    enc_templates = ENCRYPTION_TEMPLATES[enc_values["encrypt_family"]] if enc_values else ()
    for name in COMMON_TEMPLATES + (RTL_TEMPLATES if path == "rtl" else ()) + enc_templates:
        files[Path(name).stem] = _install(TEMPLATES_DIR / name, out_dir / name)
    subs = {"DESIGN": spec.name, "BOARD": board.name, "FLOW": path, "VIVADO_VERSION": board.vivado_version,
            "PYNQ_IMAGE": board.pynq_image, "BUNDLE_DIR": values["bundle_dir"]}
    files["run_vivado"] = _install(TEMPLATES_DIR / "run_vivado.sh", out_dir / "run_vivado.sh", True, subs)

    template_files = [TEMPLATES_DIR / n for n in (*COMMON_TEMPLATES, *RTL_TEMPLATES, *enc_templates, "run_vivado.sh")]
    digest = _hash_files([*inputs, *template_files, board.path], config_tcl(values, ""))
    bundle_spec = _bundle_spec(spec, board, path, values["accel_vlnv"], digest)
    if enc_values:   # scheme and key source only: no key, no key path in the bundle
        bundle_spec = bundle_spec.replace(extra={**bundle_spec.extra, "overlay": {
            **bundle_spec.extra["overlay"], "encryption": describe_encryption(enc_values)}})
    if golden is not None:
        built_dir.mkdir(parents=True, exist_ok=True)
        bundle_spec = attach(built_dir, bundle_spec, *golden)
    _write_bundle_spec(built_dir, bundle_spec)
    if bundle_dir.resolve() != built_dir.resolve() and bundle_dir.exists():
        _drop_unless_build_of(bundle_dir, bundle_spec)   # drops a copy of another design's build

    command = f"bash {out_dir.resolve() / 'run_vivado.sh'}" + "".join(f" {a}" for a in tclargs)
    scripts = OverlayScripts(spec.name, board.name, path, out_dir, bundle_dir, files, command, board.vivado_version)
    progress(f"overlay: {path} scripts for {spec.name} on {board.name} in {out_dir}")

    exe = find_vivado(vivado)
    if exe is None:
        return scripts
    log = run_overlay(out_dir, exe, tclargs)
    if "--bd-only" in tclargs:
        return dataclasses.replace(scripts, log=log)
    final = finalize_bundle(built_dir, pl_clock_file=out_dir / PL_CLOCK_FILE)
    if bundle_dir.resolve() != built_dir.resolve():
        _deliver(built_dir, bundle_dir, final)
    return dataclasses.replace(scripts, ran=True, log=log)


def _prepare_rtl(design, board: Board, out_dir: Path, files: dict):
    """Copy the Verilog into out_dir/rtl and return (spec, config entries, input files)."""
    from fpga_dnn.rtl.design import Design

    if isinstance(design, (str, Path)):
        design = Design.load(design)
    if not isinstance(design, Design):
        raise ConfigError("the RTL overlay path needs a Design (fpga_dnn.rtl.design.Design, or the rtl step's folder "
                          f"with design.json), got {type(design).__name__}")
    spec, top = design.spec, design.top
    sources = [Path(s) for s in design.sources]
    for s in sources:
        if not s.is_file():
            raise ConfigError(f"design source {s} does not exist")
    _check_top_ports(design, spec)
    rtl = out_dir / "rtl"
    if rtl.exists():
        shutil.rmtree(rtl)
    rtl.mkdir()
    rel = []
    for i, s in enumerate(sources):
        dest = rtl / s.name
        if dest.exists():  # two sources with one file name
            dest = rtl / f"{i}_{s.name}"
        shutil.copy2(s, dest)
        rel.append(_rel(dest, out_dir))
    # $readmemh tables (da4ml lookup tables): same folder, same names, so synthesis finds them
    data_files = [Path(f) for f in getattr(design, "data_files", ())]
    data_rel = []
    for f in data_files:
        if not f.is_file():
            raise ConfigError(f"design data file {f} does not exist")
        if (rtl / f.name).exists():
            raise ConfigError(f"design data file {f.name} clashes with another source of the same name")
        shutil.copy2(f, rtl / f.name)
        data_rel.append(_rel(rtl / f.name, out_dir))
    files["package_ip"] = out_dir / "package_ip.tcl"
    values = {
        "rtl_sources": rel, "rtl_data_files": data_rel, "top": top, "ip_library": "user", "ip_repo": "ip_repo", "ip_project_dir": "ip_pkg",
        "accel_vlnv": f"{IP_VENDOR}:user:{top}", "accel_in": "s_axis", "accel_out": "m_axis",
        "accel_clk": "clk", "accel_resetn": "aresetn",
    }
    return spec.replace(top_module=top), values, [*sources, *data_files]


def _prepare_hls(design, board: Board, out_dir: Path, files: dict, spec: Optional[Spec], stream_bits: int):
    """Copy the hls4ml project (+ fpga_dnn top) into out_dir/hls and return (spec, config entries, inputs)."""
    project: HlsProject = read_hls_project(design)
    if project.part and project.part != board.part:
        progress(f"overlay: hls4ml project {project.name} was configured for part {project.part}; HLS synthesis "
                 f"here targets {board.name}'s {board.part}")
    spec = hls_spec(project, spec, stream_bits, clock_mhz=board.pl_clock_mhz)
    _check_stream_widths(spec)
    hls_dir = out_dir / "hls"
    hls_dir.mkdir(exist_ok=True)
    proj_dir = hls_dir / project.name
    sources = copy_hls_project(project, spec, proj_dir)
    files["hls_synth"] = _install(HLS_SCRIPT, hls_dir / HLS_SCRIPT.name)
    files["hls_top"] = proj_dir / sources[-1]
    hls_prj = f"{project.name}_fpga_dnn_prj"
    values = {
        "hls_dir": _rel(proj_dir, out_dir), "hls_prj": hls_prj, "hls_top": project.top,
        "hls_sources": sources, "hls_clock_period": f"{1000.0 / board.pl_clock_mhz:g}",
        "hls_clock_uncertainty": project.clock_uncertainty, "hls_max_size": project.max_size,
        "ip_library": "hls", "ip_repo": f"{_rel(proj_dir, out_dir)}/{hls_prj}/solution1/impl/ip",
        "accel_vlnv": f"{IP_VENDOR}:hls:{project.top}", "accel_in": "s_axis", "accel_out": "m_axis",
        "accel_clk": "ap_clk", "accel_resetn": "ap_rst_n",
    }
    inputs = sorted(p for p in (project.directory / "firmware").rglob("*") if p.is_file())
    return spec, values, [*inputs, files["hls_top"], HLS_SCRIPT, AXIS_HEADER]


def describe(scripts: OverlayScripts) -> str:
    """A JSON summary of the generated overlay (for reports and manifests)."""
    return json.dumps({
        "design": scripts.design, "board": scripts.board, "flow": scripts.flow,
        "out_dir": str(scripts.out_dir), "bundle_dir": str(scripts.bundle_dir), "command": scripts.command,
        "vivado_version": scripts.vivado_version, "ran": scripts.ran,
        "files": {k: str(v) for k, v in scripts.files.items()},
    }, indent=2)
