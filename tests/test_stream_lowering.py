"""Lowering hls4ml's graph to the hardware graph, and the graph's numpy integer reference.

The reference executor (:mod:`fpga_dnn.hw.reference`) is the executable spec the streaming
Verilog must equal, so here it must equal hls4ml's C-sim (io_parallel and io_stream graphs,
QKeras and HGQ2) and Keras, sample for sample. Models are small with random weights (exactness
needs varied values, not accuracy); inputs are random points of the input grid plus, for
digits_cnn, the test split. No Verilator here (see tests/test_stream_flow.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import fpga_dnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from fpga_dnn.errors import ConfigError, FpgaDnnError, UnsupportedLayerError

N_GRID = 600


def _qk():
    from fpga_dnn.kerasenv import qkeras, tf_keras

    return qkeras(), tf_keras()


def _q8():
    qk, _ = _qk()
    return dict(kernel_quantizer=qk.quantized_bits(8, 0, alpha=1), bias_quantizer=qk.quantized_bits(8, 0, alpha=1))


def _randomize(model, seed=1):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for var, old in zip(layer.weights, layer.get_weights()):
            if "moving_variance" in var.name:
                values.append(rng.uniform(0.3, 2.0, old.shape))
            elif "gamma" in var.name:
                values.append(rng.uniform(0.5, 1.5, old.shape))
            else:
                values.append(rng.normal(0.0, 0.5, old.shape))
        if values:
            layer.set_weights(values)


def _convert(model, out_dir, io_type, framework="qkeras", input_precision="ufixed<5,1>", precision=None):
    from fpga_dnn.convert import ConvertOptions, convert
    from fpga_dnn.csim import compile_model

    opts = ConvertOptions(input_precision=input_precision, io_type=io_type, precision_overrides=precision or {})
    res = convert(model, None, opts, output_dir=out_dir, framework=framework)
    compile_model(res.hls_model)
    return res.hls_model


def _grid(shape, n=N_GRID, seed=0):
    return np.random.default_rng(seed).integers(0, 32, size=(n,) + tuple(shape)) / 16.0


def _same(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.mean(np.all(a.reshape(len(a), -1) == b.reshape(len(b), -1), axis=1)))


def _check(hls_model, x, keras_model=None):
    from fpga_dnn.hw import lower, reference

    graph = lower.lower(hls_model)
    ours = reference.predict(graph, x)
    csim = np.asarray(hls_model.predict(np.ascontiguousarray(x, dtype=np.float64)))
    assert _same(ours, csim) == 1.0, f"{_same(ours, csim):.4f} of {len(x)} samples equal C-sim"
    if keras_model is not None:
        k = keras_model.predict(x, verbose=0)
        assert _same(ours, k) == 1.0, f"{_same(ours, k):.4f} of {len(x)} samples equal Keras"
    return graph


@pytest.fixture(scope="module")
def skip_model():
    """stride-2 'same' conv, BatchNorm, ReLU, a skip Add around a 'same' conv, MaxPool, Dense."""
    qk, keras = _qk()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = L.Input((8, 8, 1))
    h = qk.QConv2D(4, 3, strides=2, padding="same", name="c1", **_q8())(inp)
    h = L.BatchNormalization(name="bn")(h)
    h = qk.QActivation(qk.quantized_relu(8), name="r1")(h)
    a = qk.QConv2D(4, 3, padding="same", name="c2", **_q8())(h)
    a = qk.QActivation(qk.quantized_relu(8), name="r2")(a)
    h = L.Add(name="add")([h, a])
    h = L.MaxPooling2D(2, name="pool")(h)
    model = keras.Model(inp, qk.QDense(10, name="d", **_q8())(L.Flatten()(h)))
    _randomize(model)
    return model


@pytest.fixture(scope="module")
def plain_model():
    """conv s2 'same', conv 'valid', AveragePooling 2x2, Flatten, Dense. (hls4ml's C-sim itself
    differs from Keras after an average pool: its accum_t/result_t truncate the mean.)"""
    qk, keras = _qk()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = L.Input((9, 9, 2))
    h = qk.QActivation(qk.quantized_relu(8), name="r1")(qk.QConv2D(4, 3, strides=2, padding="same", name="c1",
                                                                    **_q8())(inp))
    h = qk.QActivation(qk.quantized_relu(8), name="r2")(qk.QConv2D(6, 2, name="c2", **_q8())(h))
    h = L.AveragePooling2D(2, name="avg")(h)
    model = keras.Model(inp, qk.QDense(5, name="d", **_q8())(L.Flatten()(h)))
    _randomize(model, seed=2)
    return model


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_skip_bn_pool_model_equals_csim(skip_model, tmp_path, io_type):
    hls_model = _convert(skip_model, tmp_path / "hls", io_type)
    graph = _check(hls_model, _grid((8, 8, 1)))
    kinds = [n.kind for n in graph]
    # the BatchNorm is folded into c1 (c1's 'auto' result is its exact accumulator), the ReLUs
    # into the units before them; the skip is a fork of c1's unit
    assert kinds == ["input", "conv", "conv", "add", "pool", "dense"], kinds
    assert graph["c1"].layers == ("c1", "bn", "r1") and len(graph.consumers("c1")) == 2
    assert graph["c1"].window.pb == 1 and graph["c1"].window.sh == 2  # 'same', stride 2
    assert graph["d"].in_shape == (2, 2, 4) and graph["d"].in_elems == 4  # Dense after Flatten


def test_batchnorm_after_a_rounding_result_stays_an_affine_unit(skip_model, tmp_path):
    """hls4ml rounds c1's pinned result before the BatchNorm: folding would change the codes."""
    hls_model = _convert(skip_model, tmp_path / "hls", "io_stream",
                         precision={"c1": {"result": "fixed<9,3,RND_CONV,SAT>"}})
    graph = _check(hls_model, _grid((8, 8, 1)))
    assert [n.kind for n in graph] == ["input", "conv", "affine", "conv", "add", "pool", "dense"]
    assert graph["bn"].layers == ("bn", "r1") and "bn" not in graph["c1"].layers


