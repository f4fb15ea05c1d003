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
