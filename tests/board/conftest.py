"""Tests of the board runtime against the real pynq package (the board environment).

Run with ``.venv-board/bin/python -m pytest tests/board`` (Python 3.10, numpy < 2, pynq 3.1.2,
pycparser < 3). In an environment without pynq (the toolchain one) the folder is skipped.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the board env installs fpga_dnn editable; this covers a bare venv
    sys.path.insert(0, str(REPO))

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pynq  # noqa: F401
except Exception:  # noqa: BLE001 - pynq missing or broken (numpy 2): not the board environment
    collect_ignore_glob = ["test_*.py"]


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
