"""Users' own models through every step, and the testbench premises that depend on a model's shape.

Part 1 (cheap, dummy core): the AXI-Stream testbench on each beat-ratio shape a user's model can
have (input beats >> output beats, the reverse, one beat each way) and on tiny and large sample
counts: every test, the credit check included, must pass whatever the shape.

Part 2 (the corpus): small user-style models built here (not zoo models), each through
convert -> csim -> rtl -> simulate (bulk emulation and the cocotb testbench), exact on the test
split and on the 2,000-sample probe set.
"""

from __future__ import annotations

import numpy as np
import pytest

from fpga_dnn.runtime.spec import FixedFormat
from fpga_dnn.simulate.cocotb_runner import run_axis_testbench
from fpga_dnn.simulate.shell import dummy_core_reference, dummy_core_spec, write_dummy_design

pytestmark = pytest.mark.slow

# name: (input elements, input format, output elements, output format, core latency, stream bits)
SHAPES = {
    # 48 x 8-bit lanes = 6 beats in, 1 x 8-bit out = 1 beat: the drain keeps up with the fill
    "in_heavy": ((48,), FixedFormat(False, 6, 1), (1,), FixedFormat(True, 8, 4), 3, 64),
    # 1 beat in, 12 x 32-bit lanes = 6 beats out
    "out_heavy": ((3,), FixedFormat(True, 7, 2), (12,), FixedFormat(True, 20, 8), 1, 64),
    # one beat each way, combinational core (the smallest FIFO)
    "one_one": ((4,), FixedFormat(True, 8, 3), (2,), FixedFormat(False, 8, 8), 0, 64),
}
SAMPLES = {"in_heavy": (2, 3000), "out_heavy": (2, 3000), "one_one": (2, 100_000)}