def test_merged_shift_chain_gives_the_same_codes():
    from fpga_dnn.hw.graph import Requant
    from fpga_dnn.hw.lower import lossless_shift, merge_shifts
    from fpga_dnn.hw.reference import requant_chain
    from fpga_dnn.rtl.precision import HlsType

    wide = Requant(-4, HlsType(True, 24, 8))            # an exact x << 4 of a 16-bit integer
    relu = Requant(9, HlsType(False, 8, 1, "RND_CONV", "SAT"), relu=True)
    chain = (wide, relu)
    assert lossless_shift((wide,), 16) == 4 and lossless_shift(chain, 16) is None
    merged = merge_shifts(chain, 16)
    assert merged == (Requant(5, relu.out, relu=True),)
    x = np.arange(-(1 << 15), 1 << 15, 7)
    assert np.array_equal(requant_chain(x, chain), requant_chain(x, merged))
    assert merge_shifts(chain, 22) == chain          # x << 4 of a 22-bit integer overflows 24 bits
    assert merge_shifts((wide,), 16) == (wide,)      # a last widening step stays (it sets the type)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_avgpool_model_equals_csim(plain_model, tmp_path, io_type):
    hls_model = _convert(plain_model, tmp_path / "hls", io_type)
    graph = _check(hls_model, _grid((9, 9, 2)))
    assert graph["avg"].mode == "avg" and graph["c2"].window.padded is False


def test_conv1d_concat_io_stream(tmp_path):
    qk, keras = _qk()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = L.Input((16, 2))
    a = qk.QActivation(qk.quantized_relu(8))(qk.QConv1D(4, 3, padding="same", **_q8())(inp))
    b = qk.QActivation(qk.quantized_relu(8))(qk.QConv1D(2, 1, **_q8())(inp))
    h = L.Concatenate()([a, b])
    h = qk.QActivation(qk.quantized_relu(8))(qk.QConv1D(3, 3, strides=2, **_q8())(h))
    model = keras.Model(inp, qk.QDense(4, **_q8())(L.Flatten()(h)))
    _randomize(model, seed=3)
    graph = _check(_convert(model, tmp_path / "hls", "io_stream"), _grid((16, 2)), keras_model=model)
    assert "concat" in [n.kind for n in graph]


