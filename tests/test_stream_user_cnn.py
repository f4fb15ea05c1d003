"""The streaming flow's pace and exactness on the shapes users bring (each design built once per run).

* ``shell``: a bare 'same' conv whose 9x9x2 feature map is the output, so the output AXI-Stream
  shell (one element a cycle) sets the pace: measured cycles/frame, in the emulation and in the
  cocotb testbench, equal the chooser's prediction (the shell once spent a bubble cycle per
  output pixel: 3 cycles per 2-element pixel);
* ``user``: a functional QKeras CNN as a user writes one (odd, non-square input, 'same'
  padding, stride 2, a fully parallel padded conv after a folded one, Dense after Flatten):
  measured cycles/frame equal the prediction, the C-sim probe set (random inputs on the input
  grid) is exact through the streamed RTL, and the FIFO ahead of the unfolded padded conv is
  sized for its padding (the producer never waits on it);
* ``padburst``: a folded 1x1 conv (the pace) feeding a fully parallel 'same' 5x5 conv, whose
  generator takes no input through its padding rows: the FIFO between them holds a padding run
  (sized from the schedule), so the design runs at the predicted pace (365 instead of 324
  cycles/frame with the 2-deep edge FIFO).
"""

from __future__ import annotations

import numpy as np
import pytest

import fpga_dnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

from test_stream_flow import _build
from test_stream_lowering import _grid, _q8, _qk, _randomize

INPUT_FORMAT = "ufixed<5,1>"   # what _convert gives the models' inputs
N_PROBES = 1000


def _probes(shape, n=N_PROBES):
    from fpga_dnn.csim import probe_inputs
    from fpga_dnn.fixedpoint import FixedFormat

    return probe_inputs(FixedFormat.parse(INPUT_FORMAT), shape, n)


def _csim(hls_model, x):
    return np.asarray(hls_model.predict(np.ascontiguousarray(x, dtype=np.float64))).reshape(len(x), -1)


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """9x9x1 -> 'same' 3x3 conv, 2 filters, fully parallel: 81 output pixels of 2 elements."""
    qk, keras = _qk()
    keras.utils.set_random_seed(0)
    inp = keras.layers.Input((9, 9, 1))
    model = keras.Model(inp, qk.QConv2D(2, 3, padding="same", name="c1", **_q8())(inp))
    _randomize(model, seed=2)
    hls_model, build = _build(model, tmp_path_factory, "shellpace", {"c1": (2, 9)})
    return model, hls_model, build


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """13x11x1 -> conv 6 k3 stride 2 'same' (PE 3 of 6: 2 cycles a window) -> ReLU -> conv 5 k3 'same' (fully
    parallel) -> ReLU -> Flatten -> Dense 4, written with the functional API."""
    qk, keras = _qk()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = L.Input((13, 11, 1), name="image")
    h = qk.QConv2D(6, 3, strides=2, padding="same", name="down", **_q8())(inp)
    h = qk.QActivation(qk.quantized_relu(8), name="relu1")(h)
    h = qk.QConv2D(5, 3, padding="same", name="same", **_q8())(h)
    h = qk.QActivation(qk.quantized_relu(8), name="relu2")(h)
    out = qk.QDense(4, name="logits", **_q8())(L.Flatten(name="flat")(h))
    model = keras.Model(inp, out, name="user_cnn")
    _randomize(model, seed=3)
    hls_model, build = _build(model, tmp_path_factory, "usercnn",
                              {"down": (3, 9), "same": (5, 54), "logits": (4, 5)})
    return model, hls_model, build


@pytest.fixture(scope="module")
def padburst(tmp_path_factory):
    """9x9x1 -> 1x1 conv, 4 filters at 4 cycles a pixel (the pace) -> ReLU -> 'same' 5x5 conv,
    1 filter, fully parallel: its generator takes no input through 4 padding rows a frame."""
    qk, keras = _qk()
    keras.utils.set_random_seed(0)
    inp = keras.layers.Input((9, 9, 1))
    h = qk.QActivation(qk.quantized_relu(8), name="r1")(qk.QConv2D(4, 1, name="c1", **_q8())(inp))
    model = keras.Model(inp, qk.QConv2D(1, 5, padding="same", name="c2", **_q8())(h))
    _randomize(model, seed=2)
    hls_model, build = _build(model, tmp_path_factory, "padburst", {"c1": (1, 1), "c2": (1, 100)})
    return model, hls_model, build


