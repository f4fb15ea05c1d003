"""Model-level fault injection on the bit-exact fixed-point model (fpga_dnn.verify.model_faults)."""

from __future__ import annotations

import json

import numpy as np

from fpga_dnn.verify.model_faults import flip_bits, run_model_faults


def test_flip_bits_by_hand():
    # 3 = 0011 -> bit 3 -> 1011 = -5 (4-bit two's complement); -1 = 1111 -> bit 0 -> 1110 = -2
    assert flip_bits(np.array([3, -1]), np.array([3, 4]), 4, True).tolist() == [-5, -2]
    assert flip_bits(np.array([5, 0]), np.array([3, 4, 5]), 4, False).tolist() == [13, 3]
    # a bit hit twice is flipped back
    assert flip_bits(np.array([6]), np.array([1, 1]), 4, True).tolist() == [6]


def test_sweep_on_the_tiny_model(tiny_model_files, tmp_path):
    """The flow's convert + C-sim steps, the graph checked equal to C-sim, then both campaigns:
    at BER 1e-6 nothing (or almost nothing) flips in a few hundred bits, so accuracy is the
    fault-free one; errors grow with the rate; any flip in an output register changes the output."""
    from fpga_dnn.flow import FlowConfig

    model, data = tiny_model_files
    cfg = FlowConfig.from_dict({"flow": {"steps": ["convert", "csim"]},
                                "model": {"file": str(model), "data": str(data)}}, base_dir=tmp_path)
    paths = run_model_faults(cfg, tmp_path / "b", trials=6, flips_per_bit=8)
    r = json.loads(paths["json"].read_text())
    assert paths["png"].stat().st_size > 10_000 and "accuracy vs bit-error rate" in paths["md"].read_text().lower()
    assert r["samples"] == 200 and set(r["ber"]) == {"weights", "activations"}
    assert set(r["ber"]["weights"]) == {"dense1", "logits"}
    for target in ("weights", "activations"):
        for layer, rows in r["ber"][target].items():
            low, high = rows[0], rows[-1]
            if low["flips_mean"] == 0:
                assert low["accuracy"] == r["clean_accuracy"] and low["changed_fraction"] == 0
            assert high["changed_fraction"] >= low["changed_fraction"]
    out = r["bit_position"]["activations"]["logits"]
    assert [b["changed_fraction"] for b in out] == [1.0] * len(out)
    w = r["bit_position"]["weights"]["logits"]
    assert w[-1]["misclassified_fraction"] >= w[0]["misclassified_fraction"]   # the sign bit hurts most
