"""hls4ml's own HGQ2 test models (``test/pytest/test_qeinsum.py``, ``test_bit_exact_zeropadding.py``,
``test_hgq2_mha.py`` and the HGQ2 layers of ``test_hgq_layers.py`` in fastmachinelearning/hls4ml),
rebuilt small: the layers the RTL used to refuse (``Merge(multiply)``, ``EinsumDense``,
ZeroPadding1D/2D) through convert -> C-sim -> RTL (da4ml trace) -> RTL emulation on >= 2,000 random
inputs on the input quantizer's grid, C-sim compared with Keras and the RTL with C-sim sample for
sample, beside plain hls4ml configured as its own HGQ2 tests configure it. Multi-head attention,
which hls4ml itself converts inexactly, is refused for RTL with a one-line reason.
"""

from __future__ import annotations

import numpy as np
import pytest

import fpga_dnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

N_PROBE = 2000
#: hls4ml's HGQ2 tests: the bit-exact pass sets every type, the model default only seeds it.
PLAIN_HGQ2_CONFIG = {"Model": {"Precision": "ap_fixed<1,0>", "ReuseFactor": 1, "Strategy": "latency"}}


def _hgq():
    from fpga_dnn.kerasenv import hgq, keras3

    hgq()
    return keras3()


def _scopes():
    """Datalane quantizers kif(i=2, f=3) WRAP, weights kbi SAT_SYM, as hls4ml's tests use them."""
    from hgq.config import QuantizerConfigScope

    return (QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"),
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP", f0=3, i0=2))


def _grid(shape, n=N_PROBE, seed=0):
    """Random points of the fixed<6,3> grid (the input quantizer's kif(1, 2, 3)), extremes included."""
    k = np.random.default_rng(seed).integers(-32, 32, size=(n,) + tuple(shape))
    k[0], k[1] = -32, 31
    return k / 8.0


def hgq2_multiply():
    """Two QDense branches multiplied element-wise (HGQ2 ``QMultiply`` -> hls4ml ``Merge(multiply)``)."""
    keras = _hgq()
    from hgq.layers import QDense, QMultiply

    s1, s2 = _scopes()
    with s1, s2:
        inp = keras.Input((8,))
        a = QDense(6, name="a")(inp)
        b = QDense(6, activation="relu", name="b")(inp)
        out = QMultiply(name="mul")([a, b])
    return keras.Model(inp, out, name="hgq2_multiply")


def hgq2_einsum_dense():
    """QEinsumDense without and with transposes (contract over the first axis, out axes swapped)."""
    keras = _hgq()
    from hgq.layers import QEinsumDense

    s1, s2 = _scopes()
    with s1, s2:
        inp = keras.Input((4, 6))
        h = QEinsumDense("bij,jk->bik", output_shape=(4, 5), bias_axes="k", name="ed0")(inp)
        out = QEinsumDense("bij,ik->bkj", output_shape=(3, 5), bias_axes="kj", name="ed1")(h)
    return keras.Model(inp, out, name="hgq2_einsum_dense")


def hgq2_zeropadding1d():
    """test_bit_exact_zeropadding1d, shrunk: QConv1D -> ZeroPadding1D((2, 0)) -> QConv1D(valid)."""
    keras = _hgq()
    from hgq.layers import QConv1D

    s1, s2 = _scopes()
    with s1, s2:
        inp = keras.Input((8, 3))
        h = QConv1D(4, 1, name="c0")(inp)
        h = keras.layers.ZeroPadding1D(padding=(2, 0), name="pad")(h)
        out = QConv1D(3, 3, padding="valid", name="c1")(h)
    return keras.Model(inp, out, name="hgq2_zeropadding1d")


def hgq2_zeropadding2d():
    """test_bit_exact_zeropadding2d, shrunk: QConv2D -> ZeroPadding2D(1) -> QConv2D(valid)."""
    keras = _hgq()
    from hgq.layers import QConv2D

    s1, s2 = _scopes()
    with s1, s2:
        inp = keras.Input((4, 4, 2))
        h = QConv2D(3, 1, name="c0")(inp)
        h = keras.layers.ZeroPadding2D(padding=((1, 0), (1, 1)), name="pad")(h)
        out = QConv2D(2, 3, padding="valid", name="c1")(h)
    return keras.Model(inp, out, name="hgq2_zeropadding2d")


def _keras_out(model, x):
    from hgq.utils import trace_minmax

    return np.asarray(trace_minmax(model, x, return_results=True), np.float64).reshape(len(x), -1)


def _rows_equal(a, b) -> np.ndarray:
    n = len(a)
    return np.all(np.asarray(a, np.float64).reshape(n, -1) == np.asarray(b, np.float64).reshape(n, -1), axis=1)


def _plain_hls4ml(model, out_dir):
    import hls4ml

    from fpga_dnn.convert import _quiet

    with _quiet():
        hm = hls4ml.converters.convert_from_keras_model(model, backend="Vivado", output_dir=str(out_dir),
                                                        hls_config=PLAIN_HGQ2_CONFIG, io_type="io_parallel")
        hm.compile()
    return hm


def hgq2_case(build, tmp_path, *, plain: bool = True) -> dict:
    """One HGQ2 model through fpga_dnn (and plain hls4ml beside it); the exact fractions."""
    from fpga_dnn.convert import convert
    from fpga_dnn.csim import compile_model
    from fpga_dnn.rtl import trace_model_graph

    keras = _hgq()
    keras.utils.set_random_seed(0)
    model = build()
    x = _grid(model.input_shape[1:])
    keras_out = _keras_out(model, x)
    res = convert(model, x, output_dir=tmp_path / "ours", framework="hgq2")
    compile_model(res.hls_model)
    csim = np.asarray(res.hls_model.predict(np.ascontiguousarray(x)), np.float64).reshape(len(x), -1)
    traced = trace_model_graph(res.hls_model)
    rtl = traced.predict(x).reshape(len(x), -1)
    out = {"n": len(x), "x": x, "csim": csim, "traced": traced, "hls_model": res.hls_model,
           "csim_keras": _rows_equal(csim, keras_out).mean(), "rtl_csim": _rows_equal(rtl, csim).mean(),
           "spread": float(np.std(keras_out))}
    if plain:
        hm = _plain_hls4ml(model, tmp_path / "plain")
        out["plain_keras"] = _rows_equal(hm.predict(np.ascontiguousarray(x)), keras_out).mean()
    return out


def _assert_exact(name, r, layer_class):
    msg = (f"{name}: C-sim = Keras {r['csim_keras']:.4f}, RTL = C-sim {r['rtl_csim']:.4f}, plain hls4ml = Keras "
           f"{r.get('plain_keras', float('nan')):.4f} on {r['n']} grid inputs")
    print(msg)
    assert r["n"] >= N_PROBE and r["spread"] > 0.1, msg  # outputs that vary: a real comparison
    assert layer_class in [li.class_name for li in r["traced"].layers], r["traced"].layers
    assert r["csim_keras"] == 1.0 and r["rtl_csim"] == 1.0, msg
    assert r["csim_keras"] >= r.get("plain_keras", 0.0), msg


def test_hgq2_multiply_bit_exact_through_rtl(tmp_path):
    r = hgq2_case(hgq2_multiply, tmp_path)
    _assert_exact("hgq2_multiply", r, "Merge")
    assert r["hls_model"].graph["mul"].get_attr("op") == "multiply"


def test_hgq2_einsum_dense_bit_exact_through_rtl(tmp_path):
    r = hgq2_case(hgq2_einsum_dense, tmp_path)
    _assert_exact("hgq2_einsum_dense", r, "EinsumDense")
    ed1 = r["hls_model"].graph["ed1"]
    assert tuple(ed1.get_attr("out_tpose_idxs")) != (0, 1)  # the second layer does transpose its output


# ---------------------------------------------------------------------------------------------
# ZeroPadding: hls4ml 1.3.0's bit-exact pass lacks it (fixed upstream in PR #1482, brought in by
# fpga_dnn.compat)
# ---------------------------------------------------------------------------------------------

def test_compat_registers_zeropadding_kif_like_upstream():
    from hls4ml.model.layers import ZeroPadding1D, ZeroPadding2D
    from hls4ml.model.optimizer.passes.bit_exact import _produce_kif

    from fpga_dnn import compat

    compat.apply()
    assert compat.missing_zeropadding_kif() == [] and compat.apply() == []  # registered once, idempotent
    for cls in (ZeroPadding1D, ZeroPadding2D):
        assert _produce_kif.dispatch(cls) is compat._zeropadding_kif

    class Fake2D(ZeroPadding2D):  # the attributes the rule reads, without a ModelGraph
        def __init__(self):
            self.attributes = {"data_format": "channels_last", "pad_top": 1, "pad_bottom": 0,
                               "pad_left": 2, "pad_right": 1}

    kin = (np.ones((2, 3, 4), np.int16), np.full((2, 3, 4), 3, np.int16), np.full((2, 3, 4), 5, np.int16))
    import hls4ml.model.optimizer.passes.bit_exact as be

    real = be.get_input_kifs
    be.get_input_kifs = lambda layer: [kin]
    try:
        k, i, f = compat._zeropadding_kif(Fake2D())
    finally:
        be.get_input_kifs = real
    assert k.shape == (3, 6, 4) and k.dtype == np.int16
    assert (i[1:, 2:5] == 3).all() and i[0].sum() == 0 and i[:, :2].sum() == 0 and i[:, 5].sum() == 0
    assert (f[1:, 2:5] == 5).all() and f.sum() == 5 * 2 * 3 * 4


@pytest.mark.parametrize("build", [hgq2_zeropadding1d, hgq2_zeropadding2d], ids=["1d", "2d"])
def test_hgq2_zeropadding_converts_and_is_bit_exact_through_rtl(build, tmp_path):
    r = hgq2_case(build, tmp_path, plain=False)  # plain hls4ml 1.3.0 stops in its bit-exact pass
    _assert_exact(build.__name__, r, "ZeroPadding2D" if build is hgq2_zeropadding2d else "ZeroPadding1D")


@pytest.mark.extended  # a Verilator build: minutes on a loaded 2-core machine; the trace covers it in the fast tests
def test_hgq2_multiply_verilog_in_verilator_equals_csim(tmp_path):
    """The generated Verilog itself (multipliers of two variables) on the same 2,000 inputs."""
    from fpga_dnn.rtl import write_verilog
    from fpga_dnn.simulate.emulator import compile_emulator

    r = hgq2_case(hgq2_multiply, tmp_path, plain=False)
    design = write_verilog(r["traced"], tmp_path / "rtl", latency_cutoff=5)
    out = np.asarray(compile_emulator(design).predict(r["x"]), np.float64).reshape(r["n"], -1)
    assert _rows_equal(out, r["csim"]).mean() == 1.0


# ---------------------------------------------------------------------------------------------
# multi-head attention: inexact in hls4ml itself, refused for RTL
# ---------------------------------------------------------------------------------------------

def hgq2_self_attention():
    """test_hgq2_mha's QMultiHeadAttention, shrunk and as self-attention (one input)."""
    keras = _hgq()
    from hgq.config import QuantizerConfigScope
    from hgq.layers import QMultiHeadAttention

    with QuantizerConfigScope(f0=3, i0=2):
        inp = keras.Input((4, 5))
        out = QMultiHeadAttention(2, 3, name="mha", fuse="none")(inp, inp)
    return keras.Model(inp, out, name="hgq2_mha")


def test_hgq2_multi_head_attention_refused_for_rtl_with_reason(tmp_path):
    from fpga_dnn.convert import convert
    from fpga_dnn.csim import compile_model
    from fpga_dnn.errors import UnsupportedLayerError
    from fpga_dnn.rtl import trace_model_graph

    keras = _hgq()
    keras.utils.set_random_seed(0)
    model = hgq2_self_attention()
    x = _grid(model.input_shape[1:], n=500) * 3 / 4
    keras_out = _keras_out(model, x)
    res = convert(model, x, output_dir=tmp_path / "hls", framework="hgq2")
    compile_model(res.hls_model)
    csim = np.asarray(res.hls_model.predict(np.ascontiguousarray(x)), np.float64).reshape(keras_out.shape)
    exact = _rows_equal(csim, keras_out).mean()
    print(f"hgq2_mha: C-sim = Keras {exact:.4f} on {len(x)} inputs, elements equal {(csim == keras_out).mean():.4f}, "
          f"max abs diff {np.abs(csim - keras_out).max():g}, output std {keras_out.std():.3f}")
    assert exact < 1.0, "hls4ml is now exact on multi-head attention: RTL need not refuse it any more"
    with pytest.raises(UnsupportedLayerError) as err:
        trace_model_graph(res.hls_model)
    msg = str(err.value)
    assert "\n" not in msg and "layer 'mha' (QMultiHeadAttention" in msg and "not bit-exact" in msg, msg