@pytest.mark.slow
def test_padding_fifo_keeps_the_producer_at_its_pace(padburst):
    """The FIFO ahead of the unfolded padded conv holds a whole padding run, (PT+PB)*Wp + PL+PR
    beats (+ margin), sized from the schedule: c1 never waits on c2's padding, and the design
    runs at c1's 324 cycles/frame, as predicted (365 with the 2-deep edge FIFO it had)."""
    from fpga_dnn.rtl.stream.stitch import padding_fifo_depth
    from fpga_dnn.simulate.stream_emulator import check_stream

    model, hls_model, build = padburst
    c2 = build.graph["c2"]
    assert build.plan.bottleneck == "c1" and build.plan.cycles_per_frame == 81 * 4 and c2.cycles_per_vector() == 1
    fifo = next(f for f in build.design.fifos if f.what == "c1 -> c2")
    assert fifo.depth == padding_fifo_depth(c2) == (2 + 2) * 13 + 4 + 4
    x = _grid((9, 9, 1), n=40, seed=8)
    rep = check_stream(build, x, _csim(hls_model, x), model.predict(x, verbose=0), backpressure_samples=10)
    assert rep.failures() == [] and rep.exact_keras == 1.0, rep
    assert rep.cycles_per_frame == build.plan.cycles_per_frame, (rep.cycles_per_frame, build.plan.cycles_per_frame)
    assert 2 < rep.fifo_max[fifo.what][0] < fifo.depth, rep.fifo_max   # it was used, and never filled


@pytest.mark.slow
def test_output_shell_streams_without_a_bubble(shell):
    """The output shell bounds this design (162 elements a frame, one a cycle): emulation and
    cocotb both measure exactly the predicted cycles/frame, and the outputs equal C-sim."""
    from fpga_dnn.hw import folding
    from fpga_dnn.rtl.stream.stitch import OUTPUT, burst_depth
    from fpga_dnn.runtime.packing import to_fixed
    from fpga_dnn.simulate.cocotb_runner import run_axis_testbench
    from fpga_dnn.simulate.stream_emulator import check_stream

    model, hls_model, build = shell
    assert build.plan.bottleneck == folding.OUTPUT_SHELL and build.plan.cycles_per_frame == 9 * 9 * 2
    # the conv's results stop for its quiet run (24 window-less steps from the last window of a
    # frame to the first of the next): the FIFO at the core's output holds what it ran ahead
    out_fifo = next(f for f in build.design.fifos if f.what == f"c1 -> {OUTPUT}")
    assert out_fifo.depth == burst_depth(build.graph["c1"]) == 24 + 4
    x = _grid((9, 9, 1), n=40, seed=4)
    rep = check_stream(build, x, _csim(hls_model, x), model.predict(x, verbose=0), backpressure_samples=10)
    assert rep.failures() == [] and rep.exact_keras == 1.0, rep
    assert rep.cycles_per_frame == build.plan.cycles_per_frame, (rep.cycles_per_frame, build.plan.cycles_per_frame)
    spec = build.spec
    codes = to_fixed(x, spec.input.format).reshape((len(x),) + spec.input.shape)
    expected = to_fixed(_csim(hls_model, x), spec.output.format).reshape((len(x),) + spec.output.shape)
    tb = run_axis_testbench(build.axis, codes, expected, testcases=["test_latency_throughput"],
                            options={"throughput_samples": len(x)})
    tb.raise_for_failures()
    m = tb.metrics("test_latency_throughput")
    assert m["interval_min"] == m["interval_max"] == build.plan.cycles_per_frame, m
    # it ran ahead beyond the 2-deep edge (c1 is the faster one, so it fills and c1 waits)
    assert rep.fifo_max[out_fifo.what][0] > 2, rep.fifo_max


@pytest.mark.slow
def test_user_cnn_probe_set_exact_at_the_predicted_pace(user):
    from fpga_dnn.rtl.stream.stitch import padding_fifo_depth
    from fpga_dnn.simulate.stream_emulator import check_stream

    model, hls_model, build = user
    x, probes = _grid((13, 11, 1), n=60, seed=6), _probes((13, 11, 1))
    rep = check_stream(build, x, _csim(hls_model, x), model.predict(x, verbose=0),
                       probe_x=probes, probe_csim=_csim(hls_model, probes))
    assert rep.failures() == [] and rep.first_mismatch is None, rep.failures()
    assert rep.exact_csim == rep.exact_keras == rep.exact_reference == rep.probe_exact == 1.0
    assert rep.probe_exact_samples == f"{N_PROBES}/{N_PROBES}"
    # the FIFO ahead of the fully parallel padded conv holds a padding run: (PT+PB)*Wp + PL+PR
    # (+ margin) beats (here the stride-2 conv's bursts would not have filled a 2-deep one
    # either: measured 195 cycles/frame both ways)
    same = build.graph["same"]
    assert same.cycles_per_vector() == 1
    fifo = next(f for f in build.design.fifos if f.what.endswith(" -> same"))
    assert fifo.depth == padding_fifo_depth(same) == 2 * 8 + 2 + 4
    assert rep.fifo_max[fifo.what][0] < fifo.depth, rep.fifo_max
    print(f"user CNN: {rep.cycles_per_frame} cycles/frame measured, {build.plan.cycles_per_frame} predicted; "
          f"probe set {rep.probe_exact_samples}")
    assert rep.cycles_per_frame == build.plan.cycles_per_frame, (rep.cycles_per_frame, build.plan.cycles_per_frame)
