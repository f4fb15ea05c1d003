"""The MLPerf Tiny zoo models (rn07, resnet8, ad08) on their labelled-synthetic data: architecture,
a very short training run through the real train step, conversion with hls4ml, and hls4ml C-sim
bit-exact with Keras on a handful of samples.

Cost (measured, 2 cores shared): one training epoch 13 s (rn07), 31 s (resnet8), 27 s (ad08);
hls4ml io_stream compile 19 s (rn07), 57 s (resnet8), 41 s (ad08; io_parallel 36 s); io_stream
C-sim of the CNNs runs at about 1-2 samples/s, so those checks use 6 samples. The full test sets
go through the streaming RTL (the stream flow tests and the bench).
"""

import numpy as np
import pytest

from fpga_dnn import csim, data, models, train
from fpga_dnn.convert import ConvertOptions, check_input, convert
from fpga_dnn.errors import ConfigError, DataError
from fpga_dnn.modelio import load_model

CSIM_SAMPLES = {"rn07": 6, "resnet8": 6, "ad08": 200}


def _conv_layers(m):
    return [l for l in m.layers if type(l).__name__ in ("QConv2D", "Conv2D")]


def test_rn07_is_hls4mls_topology():
    m = models.build_model("rn07", "qkeras")
    assert m.input_shape == (None, 32, 32, 3) and m.output_shape == (None, 10)
    convs = [(l.filters, l.kernel_size[0], l.strides[0], l.padding) for l in _conv_layers(m)]
    assert convs == [(32, 1, 1, "same"), (4, 4, 1, "same"), (32, 4, 1, "same"), (32, 4, 4, "same"),
                     (32, 4, 1, "same")]
    assert m.get_layer("flatten").output_shape == (None, 8 * 8 * 32)
    assert m.get_layer("conv3").kernel_quantizer_internal.bits == 8
    assert m.get_layer("relu0").quantizer.bits == 8


def test_resnet8_is_the_mlperf_reference():
    m = models.build_model("resnet8", "qkeras")
    assert m.input_shape == (None, 32, 32, 3) and m.output_shape == (None, 10)
    kinds = [type(l).__name__ for l in m.layers]
    assert kinds.count("Add") == 3 and kinds.count("BatchNormalization") == 7
    assert [l.filters for l in _conv_layers(m)] == [16, 16, 16, 32, 32, 32, 64, 64, 64]
    # stride-2 downsampling in stacks 2 and 3 (main path and 1x1 projection)
    assert {l.name for l in _conv_layers(m) if l.strides == (2, 2)} == {"conv2a", "skip2", "conv3a", "skip3"}
    assert m.get_layer("add3").output_shape == (None, 8, 8, 64)
    assert 75_000 < m.count_params() < 80_000  # the reference has 78k parameters (BN included)


def test_ad08_is_the_hls4ml_autoencoder():
    m = models.build_model("ad08", "qkeras")
    assert m.input_shape == (None, 64) and m.output_shape == (None, 64)
    assert [l.units for l in m.layers if hasattr(l, "units")] == [72, 72, 8, 72, 72, 64]
    assert [type(l).__name__ for l in m.layers[1:4]] == ["QDense", "BatchNormalization", "QActivation"]


def test_mlperf_models_refuse_hgq2():
    with pytest.raises(ConfigError, match="qkeras and float only"):
        models.build_model("rn07", "hgq2")


def test_synthetic_sets_are_learnable_but_not_trivial():
    ds = data.load_dataset("shapes_synthetic")
    assert ds.input_shape == (32, 32, 3) and len(ds.x_test) >= 200
    assert np.bincount(ds.y_test).min() == np.bincount(ds.y_test).max()  # balanced
    assert ds.input_format.on_grid(ds.x_train).all() and "SYNTHETIC" in ds.description
    # not separable by the mean colour (what a trivial set would allow)
    from sklearn.linear_model import LogisticRegression

    feats = lambda x: x.mean(axis=(1, 2))  # noqa: E731
    lr = LogisticRegression(max_iter=500).fit(feats(ds.x_train), ds.y_train)
    assert lr.score(feats(ds.x_test), ds.y_test) < 0.3
    ad = data.load_dataset("anomaly_synthetic")
    assert (ad.y_train == 0).all() and 0.4 < ad.y_test.mean() < 0.6 and ad.input_format.on_grid(ad.x_test).all()


