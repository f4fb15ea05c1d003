"""The `sim` backend end to end: the real pynq package (Overlay, DMA driver, allocate) on the
fake board, with the generated RTL (Verilator emulation in the toolchain environment, through
the model bridge) behind the DMA model. Its outputs must equal hls4ml's C-sim on every digits
test sample."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLCHAIN_PY = REPO / ".venv" / "bin" / "python"

FLOW = """
[flow]
name = "board_sim"
steps = ["train", "convert", "csim", "rtl", "deploy"]
[model]
zoo = "digits_mlp"
[quant]
weight_bits = 5
activation_bits = 5
[train]
epochs = 40
float_baseline = false
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The toolchain environment trains, converts, C-simulates and generates the RTL + bundle."""
    if not TOOLCHAIN_PY.exists():
        pytest.fail(f"the toolchain environment is missing ({TOOLCHAIN_PY}): run `make env`")
    work = tmp_path_factory.mktemp("board_sim")
    (work / "flow.toml").write_text(FLOW)
    # Its own build cache, never make demo's build/cache (a warm demo would hide the cold cost):
    # the flow and the model worker the tests start (a subprocess each) both inherit it.
    previous = os.environ.get("FPGA_DNN_CACHE")
    os.environ["FPGA_DNN_CACHE"] = str(work / "cache")
    try:
        r = subprocess.run([str(TOOLCHAIN_PY), "-m", "fpga_dnn", "flow", str(work / "flow.toml"),
                            "--build-dir", str(work / "b")], capture_output=True, text=True, timeout=900, cwd=REPO)
        assert r.returncode == 0, r.stderr[-3000:]
        yield work / "b"
    finally:
        if previous is None:
            os.environ.pop("FPGA_DNN_CACHE", None)
        else:
            os.environ["FPGA_DNN_CACHE"] = previous


@pytest.mark.slow
def test_sim_backend_with_rtl_equals_csim(built):
    from fpga_dnn.runtime.accelerator import Accelerator
    from fpga_dnn.runtime.bridge import WorkerModelFn

    data = np.load(built / "train" / "data.npz")
    x, y = data["x_test"], data["y_test"]
    csim = np.load(built / "csim" / "outputs.npy")
    worker = WorkerModelFn([str(TOOLCHAIN_PY), "-m", "fpga_dnn.runtime.bridge", "--factory",
                            "fpga_dnn.simulate.emulator:emulator_model_fn", str(built / "rtl" / "core")])
    try:
        with Accelerator.open(built / "bundle" / "sim", backend="sim", model=worker,
                              trusted_keys=[built / "keys" / "throwaway.pub"]) as acc:
            first = acc.predict(x)
            again = acc.predict(x[:7])  # buffers reused: a second call must still be right
            info = acc.info()
    finally:
        worker.close()
    assert info["backend"] == "sim"
    exact = (first.reshape(len(x), -1) == csim.reshape(len(x), -1)).all(axis=1)
    assert exact.mean() == 1.0, f"{int((~exact).sum())} of {len(x)} samples differ from C-sim"
    assert len(x) == 450
    assert np.array_equal(again, first[:7])
    assert (first.argmax(axis=1) == y).mean() > 0.9