@pytest.fixture(scope="module")
def shape_designs(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    out = {}
    for name, (ishape, ifmt, oshape, ofmt, lat, bits) in SHAPES.items():
        spec = dummy_core_spec(f"shape_{name}", ishape, ifmt, oshape, ofmt, lat, stream_bits=bits)
        out[name] = write_dummy_design(spec, root / name)
    return out


def _inputs(spec, n, seed):
    from fpga_dnn.runtime.packing import int_range

    lo, hi = int_range(spec.input.format)
    return np.random.default_rng(seed).integers(lo, hi + 1, size=(n,) + spec.input.shape)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("size", [0, 1], ids=["few", "many"])
def test_testbench_holds_for_every_beat_ratio(shape, size, shape_designs, tmp_path):
    """Every testbench test passes, and the credit check really stalled s_axis, on each shape,
    for 2 samples and for thousands (100,000 on the one-beat design)."""
    design = shape_designs[shape]
    spec = design.spec
    n = SAMPLES[shape][size]
    q = _inputs(spec, n, seed=n)
    res = run_axis_testbench(design, q, dummy_core_reference(q, spec), run_dir=tmp_path, seed=3)
    assert not res.failures, f"{shape}/{n}: {res.failures} (log {res.log_path})"
    bp = res.metrics("test_backpressure")
    assert bp["in_stall_cycles"] > 0 and bp["out_stall_cycles"] > 0 and bp["in_bubble_cycles"] > 0
    assert (bp["in_beats"], bp["out_beats"]) == (spec.input.beats_per_sample, spec.output.beats_per_sample)
    assert res.metrics("test_batch")["samples"] == n
    assert res.metrics("test_latency_throughput")["latencies"] == [spec.total_latency] * 4
    assert res.metrics("test_reset_mid_stream")["samples_after_reset"] > 0


# ---------------------------------------------------------------------------------------------
# Part 2: a corpus of user-style models, each through `fpga-dnn sim` (convert -> csim -> rtl ->
# simulate with cocotb), exact on the test split and the 2,000-sample probe set.
# ---------------------------------------------------------------------------------------------

TEST_SAMPLES = 48


def _grid(rng, shape, fmt: FixedFormat, n=TEST_SAMPLES):
    lo, hi = int(round(fmt.min_value / fmt.step)), int(round(fmt.max_value / fmt.step))
    return rng.integers(lo, hi + 1, size=(n,) + shape).astype(np.float64) * fmt.step


def _qk():
    from fpga_dnn import kerasenv

    return kerasenv.qkeras(), kerasenv.tf_keras()


def _wq(qk, bits=5, integer=0):
    return dict(kernel_quantizer=qk.quantized_bits(bits, integer, alpha=1),
                bias_quantizer=qk.quantized_bits(bits, integer, alpha=1))


def _set_bn(layer, rng):
    c = layer.get_weights()[0].shape[0]
    layer.set_weights([rng.uniform(0.5, 2.0, c).astype("f4"), rng.uniform(-0.5, 0.5, c).astype("f4"),
                       rng.uniform(-0.3, 0.3, c).astype("f4"), rng.uniform(0.05, 0.6, c).astype("f4")])


def _prune(model, fraction, rng):
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            w = layer.get_weights()
            w[0] = w[0] * (rng.random(w[0].shape) >= fraction)
            layer.set_weights(w)


def bn_dense(rng):
    """QDense -> BatchNormalization -> quantized_relu(3,1): hls4ml's default BN types flip steps here
    (0.9975 on the probe set before BN types were derived)."""
    qk, k = _qk()
    inp = k.Input((13,), name="x")
    h = qk.QDense(8, **_wq(qk), name="d1")(inp)
    h = k.layers.BatchNormalization(name="bn1")(h)
    h = qk.QActivation(qk.quantized_relu(3, 1), name="r1")(h)
    out = qk.QDense(3, **_wq(qk, 6), name="d2")(h)
    m = k.Model(inp, out, name="bn_dense")
    _set_bn(m.get_layer("bn1"), rng)
    return m, FixedFormat(False, 5, 1)


def bn_conv2d(rng):
    """Signed image input; QConv2D stride 2 'same' -> BN -> quantized_relu(4,2) -> AveragePooling
    (2x2: hls4ml's default result type truncated the mean, 0/48 exact before it was derived)."""
    qk, k = _qk()
    inp = k.Input((6, 6, 2), name="img")
    h = qk.QConv2D(3, 3, strides=2, padding="same", **_wq(qk, 6, 0), name="c1")(inp)
    h = k.layers.BatchNormalization(name="bn1")(h)
    h = qk.QActivation(qk.quantized_relu(4, 2), name="r1")(h)
    h = k.layers.AveragePooling2D(2, name="avg")(h)
    h = k.layers.Flatten(name="flat")(h)
    out = qk.QDense(4, **_wq(qk), name="out")(h)
    m = k.Model(inp, out, name="bn_conv2d")
    _set_bn(m.get_layer("bn1"), rng)
    return m, FixedFormat(True, 6, 2)


def conv1d_pool(rng):
    """QConv1D stride 2 'same', MaxPooling1D, quantized_bits activation with odd width."""
    qk, k = _qk()
    inp = k.Input((12, 3), name="seq")
    h = qk.QConv1D(4, 3, strides=2, padding="same", **_wq(qk, 5), name="c1")(inp)
    h = qk.QActivation(qk.quantized_relu(5, 2), name="r1")(h)
    h = k.layers.MaxPooling1D(2, name="pool")(h)
    h = k.layers.Flatten(name="flat")(h)
    h = qk.QDense(6, **_wq(qk, 7, 1), name="d1")(h)
    h = qk.QActivation(qk.quantized_bits(7, 2, alpha=1), name="qb1")(h)
    out = qk.QDense(2, **_wq(qk), name="out")(h)
    return k.Model(inp, out, name="conv1d_pool"), FixedFormat(False, 4, 0)


def add_pruned(rng):
    """Functional graph with an Add skip connection and 75%-pruned kernels; 1 output."""
    qk, k = _qk()
    inp = k.Input((16,), name="x")
    a = qk.QDense(8, **_wq(qk), name="a")(inp)
    a = qk.QActivation(qk.quantized_relu(4, 1), name="ra")(a)
    b = qk.QDense(8, **_wq(qk), name="b")(a)
    b = qk.QActivation(qk.quantized_relu(4, 1), name="rb")(b)
    h = k.layers.Add(name="skip")([a, b])
    out = qk.QDense(1, **_wq(qk, 6), name="out")(h)
    m = k.Model(inp, out, name="add_pruned")
    _prune(m, 0.75, rng)
    return m, FixedFormat(True, 8, 3)


def concat_branches(rng):
    """Two branches joined by Concatenate; 1 input beat (6 x 8-bit lanes in a 64-bit beat)."""
    qk, k = _qk()
    inp = k.Input((6,), name="x")
    a = qk.QDense(5, **_wq(qk), name="a")(inp)
    a = qk.QActivation(qk.quantized_relu(3, 0), name="ra")(a)
    b = qk.QDense(3, **_wq(qk, 4), name="b")(inp)
    b = qk.QActivation(qk.quantized_bits(5, 1, alpha=1), name="qb")(b)
    h = k.layers.Concatenate(name="cat")([a, b])
    out = qk.QDense(3, **_wq(qk), name="out")(h)
    return k.Model(inp, out, name="concat_branches"), FixedFormat(False, 6, 1)


def wide_out(rng):
    """Out >> in: 2 inputs, 20 outputs."""
    qk, k = _qk()
    inp = k.Input((2,), name="x")
    h = qk.QDense(20, **_wq(qk, 8, 2), name="out")(inp)
    return k.Model(inp, h, name="wide_out"), FixedFormat(True, 8, 2)


def qkeras_softmax(rng):
    """A QKeras classifier ending in Activation('softmax')."""
    qk, k = _qk()
    inp = k.Input((10,), name="x")
    h = qk.QDense(8, **_wq(qk), name="d1")(inp)
    h = qk.QActivation(qk.quantized_relu(4, 1), name="r1")(h)
    h = qk.QDense(4, **_wq(qk), name="logits")(h)
    out = k.layers.Activation("softmax", name="softmax")(h)
    return k.Model(inp, out, name="qkeras_softmax"), FixedFormat(False, 5, 1)


def _hgq_scopes():
    from fpga_dnn import kerasenv

    kerasenv.hgq()
    from hgq.config import LayerConfigScope, QuantizerConfigScope

    return (QuantizerConfigScope(place=("weight", "bias"), default_q_type="kbi", overflow_mode="SAT_SYM",
                                 b0=4, i0=0, trainable=False),
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="SAT", round_mode="RND",
                                 i0=2, f0=3, trainable=False),
            LayerConfigScope(enable_ebops=False, beta0=0.0))


