"""Exact BatchNormalization constants (:mod:`fpga_dnn.bnexact`) and the true range of a conv.

Unit tests on a synthetic float32 BN (numpy, no Keras): the bisection finds exactly the runs a full
enumeration finds, the closed-form constants replay every code, and a step no affine map can
make is counted, not hidden. Then a user's Conv -> BatchNormalization -> quantized ReLU CNN whose
accumulator is too wide to enumerate: C-sim equals Keras on the test split and the probe set, and
the streamed RTL equals C-sim.
"""

from __future__ import annotations

import numpy as np
import pytest

import fpga_dnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from fpga_dnn import bnexact
from fpga_dnn.fixedpoint import FixedFormat
from fpga_dnn.rtl.precision import quantize_np

T_OUT = FixedFormat(False, 4, 0, "RND_CONV", "SAT")   # quantized_relu(4,0) in hls4ml


def _float32_bn(inv, off, f_in, t_out=T_OUT, relu=True):
    """A BN + quantized activation as Keras computes it: float32 x*inv + off, then the quantizer."""
    inv, off = np.float32(inv), np.float32(off)

    def levels_of(codes):
        x = np.ldexp(np.asarray(codes, np.float64), -f_in).astype(np.float32)
        y = (x * inv + off).astype(np.float64)
        y = np.maximum(y, 0) if relu else y
        return np.rint(np.ldexp(quantize_np(y, t_out), t_out.f)).astype(np.int64)

    return levels_of


def _enumerated(levels_of, lo, hi):
    """Every code of every channel: (codes per channel, levels per channel)."""
    n = max(h - l for l, h in zip(lo, hi)) + 1
    codes = np.array([np.minimum(np.arange(l, l + n), h) for l, h in zip(lo, hi)]).T
    q = levels_of(codes)
    return [codes[: h - l + 1, c] for c, (l, h) in enumerate(zip(lo, hi))], \
        [q[: h - l + 1, c] for c, (l, h) in enumerate(zip(lo, hi))]


def _replay(fit, codes, f_in, t_out=T_OUT, relu=True):
    """hls4ml's integer arithmetic, cast(x*S + B), on every code of channel c."""
    out = []
    for c, v in enumerate(codes):
        r = v.astype(object) * int(fit.scale[c]) + (int(fit.bias[c]) << f_in)
        out.append(np.asarray(bnexact._int_cast(r, f_in + fit.frac, t_out, relu), dtype=np.int64))
    return out


def test_acc_bounds_are_the_extremes_over_every_input():
    """Per channel max/min of bias + w @ x, checked against all 3**4 inputs of a 3-code type."""
    from fpga_dnn.hw.ranges import acc_bounds

    rng = np.random.default_rng(0)
    w, b = rng.integers(-5, 6, (3, 4)), rng.integers(-3, 4, 3)
    lo, hi = acc_bounds(w, b, -1, 1)
    grid = np.array(np.meshgrid(*[[-1, 0, 1]] * 4)).reshape(4, -1)
    sums = w @ grid + b[:, None]
    assert list(lo) == list(sums.min(1)) and list(hi) == list(sums.max(1))
    # exact beyond int64: the sums are Python integers
    lo, hi = acc_bounds(np.full((1, 4), 1 << 40), [0], -(1 << 30), 1 << 30)
    assert int(hi[0]) == 4 << 70 and int(lo[0]) == -(4 << 70)


def test_bisection_finds_the_runs_of_an_enumeration():
    """level_runs on a 5-channel float32 BN over a 2**17-code range (negative scale included):
    its runs are exactly those of enumerating every code."""
    f_in = 10
    inv = [0.97, 1.31, -0.7, 2.5e-3, 0.0]
    off = [0.03, -0.2, 0.4, 0.51, 0.3]
    lo, hi = [-40_000, -65_536, -30_000, 0, -5], [65_535, 50_000, 12_345, 65_535, 5]
    fn = _float32_bn(inv, off, f_in)
    runs = bnexact.level_runs(fn, lo, hi)
    codes, levels = _enumerated(fn, lo, hi)
    for c in range(len(lo)):
        change = np.flatnonzero(np.diff(levels[c])) + 1
        assert runs.starts[c] == [lo[c]] + list(codes[c][change]), c
        assert runs.levels[c] == [int(levels[c][0])] + list(levels[c][change]), c
    assert runs.pairs() == sum(h - l + 1 for l, h in zip(lo, hi))


