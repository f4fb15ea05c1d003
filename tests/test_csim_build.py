"""The C-sim build with hls4ml's headers precompiled once (fpga_dnn/csim_build.py) makes the library
hls4ml's own build makes: same outputs on every probe, each project reading its own weights."""

from __future__ import annotations

import subprocess

import numpy as np


def _tiny(seed: int):
    from fpga_dnn.kerasenv import qkeras, tf_keras

    qk, k = qkeras(), tf_keras()
    k.utils.set_random_seed(seed)
    q = dict(kernel_quantizer=qk.quantized_bits(6, 0, alpha=1), bias_quantizer=qk.quantized_bits(6, 0, alpha=1))
    inp = k.Input((8,), name="x_in")
    h = qk.QActivation(qk.quantized_relu(6), name="relu1")(qk.QDense(6, name="dense1", **q)(inp))
    return k.Model(inp, qk.QDense(3, name="logits", **q)(h))


def test_precompiled_headers_build_hls4ml_s_library(tmp_path):
    from fpga_dnn import convert, csim
    from fpga_dnn.cache import cache_root
    from fpga_dnn.csim_build import precompiled_headers

    x = np.random.default_rng(0).integers(-32, 32, size=(2000, 8)) / 16.0  # fixed<6,2>'s grid, both signs
    opts = convert.ConvertOptions(input_precision="fixed<6,2>")
    outs = []
    # Two models with different weights: a weights folder frozen into the precompiled header (the
    # trap csim_build.py avoids) would make the second project read the first one's weights.
    for seed in (0, 1):
        model = _tiny(seed)
        own = convert.convert(model, x, opts, output_dir=tmp_path / f"own{seed}").hls_model
        own.compile()  # hls4ml's own build_lib.sh
        ours = convert.convert(model, x, opts, output_dir=tmp_path / f"ours{seed}").hls_model
        csim.compile_model(ours)
        script = (tmp_path / f"ours{seed}" / "build_lib.sh").read_text()
        assert "FPGA_DNN_PCH=" in script and "fpga_dnn_weights_dir.o" in script
        a, b = own.predict(x), ours.predict(x)
        assert np.array_equal(a, b), f"{int((a != b).any(axis=1).sum())}/{len(x)} outputs differ"
        outs.append(b)
    assert not np.array_equal(outs[0], outs[1])  # the two models really differ
    # One precompiled header serves both projects, and GCC takes it (it warns of one it ignores).
    pch = {precompiled_headers(tmp_path / f"ours{seed}" / "firmware") for seed in (0, 1)}
    assert len(pch) == 1 and str(cache_root()) in str(next(iter(pch)))
    run = subprocess.run(["bash", "build_lib.sh"], cwd=tmp_path / "ours1", capture_output=True, text=True)
    assert run.returncode == 0 and "not used because" not in run.stdout + run.stderr