def _hgq_init(model, rng):
    for layer in model.layers:  # untrained weights are near zero: spread them over the grid
        if hasattr(layer, "kernel"):
            ws = layer.get_weights()
            ws[0] = rng.uniform(-1, 1, ws[0].shape).astype("f4")
            layer.set_weights(ws)


def hgq2_conv(rng):
    """An HGQ2 conv net: QConv2D stride 1 + QMaxPool + QDense."""
    from fpga_dnn import kerasenv

    keras, hgq = kerasenv.keras3(), kerasenv.hgq()
    s1, s2, s3 = _hgq_scopes()
    with s1, s2, s3:
        H = hgq.layers
        inp = keras.Input((6, 6, 1), name="model_input")
        h = H.QConv2D(3, 3, activation="relu", name="conv0")(inp)
        h = H.QMaxPool2D(2, name="pool0")(h)
        h = keras.layers.Flatten(name="flatten")(h)
        out = H.QDense(3, name="logits")(h)
    m = keras.Model(inp, out, name="hgq2_conv")
    _hgq_init(m, rng)
    return m, FixedFormat(False, 5, 1)


def hgq2_softmax(rng):
    """An HGQ2 classifier ending in QSoftmax."""
    from fpga_dnn import kerasenv

    keras, hgq = kerasenv.keras3(), kerasenv.hgq()
    s1, s2, s3 = _hgq_scopes()
    with s1, s2, s3:
        H = hgq.layers
        inp = keras.Input((8,), name="model_input")
        h = H.QDense(6, activation="relu", name="d1")(inp)
        h = H.QDense(4, name="logits")(h)
        out = H.QSoftmax(name="softmax")(h)
    m = keras.Model(inp, out, name="hgq2_softmax")
    _hgq_init(m, rng)
    return m, FixedFormat(False, 5, 1)