def test_closed_form_constants_replay_every_code():
    """fit_constants' scale/bias, replayed in hls4ml's integer arithmetic on every code of every
    channel, give Keras's (float32) level: no mismatch, at a small fraction width."""
    f_in = 9
    rng = np.random.default_rng(3)
    inv, off = rng.uniform(0.4, 2.0, 6).astype("f4"), rng.uniform(-0.5, 0.5, 6).astype("f4")
    inv[2] = -inv[2]
    lo, hi = [-3000] * 6, [3000] * 6
    fn = _float32_bn(inv, off, f_in)
    fit = bnexact.fit_constants(bnexact.level_runs(fn, lo, hi), f_in, T_OUT, True, inv, off)
    codes, levels = _enumerated(fn, lo, hi)
    assert not fit.unmatched.any() and fit.frac <= 24
    for c, (got, want) in enumerate(zip(_replay(fit, codes, f_in), levels)):
        assert np.array_equal(got, want), c
    # hls4ml's default, 10 fraction bits rounded, is not exact here (why the types are derived)
    s10, b10 = np.round(inv.astype(np.float64) * 1024), np.round(off.astype(np.float64) * 1024)
    default = bnexact.Fit(10, s10.astype(np.int64), b10.astype(np.int64), None, 0)
    assert any(not np.array_equal(g, w) for g, w in zip(_replay(default, codes, f_in), levels))


def test_a_step_no_affine_map_makes_is_counted():
    """Runs whose steps are not those of any x*s + b (one boundary moved by 3 codes): the closest
    constants are returned with the exact number of codes they map to another level."""
    f_in = 6
    fn = _float32_bn([1.0], [0.0], f_in)
    runs = bnexact.level_runs(fn, [0], [1000])
    runs.starts[0][5] += 3          # level 5 starts 3 codes late
    runs.ends[0][4] += 3
    fit = bnexact.fit_constants(runs, f_in, T_OUT, True, [1.0], [0.0])
    codes = [np.arange(0, 1001)]
    want = np.repeat(runs.levels[0], np.array(runs.ends[0]) - np.array(runs.starts[0]) + 1)
    wrong = int(np.count_nonzero(_replay(fit, codes, f_in)[0] != want))
    assert fit.unmatched[0] == wrong and 0 < wrong <= 3 and fit.pairs == 1001
    assert f"{wrong} of 1,001 reachable (value, channel) pairs cannot be matched" in bnexact._reason_unmatched(fit)


# ---------------------------------------------------------------------------------------------
# A user's Conv -> BatchNormalization -> quantized ReLU CNN, too wide to enumerate
# ---------------------------------------------------------------------------------------------

IN_FMT = FixedFormat(False, 8, 0)   # 8-bit pixels in [0, 1)
N_TEST = 200


def _user_cnn():
    """Built as a user would: functional graph, odd sizes, a float keras BatchNormalization between
    the QConv2D and its quantized ReLU, trained a few steps on labelled-synthetic images."""
    from fpga_dnn.kerasenv import qkeras, tf_keras

    qk, keras = qkeras(), tf_keras()
    keras.utils.set_random_seed(7)
    q8 = dict(kernel_quantizer=qk.quantized_bits(8, 0, alpha=1), bias_quantizer=qk.quantized_bits(8, 0, alpha=1))
    inp = keras.Input((9, 9, 2), name="img")
    h = qk.QConv2D(5, 3, name="conv", **q8)(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = qk.QActivation("quantized_relu(4,0)", name="relu")(h)
    h = keras.layers.Flatten(name="flat")(h)
    model = keras.Model(inp, qk.QDense(3, name="out", **q8)(h), name="user_bn_cnn")
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(600 + N_TEST, 9, 9, 2)) / 256.0
    y = (x[..., 0].mean((1, 2)) > x[..., 1].mean((1, 2))).astype(int) + (x[:, 4, 4, 0] > 0.5)  # 3 classes
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:600], y[:600], epochs=3, batch_size=32, verbose=0)  # moves the BN's moving statistics too
    return model, x[600:]