def test_auc():
    assert data.anomaly_auc([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]) == 1.0
    assert data.anomaly_auc([0.4, 0.3, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert data.anomaly_auc([0.5, 0.5], [0, 1]) == 0.5
    with pytest.raises(DataError, match="both"):
        data.anomaly_auc([0.1], [1])


def test_snap_batchnorm_keeps_the_function_on_the_grid():
    m = models.build_model("ad08", "float")
    rng = np.random.default_rng(0)
    for l in m.layers:
        if type(l).__name__ == "BatchNormalization":
            c = l.get_weights()[0].shape[0]
            l.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.3, c), rng.uniform(0.5, 3, c)])
    x = rng.normal(0, 1, (64, 64)).astype(np.float32)
    before = m.predict(x, verbose=0)
    assert models.snap_batchnorm(m) == 5
    after = m.predict(x, verbose=0)
    for l in m.layers:
        if type(l).__name__ == "BatchNormalization":
            g, b, mean, var = l.get_weights()
            assert (mean == 0).all() and (np.float32(var) + np.float32(models.BN_EPSILON) == 1).all()
            assert (g * 2 ** models.BN_SCALE_FRAC == np.round(g * 2 ** models.BN_SCALE_FRAC)).all()
            assert (b * 2 ** models.BN_BIAS_FRAC == np.round(b * 2 ** models.BN_BIAS_FRAC)).all()
    assert np.abs(after - before).max() < 0.1 * np.abs(before).max()  # same function, rounded


@pytest.fixture(scope="module", params=["rn07", "resnet8", "ad08"])  # ~30 s train + 20-60 s compile each
def trained_mlperf(request, build_root):
    name = request.param
    res = train.train(name, "qkeras", models.Quant(), train.TrainConfig(epochs=1, float_baseline=False),
                      build_root / "mlperf" / name)
    return name, res


@pytest.mark.extended
@pytest.mark.slow
def test_train_convert_and_csim_bit_exact(trained_mlperf, build_root):
    name, res = trained_mlperf
    qat = res.meta["qat"]
    if name == "ad08":
        assert {"auc", "reconstruction_mse"} <= set(qat) and 0 <= qat["auc"] <= 1
    else:
        assert 0 <= qat["accuracy"] <= 1
    assert qat.get("batchnorm_snapped", False) == (name != "rn07")
    model, _ = load_model(res.model_path)
    x, y = data.load_data_file(res.data_path)
    x = check_input(model, x)[:CSIM_SAMPLES[name]]
    conv = convert(model, x, ConvertOptions(io_type="io_stream"), output_dir=build_root / "mlperf" / name)
    rep = csim.run_csim(conv.hls_model, model, x, None if name == "ad08" else y[:len(x)])
    assert rep.exact_fraction == 1.0, (name, rep.summary())


def test_folding_chooser_on_the_lowered_rn07():
    """The chooser on hw.lower's graph of rn07 (untrained weights: the shapes are what matter)."""
    from fpga_dnn.boards import load_board
    from fpga_dnn.hw import folding
    from fpga_dnn.hw.lower import lower

    m = models.build_model("rn07", "qkeras")
    x = data.load_dataset("shapes_synthetic").x_test[:2]
    conv = convert(m, x, ConvertOptions(io_type="io_stream"), write=False, quiet=True)
    graph = lower(conv.hls_model, name="rn07")
    assert [n.name for n in graph.matvec_nodes()] == ["conv0", "conv1", "conv2", "conv3", "conv4", "logits"]
    plan = folding.choose(graph, load_board("pynq-z2"), target_ips=2431)
    assert plan.cycles_per_frame <= 41_100 and plan.fits
    assert plan.resources.dsp <= 220 and plan.resources.bram36 <= 140


def test_shipped_rn07_stream_flow_file_loads():
    from pathlib import Path

    from fpga_dnn.flow import FlowConfig

    cfg = FlowConfig.load(Path(__file__).resolve().parent.parent / "fpga_dnn" / "configs" / "rn07_stream.toml")
    assert cfg.model.zoo == "rn07" and cfg.rtl.architecture == "streaming" and cfg.rtl.target_inf_per_s == 2431
    assert cfg.convert.io_type == "io_stream"
