"""The code layout's boundaries (issue 15, "the house"), checked on the source and in behaviour.

* ``fpga_dnn/rtl`` and ``fpga_dnn/hw`` (generation) import nothing from ``fpga_dnn/simulate``;
* ``fpga_dnn/hw/from_hls4ml.py`` is the hardware side's one reader of hls4ml: no other module of
  rtl, hw, simulate, overlay or estimate imports hls4ml or calls hls4ml's layer API;
* the runtime imports nothing of the toolchain but the numpy-only fixed-point module;
* one fixed-point type class: the rtl's ``HlsType`` and the spec's format are ``FixedFormat``;
* estimate and overlay take what they need from the ``Design`` (and the HLS path from the
  ``HlsInterface``) and read no generated Verilog, C++ or tcl: with reading those files made to
  fail, the overlay scripts are written and the split synthesis is planned all the same; every
  regular expression in estimate and overlay is on a list that says what it reads (tool reports,
  names we write); the library files' declarations (``rtl/library.py``) match the files.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

import fpga_dnn

PKG = Path(fpga_dnn.__file__).parent


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved)."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def _offenders(folder: str, forbidden: str) -> list[str]:
    return [f"{p.relative_to(PKG.parent)}: {m}" for p in sorted((PKG / folder).rglob("*.py"))
            for m in sorted(_imports(p)) if m == forbidden or m.startswith(forbidden + ".")]


@pytest.mark.parametrize("folder", ["rtl", "hw"])
def test_generation_imports_nothing_from_simulate(folder):
    assert _offenders(folder, "fpga_dnn.simulate") == []


#: the one module of the hardware side that reads hls4ml's objects
HLS4ML_READER = "fpga_dnn/hw/from_hls4ml.py"
#: hls4ml's ModelGraph / Layer API: what a module reading hls4ml objects calls
HLS4ML_LAYER_API = ("get_attr", "get_input_variable", "get_output_variable", "get_input_variables",
                    "get_output_variables", "get_layers", "get_weights", "get_config_value", "mask_kbi")


def _hardware_side() -> list[Path]:
    files = [p for d in ("rtl", "hw", "simulate", "overlay") for p in sorted((PKG / d).rglob("*.py"))]
    return files + [PKG / "estimate.py"]


def _hls4ml_readers(files) -> list[str]:
    """Modules (but the reader) that import hls4ml or use hls4ml's layer API, with what they use."""
    found = []
    for p in files:
        where = str(p.relative_to(PKG.parent))
        if where == HLS4ML_READER:
            continue
        found += [f"{where}: import {m}" for m in sorted(_imports(p)) if m == "hls4ml" or m.startswith("hls4ml.")]
        found += [f"{where}:{n.lineno}: .{n.attr}" for n in ast.walk(ast.parse(p.read_text()))
                  if isinstance(n, ast.Attribute) and n.attr in HLS4ML_LAYER_API]
    return found


def test_from_hls4ml_is_the_only_reader_of_hls4ml_on_the_hardware_side():
    assert (PKG.parent / HLS4ML_READER).is_file()
    assert _hls4ml_readers(_hardware_side()) == []


def test_only_reader_check_can_fail(tmp_path):
    probe = PKG / "rtl" / "_reader_probe.py"
    probe.write_text("def f(layer):\n    from hls4ml.model.layers import Conv2D\n    return layer.get_attr('x')\n")
    try:
        assert _hls4ml_readers([probe]) == ["fpga_dnn/rtl/_reader_probe.py: import hls4ml.model.layers",
                                            "fpga_dnn/rtl/_reader_probe.py: import hls4ml.model.layers.Conv2D",
                                            "fpga_dnn/rtl/_reader_probe.py:3: .get_attr"]
    finally:
        probe.unlink()


def test_import_walker_sees_relative_and_lazy_imports(tmp_path):
    # the check above can fail: a relative import inside a function is found
    probe = PKG / "rtl" / "_layout_probe.py"
    probe.write_text("def f():\n    from ..simulate.verilator import cached_build\n")
    try:
        assert _offenders("rtl", "fpga_dnn.simulate") == [
            "fpga_dnn/rtl/_layout_probe.py: fpga_dnn.simulate.verilator",
            "fpga_dnn/rtl/_layout_probe.py: fpga_dnn.simulate.verilator.cached_build"]
    finally:
        probe.unlink()