CORPUS = {f.__name__: f for f in (bn_dense, bn_conv2d, conv1d_pool, add_pruned, concat_branches, wide_out,
                                  qkeras_softmax, hgq2_conv, hgq2_softmax)}


def _save_user_model(name, folder):
    """Build, save (as a user would) and return (model path, data path)."""
    from fpga_dnn.modelio import framework_of

    rng = np.random.default_rng(sum(map(ord, name)))
    model, fmt = CORPUS[name](rng)
    x = _grid(rng, tuple(model.input_shape[1:]), fmt)
    path = folder / (f"{name}.keras" if framework_of(model) == "hgq2" else f"{name}.h5")
    model.save(path)
    y = np.asarray(model.predict(x, verbose=0)).reshape(len(x), -1).argmax(1)
    np.savez(folder / f"{name}.npz", x_test=x, y_test=y)
    return path, folder / f"{name}.npz"


@pytest.mark.extended
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_user_model_through_sim(name, tmp_path, capsys):
    """`fpga-dnn sim MODEL --data DATA` exits 0; every comparison 1.0 on the test split and the
    probe set, cocotb included; names come from the file."""
    import json

    from fpga_dnn.cli import main

    path, data = _save_user_model(name, tmp_path)
    build = tmp_path / "build"
    code = main(["sim", str(path), "--data", str(data), "--build-dir", str(build)])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    rep = json.loads((build / "report.json").read_text())
    assert rep["bit_exact"] == 1.0 and rep["probe_exact"] == 1.0
    assert rep["probe_exact_samples"] == "2000/2000"
    assert rep["rtl_exact_csim"] == 1.0 and rep["rtl_probe_exact"] == 1.0
    assert rep["tb_passed"] == "all" and rep["tb_exact"] == f"{TEST_SAMPLES + 2000}/{TEST_SAMPLES + 2000}"
    assert rep["model"] == path.name and rep["bits"] != "w8/a8"
    if "softmax" in name:
        assert rep["rtl_compared_with"].startswith("Keras logits")
    assert (build / "rtl" / f"{name}_axis.v").is_file()
    spec = json.loads((build / "rtl" / "spec.json").read_text())
    assert spec["top_module"] == f"{name}_axis" and "rtl_design" not in spec["extra"]
    assert "cuInit" not in err and "cudart" not in err


# ---------------------------------------------------------------------------------------------
# One model, one target, names from the model, bundles with nothing of the build machine
# ---------------------------------------------------------------------------------------------

def _file_flow(tmp_path, model_file, **sections):
    from fpga_dnn.flow import FlowConfig

    raw = {"flow": {"steps": ["convert", "csim"]}, "model": {"file": str(model_file), "data": "d.npz"}}
    for key, table in sections.items():
        raw.setdefault(key, {}).update(table)
    return FlowConfig.from_dict(raw, base_dir=tmp_path)


