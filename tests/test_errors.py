"""Bad input gets one clear line, never a traceback from deep inside TensorFlow or hls4ml."""

import subprocess
import sys

import numpy as np
import pytest

from fpga_dnn import convert, kerasenv, modelio
from fpga_dnn.errors import (ConfigError, DataError, ModelFileError, UnknownNameError,
                             UnsupportedLayerError)


def test_unsupported_layer_names_layer_and_lists_supported(digits):
    k = kerasenv.tf_keras()
    inp = k.Input((64,), name="x_in")
    out = k.layers.Dense(10, name="head")(k.layers.Lambda(lambda t: t * 2, name="my_lambda")(inp))
    model = k.Model(inp, out)
    with pytest.raises(UnsupportedLayerError) as err:
        convert.convert(model, digits.x_test, write=False)
    msg = str(err.value)
    assert "'my_lambda' (Lambda)" in msg and "QDense" in msg and "Conv2D" in msg


def test_missing_and_corrupt_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        modelio.load_model(tmp_path / "nope.h5")
    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(ModelFileError, match="not a readable HDF5"):
        modelio.load_model(bad)
    badk = tmp_path / "corrupt.keras"
    badk.write_bytes(b"PK garbage")
    with pytest.raises(ModelFileError, match="not a readable .keras"):
        modelio.load_model(badk)
    with pytest.raises(ModelFileError, match="expected a Keras model file"):
        (tmp_path / "model.onnx").write_bytes(b"x")
        modelio.load_model(tmp_path / "model.onnx")


@pytest.mark.slow
def test_wrong_input_shape_and_dtype(digits_mlp_qkeras):
    _, model = digits_mlp_qkeras
    with pytest.raises(DataError, match=r"shape \(5, 63\).*\(N, 64\)"):
        convert.check_input(model, np.zeros((5, 63)))
    with pytest.raises(DataError, match="dtype"):
        convert.check_input(model, np.array([["a"] * 64]))
    with pytest.raises(DataError, match="grid"):
        convert.convert(model, np.full((3, 64), 0.1), write=False)
    with pytest.raises(DataError, match="not representable"):
        convert.convert(model, np.full((3, 64), 0.5), convert.ConvertOptions(input_precision="ufixed<4,4>"),
                        write=False)


def test_unknown_names():
    with pytest.raises(UnknownNameError, match="pynq-z2, ultra96"):
        convert.ConvertOptions(board="zedboard").check()
    with pytest.raises(UnknownNameError, match="io_parallel"):
        convert.ConvertOptions(io_type="io_serial").check()
    with pytest.raises(UnknownNameError, match="Vivado"):
        convert.ConvertOptions(backend="Quartus").check()
    with pytest.raises(ConfigError, match="reuse_factor"):
        convert.ConvertOptions(reuse_factor=0).check()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fpga_dnn", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, expected", [
    (["csim", "no_such_model"], "unknown model 'no_such_model'; known: ad08, digits_cnn, digits_mlp, jet_mlp, resnet8, rn07"),
    (["convert", "digits_mlp", "--board", "zedboard"], "unknown board 'zedboard'; known: pynq-z2, ultra96"),
])
def test_cli_errors_are_one_line(args, expected):
    r = _cli(*args)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.startswith("fpga-dnn")]
    assert len(lines) == 1 and expected in lines[0]
    assert "Traceback" not in r.stderr


def test_cli_corrupt_model_file_is_one_line(tmp_path):
    bad = tmp_path / "m.h5"
    bad.write_bytes(b"junk")
    np.save(tmp_path / "x.npy", np.zeros((2, 64)))
    r = _cli("csim", str(bad), "--data", str(tmp_path / "x.npy"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "m.h5 is not a readable HDF5 Keras model" in r.stderr
