"""RTL for hls4ml's lookup-table and clipped activations (fpga_dnn.rtl.activations): the da4ml
trace equals hls4ml's C-sim on >= 2,000 random on-grid inputs, per activation, measured beside
Keras (where hls4ml's C++ itself differs from Keras the RTL follows C-sim, and the test says by
how much). Also: the tables come out as C-sim's, and yosys estimates a design with a table.
"""

from __future__ import annotations

import numpy as np
import pytest

import fpga_dnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

N_PROBE = 2000


def _rows_equal(a, b) -> np.ndarray:
    n = len(a)
    return np.all(np.asarray(a, np.float64).reshape(n, -1) == np.asarray(b, np.float64).reshape(n, -1), axis=1)


def _grid(shape, frac: int, lo: float, hi: float, n=N_PROBE, seed=0):
    k = np.random.default_rng(seed).integers(int(lo * 2**frac), int(hi * 2**frac), size=(n,) + tuple(shape))
    return k / 2.0**frac


def test_c_tables_are_the_libm_ones():
    """init_sigmoid_table / init_tanh_table in float: a few entries checked against values the header
    gives (g++ 12, glibc; printed at 22 fraction bits), and the numpy float32 functions, which are not
    libm's, disagree on some entries (why the tables are computed through libm)."""
    from fpga_dnn.rtl.activations import c_table

    sig, tanh = np.array(c_table("sigmoid", 1024)), np.array(c_table("tanh", 1024))
    q = lambda v: np.floor(v * 2**22) / 2**22  # noqa: E731
    assert q(sig[[0, 599, 600]]).tolist() == [0.00033521652221679688, 0.79565787315368652, 0.7981867790222168]
    assert q(tanh[[0, 599, 600]]).tolist() == [-0.9993293285369873, 0.59131598472595215, 0.59637355804443359]
    x = (2 * 4.0 * (np.arange(1024) - 512.0) / 1024).astype(np.float32)
    assert (np.tanh(x).astype(np.float64) != tanh).any()  # numpy's float32 tanh is not glibc's tanhf


#: head name -> (Keras layer factory, whether hls4ml's C-sim equals Keras on it)
def _heads(qk, keras):
    return {
        "sigmoid": (lambda: keras.layers.Activation("sigmoid", name="sigmoid"), False),  # float Keras vs a table
        "tanh": (lambda: keras.layers.Activation("tanh", name="tanh"), False),
        "qsig_real": (lambda: qk.QActivation(qk.quantized_sigmoid(6, use_real_sigmoid=True), name="qsig_real"), False),
        "qtanh_real": (lambda: qk.QActivation(qk.quantized_tanh(6, use_real_tanh=True), name="qtanh_real"), False),
        "qsig_hard": (lambda: qk.QActivation(qk.quantized_sigmoid(6), name="qsig_hard"), True),
        "qtanh_hard": (lambda: qk.QActivation(qk.quantized_tanh(6), name="qtanh_hard"), True),
        "hard_sigmoid": (lambda: keras.layers.Activation("hard_sigmoid", name="hard_sigmoid"), False),
    }


@pytest.fixture(scope="module")
def activations_model(tmp_path_factory):
    """One QDense feeding every activation, concatenated: one C-sim build covers them all. The
    Dense result is fixed<17,7> (2**17 codes: the index path saturates it to the table)."""
    from fpga_dnn.convert import convert
    from fpga_dnn.csim import compile_model
    from fpga_dnn.kerasenv import qkeras, tf_keras

    qk, keras = qkeras(), tf_keras()
    keras.utils.set_random_seed(0)
    inp = keras.layers.Input((8,))
    h = qk.QDense(6, kernel_quantizer=qk.quantized_bits(6, 0, alpha=1), bias_quantizer=qk.quantized_bits(6, 0, alpha=1),
                  name="fc")(inp)
    heads = _heads(qk, keras)
    outs = [make()(h) for make, _ in heads.values()]
    out = outs[0]
    for i, o in enumerate(outs[1:]):
        out = keras.layers.Concatenate(name=f"cat{i}")([out, o])
    model = keras.Model(inp, out)
    x = _grid((8,), 5, -2.0, 2.0)
    res = convert(model, x, output_dir=tmp_path_factory.mktemp("acts") / "hls", framework="qkeras")
    compile_model(res.hls_model)
    return model, res.hls_model, x, heads


def test_table_and_hard_activations_rtl_equals_csim(activations_model):
    from fpga_dnn.rtl import trace_model_graph

    model, hls_model, x, heads = activations_model
    classes = {l.name: (l.class_name, l.get_attr("activation")) for l in hls_model.get_layers()}
    assert classes["qsig_real"] == ("Activation", "sigmoid") and classes["qsig_hard"] == ("HardActivation", "hard_sigmoid")
    assert classes["hard_sigmoid"] == ("HardActivation", "hard_sigmoid")
    traced = trace_model_graph(hls_model)
    rtl = traced.predict(x).reshape(len(x), -1)
    csim = np.asarray(hls_model.predict(np.ascontiguousarray(x)), np.float64).reshape(len(x), -1)
    keras_out = model.predict(x, verbose=0)
    width = rtl.shape[1] // len(heads)
    lines = []
    for j, (name, (_, keras_exact)) in enumerate(heads.items()):
        cols = slice(j * width, (j + 1) * width)
        rtl_csim = _rows_equal(rtl[:, cols], csim[:, cols]).mean()
        csim_keras = _rows_equal(csim[:, cols], keras_out[:, cols]).mean()
        lines.append(f"{name}: RTL = C-sim {rtl_csim:.4f}, C-sim = Keras {csim_keras:.4f}")
        assert rtl_csim == 1.0, lines[-1]
        assert (csim_keras == 1.0) == keras_exact, lines[-1]
    print("\n".join(lines) + f"\n({len(x)} grid inputs)")
    n_tables = len(traced.comb.lookup_tables or ())
    assert n_tables >= 4, f"{n_tables} lookup tables (one per distinct table activation and input range)"