@pytest.mark.slow
def test_digits_cnn_8bit_equals_csim_and_keras(digits_cnn_qkeras, digits_images, tmp_path):
    """The zoo's 8-bit digits_cnn (trained), io_stream: the test split and random grid images."""
    from fpga_dnn import convert

    _, model = digits_cnn_qkeras
    x = convert.check_input(model, digits_images.x_test)
    hls_model = _convert(model, tmp_path / "hls", "io_stream")   # digits pixels: ufixed<5,1>
    data = np.concatenate([x, _grid(x.shape[1:], n=300)])
    graph = _check(hls_model, data, keras_model=model)
    assert len(data) >= 500 and any(n.kind == "conv" for n in graph)


def test_requant_int_matches_quantize_np_exhaustively():
    from fpga_dnn.hw.graph import Requant
    from fpga_dnn.hw.reference import requant_int
    from fpga_dnn.rtl.precision import OVERFLOW_MODES, ROUNDING_MODES, HlsType, quantize_np

    codes = np.arange(-600, 600)
    checked = 0
    for q in ROUNDING_MODES:
        for o in OVERFLOW_MODES:
            for s, w, i in [(True, 5, 2), (False, 4, 1), (True, 3, 4), (False, 6, 3)]:
                out = HlsType(s, w, i, q, o)
                for f_in in (out.f + 3, out.f, out.f - 2):
                    for relu in (False, True):
                        x = np.maximum(codes, 0) if relu else codes
                        want = np.ldexp(quantize_np(np.ldexp(x.astype(float), -f_in), out), out.f)
                        got = requant_int(codes, Requant(f_in - out.f, out, relu))
                        assert np.array_equal(got, want), (out, f_in, relu)
                        checked += 1
    assert checked == len(ROUNDING_MODES) * len(OVERFLOW_MODES) * 4 * 3 * 2


# ---------------------------------------------------------------------------------------------
# refusals: one line naming the layer and what is supported
# ---------------------------------------------------------------------------------------------

def test_saturating_accumulator_is_refused(tmp_path):
    from fpga_dnn.hw import lower
    from fpga_dnn.rtl.precision import UnsupportedPrecisionError

    qk, keras = _qk()
    inp = keras.layers.Input((8,))
    model = keras.Model(inp, qk.QDense(4, name="dsat", **_q8())(inp))
    _randomize(model)
    hls_model = _convert(model, tmp_path / "hls", "io_parallel",
                         precision={"dsat": {"accum": "fixed<12,4,TRN,SAT>"}})
    with pytest.raises(UnsupportedPrecisionError, match=r"'dsat'.*saturates") as err:
        lower.lower(hls_model)
    assert isinstance(err.value, FpgaDnnError) and "\n" not in str(err.value)


def test_unsupported_layer_is_named(tmp_path):
    from fpga_dnn.hw import lower

    qk, keras = _qk()
    L = keras.layers
    inp = L.Input((8,))
    h = L.Activation("sigmoid", name="squash")(qk.QDense(8, **_q8())(inp))
    model = keras.Model(inp, qk.QDense(4, **_q8())(h))
    with pytest.raises(UnsupportedLayerError) as err:
        lower.lower(_convert(model, tmp_path / "hls", "io_stream"))
    msg = str(err.value)
    assert "'squash'" in msg and "sigmoid" in msg and "streaming" in msg and "Conv2D" in msg
    assert err.value.supported == sorted(lower.supported_layers())


def test_folding_that_does_not_divide_names_layer_and_legal_values(skip_model, tmp_path):
    from fpga_dnn.hw import lower
    from fpga_dnn.hw.graph import Fold

    graph = lower.lower(_convert(skip_model, tmp_path / "hls", "io_stream"))
    with pytest.raises(ConfigError, match=r"'c2'.*pe=3 does not divide N=4 \(legal pe: 1, 2, 4\)"):
        graph.with_folds({"c2": Fold(3, 1)})
    with pytest.raises(ConfigError, match=r"'d'.*simd=3.*legal simd: 1, 2, 4, 8, 16"):
        graph.with_folds({"d": Fold(1, 3)})
    with pytest.raises(ConfigError, match=r"'nope'.*Conv/Dense layers: c1, c2, d"):
        graph.with_folds({"nope": Fold(1, 1)})
    assert graph.with_folds({"c2": Fold(2, 4)})["c2"].fold == Fold(2, 4)