def test_model_is_a_zoo_name_or_a_file_never_both(tmp_path):
    from fpga_dnn.errors import ConfigError
    from fpga_dnn.flow import FlowConfig

    cfg = _file_flow(tmp_path, "my-net v2.h5")
    assert cfg.model.zoo is None and cfg.model_name() == "my_net_v2"
    assert _file_flow(tmp_path, "3layers.h5").model_name() == "m_3layers"
    assert _file_flow(tmp_path, "my_net.h5", rtl={"name": "custom"}).model_name() == "custom"
    zoo = FlowConfig.from_dict({})
    assert zoo.model.zoo == "digits_mlp" and zoo.model_name() == "digits_mlp"
    with pytest.raises(ConfigError, match="zoo model .* and a file"):
        FlowConfig.from_dict({"flow": {"steps": ["convert"]}, "model": {"zoo": "jet_mlp", "file": "a.h5", "data": "d.npz"}})


def test_one_target_board_everywhere(tmp_path):
    """[flow] board = ultra96: the hls4ml part, the RTL clock, the compression cost model (the flow's
    own convert/RTL options), the first estimate and the overlay all follow it; two different boards
    named is an error."""
    from fpga_dnn.boards import load_board
    from fpga_dnn.errors import ConfigError
    from fpga_dnn.flow import _cost_options

    cfg = _file_flow(tmp_path, "my_net.h5", flow={"board": "ultra96"}, rtl={"latency_cutoff": 3.0},
                     convert={"reuse_factor": 2})
    u96 = load_board("ultra96")
    assert cfg.target_board() == "ultra96"
    assert cfg.convert_options().part == u96.part == "xczu3eg-sbva484-1-e"
    assert cfg.clock_mhz() == u96.pl_clock_mhz
    assert cfg.estimate_boards() == ["ultra96", "pynq-z2"]
    cost = _cost_options(cfg)
    assert cost["family"] == "xcup" and cost["latency_cutoff"] == 3.0
    assert cost["convert_options"].part == u96.part and cost["convert_options"].reuse_factor == 2
    assert _file_flow(tmp_path, "n.h5", convert={"board": "ultra96"}).convert_options().part == u96.part
    with pytest.raises(ConfigError, match="one target board"):
        _file_flow(tmp_path, "n.h5", convert={"board": "ultra96"}, overlay={"board": "pynq-z2"})
    with pytest.raises(ConfigError, match="leave out the flow's target"):
        _file_flow(tmp_path, "n.h5", flow={"board": "ultra96"}, estimate={"boards": ["pynq-z2"]})


def test_my_net_names_and_a_bundle_without_build_paths(tmp_path):
    """my_net.h5 for the Ultra96 through convert -> csim -> rtl -> overlay (scripts) -> deploy: the
    RTL is my_net_core / my_net_axis in files, spec and bundles; hls4ml got the Ultra96's part; no
    spec in a bundle names a path outside the bundle."""
    import json

    from fpga_dnn.flow import FlowConfig, run_flow

    rng = np.random.default_rng(5)
    model, fmt = wide_out(rng)
    model.save(tmp_path / "my_net.h5")
    np.savez(tmp_path / "d.npz", x_test=_grid(rng, (2,), fmt, 16))
    cfg = FlowConfig.from_dict({"flow": {"steps": ["convert", "csim", "rtl", "overlay", "deploy"], "board": "ultra96"},
                                "model": {"file": "my_net.h5", "data": "d.npz"}, "csim": {"probe_samples": 200},
                                "overlay": {"vivado": False}}, base_dir=tmp_path)
    build = tmp_path / "build"
    rep = run_flow(cfg, build)
    assert rep.values["bits"] == "w8"  # read from the model's quantizers (it has no activation quantizer)
    assert (build / "rtl" / "my_net_axis.v").is_file()
    assert any(p.name.startswith("my_net_core") for p in (build / "rtl" / "core" / "src").iterdir())
    assert "xczu3eg-sbva484-1-e" in (build / "hls" / "hls4ml_config.yml").read_text()
    # The sim bundle the deploy step ran, and the Ultra96 bundle the overlay scripts fill in (inside
    # the overlay folder until Vivado has run: nothing is copied to build/bundle before then).
    specs = sorted(build.glob("bundle/*/spec.json")) + sorted(build.glob("overlay/ultra96-rtl/bundle/spec.json"))
    assert [p.parent.name if p.parent.name != "bundle" else p.parent.parent.name for p in specs] == ["sim", "ultra96-rtl"]
    for path in specs:
        spec = json.loads(path.read_text())
        assert spec["name"] == "my_net" and spec["top_module"] == "my_net_axis"

        def strings(v):
            if isinstance(v, dict):
                for x in v.values():
                    yield from strings(x)
            elif isinstance(v, list):
                for x in v:
                    yield from strings(x)
            elif isinstance(v, str):
                yield v

        for s in strings(spec):
            assert str(tmp_path) not in s and not s.startswith("/"), f"{path}: {s!r} names the build machine"


