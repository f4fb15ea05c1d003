"""Tests of the board runtime against the real pynq package (the board environment).

Run with ``.venv-board/bin/python -m pytest tests/board`` (Python 3.10, numpy < 2, pynq 3.1.2,
pycparser < 3). In an environment where pynq does not import (the toolchain one, or a broken
board one) the folder is not collected and the run's summary names the import error; a run that
names this folder then fails.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the board env installs fpga_dnn editable; this covers a bare venv
    sys.path.insert(0, str(REPO))

PYNQ_ERROR = ""   # why pynq did not import: the folder is then not collected, and the run says so
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pynq  # noqa: F401
except Exception as err:  # noqa: BLE001 - pynq missing or broken (numpy 2): not the board environment
    PYNQ_ERROR = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    collect_ignore_glob = ["test_*.py"]


def _board_tests_requested(config) -> bool:
    """This folder (or a file in it) is named on the command line, not reached from ``tests``."""
    here = Path(__file__).resolve().parent
    for arg in config.args:
        path = (Path(config.invocation_params.dir) / arg.split("::")[0]).resolve()
        if path == here or here in path.parents:
            return True
    return False


def pytest_sessionfinish(session, exitstatus):
    # A board environment whose pynq is broken would otherwise run 0 board tests without a word:
    # asked for by name, the run fails; reached from `pytest tests`, the summary still says so.
    if PYNQ_ERROR and _board_tests_requested(session.config) and exitstatus in (0, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if PYNQ_ERROR:
        terminalreporter.write_sep("!", "tests/board NOT RUN: pynq does not import", red=True, bold=True)
        terminalreporter.write_line(f"{sys.executable}: import pynq failed: {PYNQ_ERROR}")
        terminalreporter.write_line("the board tests need the board environment: .venv-board/bin/python -m pytest "
                                    "tests/board (make board-env builds it)")


@pytest.fixture(autouse=True)
def _quiet_pynq():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def digits_spec():
    """A digits-MLP-sized design: 64 x ufixed<5,5> in (8-bit lanes), 10 x fixed<16,6> out, 64-bit streams."""
    from fpga_dnn.runtime.spec import Spec
    return Spec.create("digits_mlp", (64,), "ufixed<5,5>", (10,), "fixed<16,6>", 3, stream_bits=64)


@pytest.fixture
def make_bundle(tmp_path):
    """``make_bundle(spec, **design_overrides) -> bundle dir`` with a generated .bit/.hwh and checksums."""
    from fpga_dnn.runtime.fake.hwh import OverlayDesign

    def make(spec, name="bundle", with_bitstream=True, board="pynq-z2", **overrides):
        d = tmp_path / name
        d.mkdir()
        if with_bitstream:
            OverlayDesign.for_spec(spec, board=board, **overrides).write(d, spec.name)
            spec = spec.with_checksums(d, [f"{spec.name}.bit", f"{spec.name}.hwh"])
        spec.save(d)
        return d

    return make


@pytest.fixture
def reference():
    """``reference(spec, x) -> expected outputs`` of the instant model for real-valued inputs."""
    import numpy as np
    from fpga_dnn.runtime.fake.models import reference_fn
    from fpga_dnn.runtime.packing import from_fixed, to_fixed

    def ref(spec, x):
        q = to_fixed(np.asarray(x), spec.input.format)
        return from_fixed(reference_fn(spec)(q), spec.output.format)

    return ref