@pytest.fixture(scope="module")
def user_cnn(tmp_path_factory):
    from fpga_dnn.convert import ConvertOptions, convert
    from fpga_dnn.csim import compile_model

    model, x_test = _user_cnn()
    conv = convert(model, x_test, ConvertOptions(io_type="io_stream"), output_dir=tmp_path_factory.mktemp("hls"))
    compile_model(conv.hls_model)
    return model, x_test, conv


def test_user_cnn_bn_is_exact_on_test_split_and_probes(user_cnn):
    from fpga_dnn import csim
    from fpga_dnn.rtl.precision import HlsType

    model, x_test, conv = user_cnn
    bn = conv.hls_model.graph["bn"]
    t_in = HlsType.from_hls4ml(bn.get_input_variable().type.precision, "bn input")
    # the premise: the BN's input (the conv's accumulator) is too wide to enumerate every code
    assert t_in.width > 20, t_in
    assert conv.input_format == IN_FMT and "bn" not in conv.unguaranteed, conv.unguaranteed
    assert set(conv.info["batchnorm_types"]["bn"]) == {"scale", "bias"}
    ours = np.asarray(conv.hls_model.predict(np.ascontiguousarray(x_test))).reshape(N_TEST, -1)
    keras = model.predict(x_test, verbose=0)
    assert np.all(ours == keras, axis=1).mean() == 1.0
    probe = csim.run_probes(conv.hls_model, model, conv.input_format)
    assert probe.n_samples == 2000 and probe.exact_fraction == 1.0, probe.first_mismatch


@pytest.mark.slow
def test_user_cnn_streamed_equals_csim_and_keras(user_cnn, tmp_path_factory):
    """The same model as streaming RTL (Verilator): equal to C-sim and Keras on the test split,
    and under random bubbles and backpressure."""
    from fpga_dnn.rtl.build import RtlOptions, build_stream_rtl
    from fpga_dnn.simulate.stream_emulator import check_stream

    model, x_test, conv = user_cnn
    d = tmp_path_factory.mktemp("stream")
    folding = d / "folding.toml"
    folding.write_text("[conv]\npe = 5\nsimd = 2\n[out]\npe = 3\nsimd = 5\n")
    build = build_stream_rtl(conv.hls_model, d / "rtl", name="user_bn_cnn",
                             opts=RtlOptions(architecture="streaming", folding=str(folding)))
    csim_out = np.asarray(conv.hls_model.predict(np.ascontiguousarray(x_test))).reshape(N_TEST, -1)
    rep = check_stream(build, x_test, csim_out, model.predict(x_test, verbose=0))
    assert rep.failures() == [] and rep.exact_csim == rep.exact_keras == rep.exact_reference == 1.0, rep
    assert rep.backpressure_exact == 1.0 and rep.tlast_ok


def test_float_relu_after_bn_is_named_with_what_is_accepted(tmp_path):
    """A plain keras Activation('relu') after the BN keeps Keras's float32 values: convert says so
    in one line, naming both layers and the accepted form (a QActivation quantizer)."""
    from fpga_dnn.convert import ConvertOptions, convert
    from fpga_dnn.kerasenv import qkeras, tf_keras

    qk, keras = qkeras(), tf_keras()
    q6 = dict(kernel_quantizer=qk.quantized_bits(6, 0, alpha=1), bias_quantizer=qk.quantized_bits(6, 0, alpha=1))
    inp = keras.Input((7,), name="x")
    h = keras.layers.Activation("relu", name="act")(keras.layers.BatchNormalization(name="bn")(qk.QDense(4, name="d1",
                                                                                                         **q6)(inp)))
    model = keras.Model(inp, qk.QDense(2, name="d2", **q6)(h), name="float_relu")
    conv = convert(model, None, ConvertOptions(input_precision="ufixed<4,0>"), output_dir=tmp_path, write=False)
    why = conv.unguaranteed["bn"]
    assert "\n" not in why and "'act'" in why and "float Activation" in why, why
    assert "accepted after a BatchNormalization: a QActivation quantizer" in why, why
    assert "bn" not in conv.info["batchnorm_types"]