def test_runtime_imports_only_the_numpy_only_toolchain_modules():
    allowed = ("fpga_dnn.runtime", "fpga_dnn.fixedpoint", "fpga_dnn.errors")
    ours = {m for p in (PKG / "runtime").rglob("*.py") for m in _imports(p) if m.startswith("fpga_dnn")}
    assert "fpga_dnn.fixedpoint.FixedFormat" in ours  # the runtime's format class is the toolchain's
    assert sorted(m for m in ours if not any(m == a or m.startswith(a + ".") for a in allowed)) == []


def test_one_fixed_point_type_class():
    from fpga_dnn.fixedpoint import FixedFormat
    from fpga_dnn.rtl.precision import HlsType
    from fpga_dnn.runtime.spec import parse_format

    assert HlsType is FixedFormat
    t = FixedFormat(True, 8, 3, "RND_CONV", "SAT")
    assert (t.k, t.i, t.f, t.frac) == (1, 2, 5, 5) and str(t) == "fixed<8,3,RND_CONV,SAT>"
    assert t.format == FixedFormat(True, 8, 3) and str(t.format) == "fixed<8,3>"
    assert FixedFormat.parse(str(t)) == t and FixedFormat.parse("ap_uint<4>") == FixedFormat(False, 4, 4)
    assert parse_format("ap_fixed<8,3,RND,SAT>") == FixedFormat(True, 8, 3)  # the spec keeps formats only


def _no_verilog_reads(monkeypatch):
    real = Path.read_text

    def read_text(self, *a, **k):
        if self.suffix in (".v", ".sv", ".cpp", ".h"):
            raise AssertionError(f"read generated source {self}")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", read_text)


def test_overlay_reads_the_design_not_the_verilog(tmp_path, monkeypatch):
    from fpga_dnn.fixedpoint import FixedFormat
    from fpga_dnn.overlay import generate_overlay
    from fpga_dnn.rtl.design import Design
    from fpga_dnn.rtl.shell import dummy_core_spec, write_dummy_design

    spec = dummy_core_spec("dummy", (6,), FixedFormat(True, 8, 3), (5,), FixedFormat(True, 12, 4), 2, stream_bits=64)
    design = write_dummy_design(spec, tmp_path / "d")
    assert Design.load(tmp_path / "d") == design and design.interval == 2 and design.latency == 4
    _no_verilog_reads(monkeypatch)
    scripts = generate_overlay(tmp_path / "d", "pynq-z2", tmp_path / "o")
    assert (scripts.out_dir / "rtl" / f"{design.top}.v").is_file()
    wrong = dataclasses.replace(design, ports={**design.ports, "m_axis_tdata": ("output", 32)})
    with pytest.raises(fpga_dnn.errors.ConfigError, match="m_axis_tdata should be output"):
        generate_overlay(wrong, "pynq-z2", tmp_path / "o2")


def test_split_synthesis_is_planned_from_the_design(tmp_path, monkeypatch):
    from fpga_dnn import estimate
    from fpga_dnn.rtl.design import Pipeline, Stage

    files = {n: tmp_path / f"{n}.v" for n in ("top", "core", "s0", "s1", "s2", "lib")}
    for f in files.values():
        f.write_text("// not read\n" * 10)
    pipe = Pipeline("core", files["core"], tuple(Stage(f"s{k}", files[f"s{k}"], 8 - k, 7 - k) for k in range(3)))
    _no_verilog_reads(monkeypatch)
    pieces = estimate._split([files["lib"], files["s0"], files["s1"], files["s2"], files["core"], files["top"]],
                             "top", pipe)
    assert [p.top for p in pieces][-1] == "top" and len(pieces) == 3
    assert pieces[-1].blackboxes == ("core",) and files["core"].name in pieces[-1].lib
    assert estimate._split(list(files.values()), "top", None) is None  # no pipeline recorded: flat


# ---------------------------------------------------------------------------------------------
# No regular expression over generated text in estimate or overlay
# ---------------------------------------------------------------------------------------------

