"""The contract: hls4ml C-sim equals the Keras (QAT) model on every digits test sample."""

from pathlib import Path

import numpy as np
import pytest

from fpga_dnn import convert, csim

pytestmark = pytest.mark.slow  # the 120-epoch digits_mlp fixture, the CNN and HGQ2 fixtures


def _convert_and_run(model, ds, tmp_path, **opts):
    res = convert.convert(model, ds.x_test, convert.ConvertOptions(**opts), output_dir=tmp_path / "hls")
    return res, csim.run_csim(res.hls_model, model, ds.x_test, ds.y_test, traced_twin=res.traced_twin)


# Accuracy floors are tied to the same run's float twin (same architecture, data and seed), not to
# a fixed number: QAT at 8 bits must stay within a point of float, so a regression in training or
# quantization that costs more than that fails even when the absolute number still looks good.
QAT_TOLERANCE = 0.01      # 8-bit QKeras digits_mlp vs its float twin (measured within 0.4 points)
SHORT_TOLERANCE = 0.03    # the 25-epoch CNN and HGQ2 fixtures vs their float baselines


def test_qat_digits_mlp_accuracy_beside_float(digits_mlp_qkeras):
    res, _ = digits_mlp_qkeras
    qat, flt = res.meta["qat"]["accuracy"], res.meta["float"]["accuracy"]
    print(f"digits_mlp: QAT {qat:.4f}, float {flt:.4f}")
    assert qat >= flt - QAT_TOLERANCE, (qat, flt)
    assert flt >= 0.95  # the float twin itself trained (the floor above is relative to it)
    assert res.meta["quant"]["weight_bits"] == 8 and res.meta["quant"]["activation_bits"] == 8
    assert res.meta["weights"] == 64 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_digits_mlp_qkeras_bit_exact(digits_mlp_qkeras, digits, tmp_path, io_type):
    _, model = digits_mlp_qkeras
    res, rep = _convert_and_run(model, digits, tmp_path, io_type=io_type)
    assert res.input_format.hls4ml() == "ufixed<5,1>"
    assert rep.n_samples == 450
    assert rep.exact_fraction == 1.0, rep.first_mismatch
    assert rep.accuracy == pytest.approx(digits_mlp_qkeras[0].meta["qat"]["accuracy"])  # = Keras on the test split


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_digits_cnn_qkeras_bit_exact(digits_cnn_qkeras, digits_images, tmp_path, io_type):
    trained, model = digits_cnn_qkeras
    res, rep = _convert_and_run(model, digits_images, tmp_path, io_type=io_type)
    assert "Conv2D" in [l["class"] for l in res.info["layers"]]
    assert rep.exact_fraction == 1.0, rep.first_mismatch
    flt = trained.meta["float"]["accuracy"]
    print(f"digits_cnn: C-sim {rep.accuracy:.4f}, float twin {flt:.4f}")
    assert rep.accuracy >= flt - SHORT_TOLERANCE, (rep.accuracy, flt)


def test_digits_mlp_hgq2_bit_exact(digits_mlp_hgq2, digits_mlp_qkeras, digits, tmp_path):
    _, model = digits_mlp_hgq2
    res, rep = _convert_and_run(model, digits, tmp_path, io_type="io_parallel")
    assert res.framework == "hgq2"
    assert rep.exact_fraction == 1.0, rep.first_mismatch
    # the same architecture's float twin (trained beside the QKeras fixture, same data and seed)
    flt = digits_mlp_qkeras[0].meta["float"]["accuracy"]
    print(f"digits_mlp hgq2: C-sim {rep.accuracy:.4f}, float twin {flt:.4f}")
    assert rep.accuracy >= flt - SHORT_TOLERANCE, (rep.accuracy, flt)


def test_vitis_backend_bit_exact(digits_mlp_qkeras, digits, tmp_path):
    _, model = digits_mlp_qkeras
    res, rep = _convert_and_run(model, digits, tmp_path, backend="vitis", strategy="resource", reuse_factor=4)
    assert res.options.backend == "Vitis" and res.hls_config["Model"]["ReuseFactor"] == 4
    assert rep.exact_fraction == 1.0, rep.first_mismatch


