"""Noise, occlusion and adversarial robustness (fpga_dnn.verify.robustness) on the tiny model."""

from __future__ import annotations

import json


def test_robustness_on_the_tiny_model(tiny_model_files, tmp_path):
    """QAT and hardware agree on clean inputs (C-sim is bit-exact with Keras on the grid); noise
    lowers accuracy; PGD (crafted on the QAT model) is at least as strong as FGSM on the QAT model;
    HopSkipJump's robust accuracy on the black-box hardware falls with eps."""
    from fpga_dnn.flow import FlowConfig
    from fpga_dnn.verify.robustness import run_robustness

    model, data = tiny_model_files
    cfg = FlowConfig.from_dict({"flow": {"steps": ["convert", "csim"]},
                                "model": {"file": str(model), "data": str(data)}}, base_dir=tmp_path)
    paths = run_robustness(cfg, tmp_path / "b", sigmas=(0.0, 0.3), occlusions=(0.0, 0.5), epsilons=(0.0, 0.05, 0.3),
                           pgd_iter=5, hsj_samples=8, hsj_iter=3)
    r = json.loads(paths["json"].read_text())
    assert r["models"] == ["qat", "hardware"] and paths["png"].stat().st_size > 10_000
    noise = r["noise"]["curves"]
    assert noise["qat"][0]["accuracy"] == noise["hardware"][0]["accuracy"] > 0.5
    assert noise["hardware"][1]["accuracy"] < noise["hardware"][0]["accuracy"]
    adv = r["adversarial"]
    assert adv["pgd"]["curves"]["qat"][-1]["accuracy"] <= adv["fgsm"]["curves"]["qat"][-1]["accuracy"] + 0.02
    assert adv["pgd"]["curves"]["qat"][-1]["accuracy"] < noise["qat"][0]["accuracy"]
    hsj = [row["accuracy"] for row in adv["hopskipjump"]["curves"]["hardware"]]
    assert hsj == sorted(hsj, reverse=True) and adv["hopskipjump"]["queries"] > 8
    assert "HopSkipJump" in paths["md"].read_text()
