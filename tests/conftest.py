"""Shared, session-scoped artifacts: each test model is trained and converted once per run."""

from __future__ import annotations

import os

os.environ.setdefault("FPGA_DNN_QUIET", "1")

import pytest  # noqa: E402

import fpga_dnn  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)


@pytest.fixture(scope="session")
def build_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fpga_dnn")


def _trained(build_root, name, framework, epochs, float_baseline=False, **quant):
    from fpga_dnn import models, train
    from fpga_dnn.modelio import load_model

    cfg = train.TrainConfig(epochs=epochs, float_baseline=float_baseline)
    res = train.train(name, framework, models.Quant(**quant), cfg, build_root / f"{name}_{framework}")
    model, fw = load_model(res.model_path)
    return res, model


@pytest.fixture(scope="session")
def digits_mlp_qkeras(build_root):
    """8-bit QKeras digits_mlp, fully trained (its accuracy is asserted)."""
    return _trained(build_root, "digits_mlp", "qkeras", epochs=120, float_baseline=True)


@pytest.fixture(scope="session")
def digits_cnn_qkeras(build_root):
    return _trained(build_root, "digits_cnn", "qkeras", epochs=25)


@pytest.fixture(scope="session")
def digits_mlp_hgq2(build_root):
    return _trained(build_root, "digits_mlp", "hgq2", epochs=25)


@pytest.fixture(scope="session")
def digits():
    from fpga_dnn import data

    return data.digits()


@pytest.fixture(scope="session")
def digits_images():
    from fpga_dnn import data

    return data.digits(images=True)


def _hardware(build_root, trained, dataset, tag):
    """Convert, C-sim, and generate RTL for a trained test model (once per session)."""
    from fpga_dnn import convert, csim
    from fpga_dnn.rtl.build import build_rtl

    _, model = trained
    x = convert.check_input(model, dataset.x_test)
    conv = convert.convert(model, x, output_dir=build_root / f"{tag}_hls")
    rep = csim.run_csim(conv.hls_model, model, x, dataset.y_test)
    rtl = build_rtl(conv.hls_model, build_root / f"{tag}_rtl", name=tag)
    return {"model": model, "x": x, "y": dataset.y_test, "csim": rep, "rtl": rtl,
            "keras": model.predict(x, verbose=0)}


@pytest.fixture(scope="session")
def hw_digits_mlp(build_root, digits_mlp_qkeras, digits):
    return _hardware(build_root, digits_mlp_qkeras, digits, "digits_mlp")


@pytest.fixture(scope="session")
def hw_digits_cnn(build_root, digits_cnn_qkeras, digits_images):
    return _hardware(build_root, digits_cnn_qkeras, digits_images, "digits_cnn")


@pytest.fixture(scope="session")
def hw_digits_mlp_hgq2(build_root, digits_mlp_hgq2, digits):
    return _hardware(build_root, digits_mlp_hgq2, digits, "digits_mlp_hgq2")