@pytest.fixture(scope="module")
def unary_lut_model(tmp_path_factory):
    """HGQ2's QUnaryFunctionLUT with one (homogeneous) table, after a QDense."""
    from fpga_dnn.convert import ConvertOptions, convert
    from fpga_dnn.csim import compile_model
    from fpga_dnn.kerasenv import hgq, keras3

    hgq()
    keras = keras3()
    from hgq.config import QuantizerConfigScope
    from hgq.layers import QDense, QUnaryFunctionLUT

    keras.utils.set_random_seed(0)
    with QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"), \
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP"):
        inp = keras.Input((8,))
        h = QDense(6, name="fc")(inp)
        out = QUnaryFunctionLUT(keras.activations.sigmoid, allow_heterogeneous_table=False,
                                allow_heterogeneous_input=False, name="lut")(h)
        model = keras.Model(inp, out)
    x = np.random.default_rng(0).uniform(-3, 3, size=(N_PROBE, 8))  # off the grid: the input quantizer counts
    model(x[:8])
    res = convert(model, None, ConvertOptions(input_precision="auto"), output_dir=tmp_path_factory.mktemp("lut") / "hls",
                  framework="hgq2")
    compile_model(res.hls_model)
    return model, res.hls_model, x


def test_unary_lut_rtl_equals_csim_and_keras(unary_lut_model):
    from fpga_dnn.rtl import trace_model_graph

    model, hls_model, x = unary_lut_model
    assert "UnaryLUT" in [l.class_name for l in hls_model.get_layers()]
    traced = trace_model_graph(hls_model)
    rtl = traced.predict(x)
    csim = np.asarray(hls_model.predict(np.ascontiguousarray(x)), np.float64)
    keras_out = np.asarray(model.predict(x, verbose=0), np.float64)
    rtl_csim, csim_keras = _rows_equal(rtl, csim).mean(), _rows_equal(csim, keras_out).mean()
    assert len(np.unique(csim)) > 8, "the table must be exercised, not one constant"
    assert (rtl_csim, csim_keras) == (1.0, 1.0), f"RTL = C-sim {rtl_csim:.4f}, C-sim = Keras {csim_keras:.4f}"


def test_unary_lut_of_the_wrong_size_is_refused_by_name():
    from fpga_dnn.errors import UnsupportedLayerError
    from fpga_dnn.fixedpoint import FixedFormat
    from fpga_dnn.hw.layer_graph import LayerNode, Port, Weight
    from fpga_dnn.rtl.activations import unary_lut

    # the handler reads the layer as fpga_dnn.hw.from_hls4ml hands it on: plain data, no hls4ml object
    table = Weight(np.zeros(8), np.zeros(8), FixedFormat(True, 8, 4))
    layer = LayerNode("lut", "UnaryLUT", "UnaryLUT", ("UnaryLUT", "Layer"), ("x",), ("lut",),
                      in_ports=(Port((8,), FixedFormat(True, 4, 2)),), out_port=Port((8,), FixedFormat(True, 8, 4)),
                      weights={"table": table})
    with pytest.raises(UnsupportedLayerError, match=r"layer 'lut' \(UnaryLUT with 8 entries for a 4-bit input"):
        unary_lut(layer, [None])


@pytest.mark.slow
def test_yosys_estimates_a_design_with_a_table(tmp_path):
    """The estimate step on a core with da4ml lookup tables (``lookup_table.v``, ``$readmemh``): the
    tables' memory files travel with the design; the ROMs map to LUTs."""
    from fpga_dnn.convert import convert
    from fpga_dnn.csim import compile_model
    from fpga_dnn.estimate import synthesize_design
    from fpga_dnn.kerasenv import qkeras, tf_keras
    from fpga_dnn.rtl.build import build_rtl

    qk, keras = qkeras(), tf_keras()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((2,)),
                              qk.QActivation(qk.quantized_bits(6, 2, alpha=1), name="q"),
                              qk.QActivation(qk.quantized_sigmoid(6, use_real_sigmoid=True), name="sig")])
    x = _grid((2,), 3, -4.0, 4.0, n=64)
    res = convert(model, x, output_dir=tmp_path / "hls", framework="qkeras")
    compile_model(res.hls_model)
    built = build_rtl(res.hls_model, tmp_path / "rtl", name="tabled")
    assert built.traced.comb.lookup_tables and built.design.memfiles, "the core must hold a table"
    np.testing.assert_array_equal(built.traced.predict(x).reshape(len(x), -1),
                                  np.asarray(res.hls_model.predict(np.ascontiguousarray(x))).reshape(len(x), -1))
    rep = synthesize_design(built.axis, cache_dir=tmp_path / "yosys")
    assert rep.lut > 0, rep