#: Every regular expression estimate and overlay use, as (module, function, pattern), and what it
#: reads: a tool's own report, or a name fpga_dnn checks or writes - never the Verilog, C++ or tcl
#: that we or hls4ml generated (the Design and the HlsInterface carry those facts). A new pattern
#: must be added here with its reason, so a regex over generated text cannot slip in unseen.
ALLOWED_REGEXES = {
    ("fpga_dnn/estimate.py", "_read_stat", r"\(length=(\d+)\)"): "yosys' ltp report (ltp.txt)",
    ("fpga_dnn/estimate.py", "job", r"(\d+) objects"): "yosys' select -count report (family_cells.txt)",
    ("fpga_dnn/overlay/generate.py", "generate_overlay", r"[^A-Za-z0-9_]"): "the Vivado project name we write",
    ("fpga_dnn/overlay/tcl.py", "<module>", r"[A-Za-z0-9_.:/+\-=,@%]+"): "quoting a value we write into tcl",
    ("fpga_dnn/overlay/tcl.py", "config_tcl", r"[a-z_][a-z0-9_]*"): "a config.tcl key we write",
    ("fpga_dnn/overlay/vivado.py", "first_error", r"^ERROR:.*$"): "Vivado's log",
    ("fpga_dnn/overlay/vivado.py", "run_overlay", r"see (logs/[\w.]+)"): "run_vivado.sh's log",
}
_RE_FUNCTIONS = {"compile", "search", "match", "fullmatch", "findall", "finditer", "sub", "subn", "split"}


def _regex_uses(files) -> list[tuple[str, str, str]]:
    """(module, innermost function, pattern) of every ``re`` call in ``files``; a pattern that is
    not a literal is ``<not a literal>``, an import of ``re``'s functions by name ``<from re import>``."""
    found = []

    def visit(node, where: str, function: str):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.ImportFrom) and child.module == "re":
                found.append((where, inner, "<from re import>"))
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                    and isinstance(child.func.value, ast.Name) and child.func.value.id == "re"
                    and child.func.attr in _RE_FUNCTIONS):
                arg = child.args[0] if child.args else None
                pattern = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else "<not a literal>"
                found.append((where, inner, pattern))
            visit(child, where, inner)

    for p in files:
        visit(ast.parse(p.read_text()), str(p.relative_to(PKG.parent)), "<module>")
    return found


def _estimate_and_overlay() -> list[Path]:
    return [PKG / "estimate.py", *sorted((PKG / "overlay").rglob("*.py"))]


def test_estimate_and_overlay_use_no_regex_over_generated_text():
    uses = _regex_uses(_estimate_and_overlay())
    assert sorted(u for u in uses if u not in ALLOWED_REGEXES) == []
    assert sorted(set(ALLOWED_REGEXES) - set(uses)) == []  # no stale entry either


def test_regex_check_can_fail():
    probe = PKG / "overlay" / "_regex_probe.py"
    probe.write_text("import re\nfrom re import findall\n\n"
                     "def modules(path):\n    return re.findall(r'^\\s*module\\s+(\\w+)', path.read_text(), re.M)\n\n"
                     "def typedefs(text, name):\n    return re.search(rf'typedef\\s+(.+?)\\s+{name}\\s*;', text)\n")
    try:
        assert _regex_uses([probe]) == [("fpga_dnn/overlay/_regex_probe.py", "<module>", "<from re import>"),
                                        ("fpga_dnn/overlay/_regex_probe.py", "modules", r"^\s*module\s+(\w+)"),
                                        ("fpga_dnn/overlay/_regex_probe.py", "typedefs", "<not a literal>")]
        assert not any(u in ALLOWED_REGEXES for u in _regex_uses([probe]))
    finally:
        probe.unlink()


def test_the_hls_overlay_reads_the_interface_not_the_project(tmp_path, monkeypatch):
    """The HLS path takes the converted model's interface record; of hls4ml's project it only
    copies firmware/ (the C++ HLS compiles), reading none of its text."""
    from fpga_dnn.fixedpoint import FixedFormat
    from fpga_dnn.hw.interface import INTERFACE_FILE, HlsInterface, IoPort
    from fpga_dnn.overlay import generate_overlay

    proj = tmp_path / "hls"
    (proj / "firmware").mkdir(parents=True)
    for name in ("net.cpp", "net.h", "defines.h"):
        (proj / "firmware" / name).write_text("// not read\n")
    (proj / "project.tcl").write_text("# not read\n")
    fmt_in, fmt_out = FixedFormat(True, 8, 3), FixedFormat(False, 6, 1, "RND_CONV", "SAT")
    HlsInterface("net", "io_stream", "Vivado", "xc7z020clg400-1", 10.0, "27%", 2048,
                 (IoPort("inp", "input_t", (4, 4, 2), fmt_in, 2),), (IoPort("out", "result_t", (10,), fmt_out, 10),),
                 namespace="nn").save(proj)
    real = Path.read_text

    def read_text(self, *a, **k):
        if proj in Path(self).parents and Path(self).name != INTERFACE_FILE:
            raise AssertionError(f"read hls4ml's generated {self}")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", read_text)
    scripts = generate_overlay(proj, "pynq-z2", tmp_path / "o", path="hls")
    top = scripts.files["hls_top"].read_text()
    assert "using namespace nn;" in top and "hls::stream<input_t> in_stream" in top
    assert "for (int w = 0; w < 16; w++)" in top and "result_t::value_type y[10];" in top
    config = (scripts.out_dir / "config.tcl").read_text()
    assert re.search(r"^set fd\(hls_clock_uncertainty\) +27%$", config, re.M), config
    assert re.search(r"^set fd\(hls_max_size\) +2048$", config, re.M), config
    with pytest.raises(fpga_dnn.errors.ConfigError, match=r"has no fpga_dnn_interface.json: not a project written by "
                                                          r"the convert step"):
        generate_overlay(tmp_path / "o", "pynq-z2", tmp_path / "o2", path="hls")