def test_mismatch_names_sample_and_layer(digits_mlp_qkeras, digits, tmp_path):
    """Narrowing one activation on purpose must be caught and located, not just counted."""
    _, model = digits_mlp_qkeras
    narrow = {"relu1": {"result": "ufixed<4,1,RND_CONV,SAT>"}}
    res, rep = _convert_and_run(model, digits, tmp_path, precision_overrides=narrow)
    assert rep.exact_fraction < 0.5
    m = rep.first_mismatch
    assert m["layer"] == "relu1" and m["differing_elements"] > 0
    # the expected index, computed here without the code under test: hls4ml's own predict
    # against Keras, plain numpy
    hls = np.asarray(res.hls_model.predict(np.ascontiguousarray(digits.x_test, dtype=np.float64)), np.float64)
    keras = np.asarray(model.predict(digits.x_test, verbose=0), np.float64)
    differs = (hls.reshape(len(hls), -1) != keras.reshape(len(keras), -1)).any(axis=1)
    assert m["sample"] == int(np.argmax(differs)) and differs[m["sample"]]
    assert rep.exact_fraction == pytest.approx(1 - differs.mean())
    assert "relu1" in csim.describe_mismatch(m)


def test_project_written(digits_mlp_qkeras, digits, tmp_path):
    _, model = digits_mlp_qkeras
    res = convert.convert(model, digits.x_test, convert.ConvertOptions(board="ultra96"), output_dir=tmp_path / "p")
    assert (tmp_path / "p" / "firmware" / "fpga_dnn_model.cpp").is_file()
    assert res.options.hls4ml_part() == "xczu3eg-sbva484-1-e"   # the part follows the board, resolved late
    assert res.hls_config["LayerName"]["model_input"]["Precision"]["result"] == "ufixed<5,1>"


def test_build_script_compiles_both_units_side_by_side(tmp_path):
    """hls4ml's own build_lib.sh template gets its two compiles in parallel, and a failing
    background compile still fails the script (``wait`` returns its status under ``set -e``)."""
    import subprocess
    from pathlib import Path

    import hls4ml

    from fpga_dnn.csim import parallel_build_script

    template = Path(hls4ml.__file__).parent / "templates" / "vivado" / "build_lib.sh"
    script = tmp_path / "build_lib.sh"
    script.write_text(template.read_text())
    assert parallel_build_script(script)
    text = script.read_text()
    assert "-o ${PROJECT}.o &\nmain_pid=$!\n" in text and "_bridge.o\nwait $main_pid\n" in text
    assert not parallel_build_script(script)   # already parallel: left alone
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "myproject.cpp").write_text("this is not C++;\n")
    (tmp_path / "myproject_bridge.cpp").write_text("int bridge() { return 0; }\n")
    run = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode != 0 and "error" in run.stdout + run.stderr


def test_written_projects_get_hls4mls_sepconv_header_guard_fixed(tmp_path):
    """hls4ml 1.3.0's nnet_sepconv1d_latency.h shares nnet_sepconv2d_latency.h's include guard, so
    a project including both loses depthwise_conv_2d_latency_cl (DepthwiseConv2D and
    SeparableConv2D failed to compile). After compat.fix_written_project the two guards differ and
    a translation unit including both in that order can name the 2-D function (g++)."""
    import shutil
    import subprocess

    import hls4ml

    from fpga_dnn.compat import fix_written_project

    templates = Path(hls4ml.__file__).parent / "templates" / "vivado"
    fw = tmp_path / "firmware"
    shutil.copytree(templates / "nnet_utils", fw / "nnet_utils")
    shutil.copytree(templates / "ap_types", fw / "ap_types")
    fix_written_project(tmp_path)
    guard = lambda name: (fw / "nnet_utils" / name).read_text().split("\n", 1)[0]   # noqa: E731
    assert guard("nnet_sepconv1d_latency.h") != guard("nnet_sepconv2d_latency.h")
    tu = tmp_path / "tu.cpp"
    tu.write_text('#include "nnet_utils/nnet_sepconv1d_latency.h"\n#include "nnet_utils/nnet_sepconv2d_latency.h"\n'
                  "template <class C> void g(float *d, float *r, float *w, float *b) {\n"
                  "    nnet::depthwise_conv_2d_latency_cl<float, float, C>(d, r, w, b);\n}\n")
    res = subprocess.run(["g++", "-std=c++14", "-fsyntax-only", f"-I{fw}", f"-I{fw / 'ap_types'}", str(tu)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