def _cli_error(capsys, argv):
    from fpga_dnn.cli import main

    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    return err[-1]


def test_heterogeneous_lut_is_one_line_exit_2(tmp_path, capsys):
    """hls4ml's config builder asserts on an HGQ2 QUnaryFunctionLUT with a heterogeneous table:
    one line, exit 2, no traceback."""
    from fpga_dnn import kerasenv

    keras, hgq = kerasenv.keras3(), kerasenv.hgq()
    inp = keras.Input((4,), name="model_input")
    h = hgq.layers.QDense(4, name="d")(inp)
    h = hgq.layers.QUnaryFunctionLUT(keras.ops.tanh, name="lut")(h)
    keras.Model(inp, h, name="lutnet").save(tmp_path / "lut.keras")
    np.savez(tmp_path / "lut.npz", x_test=np.arange(32).reshape(8, 4) / 32)
    line = _cli_error(capsys, ["csim", str(tmp_path / "lut.keras"), "--data", str(tmp_path / "lut.npz"),
                               "--build-dir", str(tmp_path / "b")])
    assert line.startswith("fpga-dnn csim: error: hls4ml cannot configure 'lutnet'") and "Heterogeneous" in line


def test_several_inputs_is_one_line_exit_2(tmp_path, capsys):
    qk, k = _qk()
    a, b = k.Input((12, 7), name="a"), k.Input((12, 7), name="b")
    h = k.layers.Concatenate(name="cat")([a, b])
    out = qk.QDense(2, **_wq(qk), name="out")(k.layers.Flatten(name="f")(h))
    k.Model([a, b], out, name="two_in").save(tmp_path / "two.h5")
    np.savez(tmp_path / "two.npz", x_test=np.zeros((4, 12, 7)))
    line = _cli_error(capsys, ["csim", str(tmp_path / "two.h5"), "--data", str(tmp_path / "two.npz"),
                               "--build-dir", str(tmp_path / "b")])
    assert "has 2 inputs; models with several inputs are not supported" in line


def test_bn_default_types_flip_and_derived_types_do_not(tmp_path):
    """The corpus' bn_dense is a model on which hls4ml's default BN types (fixed<16,6>) flip
    quantized-ReLU steps on the probe set; with the derived types it is exact on all 2,000."""
    from fpga_dnn import convert, csim

    model, fmt = bn_dense(np.random.default_rng(sum(map(ord, "bn_dense"))))
    default = convert.ConvertOptions(precision_overrides={"bn1": {"scale": "fixed<16,6>", "bias": "fixed<16,6>"}})
    results = {}
    for tag, opts in (("default", default), ("derived", convert.ConvertOptions())):
        conv = convert.convert(model, _grid(np.random.default_rng(0), (13,), fmt), opts, output_dir=tmp_path / tag)
        csim.compile_model(conv.hls_model)
        results[tag] = (conv, csim.run_probes(conv.hls_model, model, conv.input_format))
    conv_d, probe_d = results["default"]
    assert probe_d.exact_fraction < 1.0, "the default BN types no longer flip anything: pick another model"
    conv, probe = results["derived"]
    assert probe.exact_fraction == 1.0 and probe.n_samples == 2000
    assert conv.info["batchnorm_types"]["bn1"]["scale"] != "fixed<16,6>"
    assert "bn1" not in conv.unguaranteed