def test_estimate_takes_placeholders_and_black_boxes_from_the_design(tmp_path, monkeypatch):
    """The memory files a library module names by default and the modules of a black-box file
    come from the recorded SourceInfo, with reading .v files made to fail."""
    from fpga_dnn import estimate
    from fpga_dnn.rtl.design import SourceInfo, source_infos

    lut, core = tmp_path / "lookup_table.v", tmp_path / "core.v"
    for f in (lut, core):
        f.write_text('// not read: parameter MEM_FILE = "other.mem"\n')
    info = source_infos([(lut, SourceInfo(("lookup_table",), ("whatever.mem",))), (core, SourceInfo(("core",)))])
    _no_verilog_reads(monkeypatch)
    assert estimate._memfile_defaults([lut, core], info) == ("whatever.mem",)
    assert estimate._memfile_defaults([lut], None) == ()  # nothing recorded: nothing guessed from the text
    work = tmp_path / "w"
    estimate._prepare(work, [lut, core], [], placeholders=("whatever.mem",))
    assert (work / "whatever.mem").read_text() == "" and not (work / "other.mem").exists()
    with pytest.raises(fpga_dnn.errors.ToolError, match=r"no module names recorded for black-box file\(s\) "
                                                        r"lookup_table.v"):
        estimate.synthesize_module([core], "core", blackbox_files=[lut], cache_dir=tmp_path / "c")


def test_library_declarations_match_the_library_files():
    """What rtl/library.py declares of the Verilog library files (the generators record it in every
    Design) is what the files hold: checked here, the one place that reads them."""
    import re

    import da4ml.codegen

    from fpga_dnn.rtl import library, shell
    from fpga_dnn.rtl.design import SourceInfo
    from fpga_dnn.rtl.stream import stitch
    from fpga_dnn.rtl.stream.memfiles import HDL_DIR

    def held(path: Path) -> SourceInfo:
        text = path.read_text()
        own = tuple(re.findall(r"^\s*module\s+(\w+)", text, re.M))
        used = re.findall(r"^\s*(fd_\w+)\s*#", text, re.M)     # instances of library modules
        return SourceInfo(own, tuple(re.findall(r'^\s*parameter\s+\w+\s*=\s*"([^"]+\.mem)"', text, re.M)),
                          tuple(dict.fromkeys(u for u in used if u not in own)))

    da4ml_dir = Path(da4ml.codegen.__file__).parent / "rtl" / "verilog" / "source"
    statics = sorted(da4ml_dir.glob("*.v"))
    assert statics and {f.stem: library.da4ml_static(f) for f in statics} == {f.stem: held(f) for f in statics}
    ours = sorted(HDL_DIR.glob("*.v"))
    assert ours and {f.stem: library.stream_library(f) for f in ours} == {f.stem: held(f) for f in ours}
    assert set(library.DA4ML_MEMFILE_DEFAULTS) <= {f.stem for f in statics}
    assert set(library.STREAM_MEMFILE_DEFAULTS) <= {f.stem for f in ours}
    assert held(shell.SHELL_SOURCE) == SourceInfo((shell.SHELL_MODULE,))
    assert held(stitch.SHELL_SOURCE) == SourceInfo((stitch.SHELL_MODULE,))
    assert held(shell.DUMMY_CORE_SOURCE) == SourceInfo((shell.DUMMY_CORE_MODULE,))
