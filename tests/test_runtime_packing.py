"""The spec (spec.json) and the beat-layout packing of fpga_dnn.runtime (numpy only, fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fpga_dnn.errors import ConfigError, DataError
from fpga_dnn.runtime.packing import (decode, encode, from_fixed, int_range, lane_bits_for, pack,
                                      to_fixed, unpack)
from fpga_dnn.runtime.spec import (SHELL_OVERHEAD_CYCLES, FixedFormat, PortSpec, Spec, SpecError,
                                   parse_format)


def port(shape, signed, width, integer, stream_bits):
    return PortSpec(tuple(shape), FixedFormat(signed, width, integer), stream_bits)


# ------------------------------------------------------------------ beat layout, byte for byte

@pytest.mark.parametrize("p, q, expected", [
    # signed 5-bit in 8-bit lanes, 32-bit stream: 3 lanes + 1 padding byte = 1 beat
    (port((3,), True, 5, 2, 32), [[-1, 5, -16]], "ff05f000"),
    # unsigned 12-bit in 16-bit lanes (zero-extended), 32-bit stream: 6 bytes -> 2 beats
    (port((3,), False, 12, 4, 32), [[0x123, 0xABC, 0x001]], "2301bc0a01000000"),
    # signed 20-bit in 32-bit lanes (sign-extended), 64-bit stream: 4 bytes -> 1 padded beat
    (port((1,), True, 20, 10, 64), [[-2]], "feffffff00000000"),
    # two samples: each starts on its own beat boundary
    (port((2,), True, 8, 8, 32), [[1, -1], [2, -2]], "01ff0000" "02fe0000"),
])
def test_beat_layout_bytes(p, q, expected):
    packed = pack(np.array(q), p)
    assert packed.tobytes().hex() == expected
    assert packed.shape == (len(q), p.sample_bytes)
    assert (unpack(packed, p) == np.array(q)).all()


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("width", [1, 5, 8, 9, 16, 17, 31, 32])
@pytest.mark.parametrize("stream_bits", [32, 64, 24])
def test_round_trip_all_lane_sizes(signed, width, stream_bits):
    p = port((3, 5), signed, width, 2, stream_bits)
    rng = np.random.default_rng(width)
    fmt = p.format
    lo, hi = int_range(fmt)
    q = rng.integers(lo, hi + 1, size=(17, 3, 5), dtype=np.int64)
    q[0] = lo
    q[1] = hi
    packed = pack(q, p)
    assert packed.size == 17 * p.sample_bytes
    assert (unpack(packed, p) == q).all()
    assert (unpack(packed.view(np.uint8).reshape(-1), p, batch=17) == q).all()


def test_pack_accepts_fortran_order_and_writes_into_dma_words():
    p = port((6,), True, 7, 3, 64)
    q = np.asfortranarray(np.arange(-9, 9).reshape(3, 6))
    words = np.full(3 * p.sample_bytes // 8 + 1, 0xDEADBEEF, dtype=np.uint64)  # reused buffer
    view = pack(q, p, out=words)
    assert view.base is not None and np.shares_memory(view, words)
    assert (unpack(words[:-1], p) == q).all()
    assert words[-1] == 0xDEADBEEF  # untouched past the batch


def test_unpack_reads_only_the_low_width_bits_like_the_shell():
    p = port((1,), True, 4, 4, 32)
    assert unpack(np.array([0x0F, 0, 0, 0], dtype=np.uint8), p)[0, 0] == -1
    assert unpack(np.array([0x7F, 0, 0, 0], dtype=np.uint8), p)[0, 0] == -1
    u = port((1,), False, 4, 4, 32)
    assert unpack(np.array([0xF7, 0, 0, 0], dtype=np.uint8), u)[0, 0] == 7


def test_pack_rejects_bad_batches():
    p = port((4,), False, 3, 3, 32)
    with pytest.raises(DataError, match="range"):
        pack(np.array([[0, 1, 2, 8]]), p)
    with pytest.raises(DataError, match="shape"):
        pack(np.zeros((2, 5), dtype=int), p)
    with pytest.raises(DataError, match="integers"):
        pack(np.zeros((2, 4)), p)
    with pytest.raises(DataError, match="whole samples"):
        unpack(np.zeros(6, dtype=np.uint8), p)


# ------------------------------------------------------------------ float <-> fixed policies

def test_to_fixed_exact_by_default_and_rounding_on_request():
    fmt = FixedFormat(True, 6, 3)  # step 1/8, range [-4, 3.875]
    assert to_fixed([0.125, -4.0, 3.875], fmt).tolist() == [1, -32, 31]
    with pytest.raises(DataError, match="not on the"):
        to_fixed([0.1], fmt)
    x = [0.0625, 0.1875, -0.0625]  # ties
    assert to_fixed(x, fmt, rounding="nearest_even").tolist() == [0, 2, 0]
    assert to_fixed(x, fmt, rounding="nearest_up").tolist() == [1, 2, 0]
    assert to_fixed(x, fmt, rounding="floor").tolist() == [0, 1, -1]


def test_to_fixed_overflow_policies_and_non_finite():
    fmt = FixedFormat(False, 4, 2)  # [0, 3.75]
    with pytest.raises(DataError, match="outside the range"):
        to_fixed([4.0], fmt)
    assert to_fixed([4.0, -1.0, 1.5], fmt, overflow="saturate").tolist() == [15, 0, 6]
    with pytest.raises(DataError, match="non-finite"):
        to_fixed([np.nan], fmt, overflow="saturate")
    with pytest.raises(DataError, match="unknown overflow"):
        to_fixed([1.0], fmt, overflow="wrap")


def test_encode_decode_real_values():
    p = PortSpec((2, 2), FixedFormat(True, 10, 4), 64)
    x = np.array([[[1.5, -2.25], [-8.0, 7.984375]]])
    assert (decode(encode(x, p), p) == x).all()
    assert from_fixed(to_fixed(x, p.format), p.format).dtype == np.float64


def test_pack_unpack_round_trip_on_a_large_batch():
    """20,000 samples of 64 lanes through pack and unpack. Its speed is a benchmark, not asserted
    here (a 2-core machine under load makes any bound flaky): ``fpga_dnn.bench`` records it as
    ``packing_*`` (``driver_bench.bench_packing``)."""
    p = port((64,), False, 8, 0, 64)
    q = np.random.default_rng(0).integers(0, 256, size=(20000, 64))
    out = unpack(pack(q, p), p)
    assert (out == q).all()


def test_lane_bits():
    assert [lane_bits_for(w) for w in (1, 8, 9, 16, 17, 32)] == [8, 8, 16, 16, 32, 32]
    with pytest.raises(DataError):
        lane_bits_for(33)


# ------------------------------------------------------------------ spec.json

def _spec(**kw):
    args = dict(name="net", input_shape=(8, 8), input_format="ap_ufixed<5,5>", output_shape=(10,),
                output_format="ap_fixed<16,6,AP_RND,AP_SAT>", core_latency=3, stream_bits=64)
    args.update(kw)
    return Spec.create(**args)


def test_spec_round_trip_and_derived_fields(tmp_path):
    s = _spec(top_module="net_axis")
    path = s.save(tmp_path)
    assert path.name == "spec.json"
    loaded = Spec.load(tmp_path)
    assert loaded == s
    d = json.loads(path.read_text())
    assert d["input"]["lane_bits"] == 8 and d["input"]["beats_per_sample"] == 8
    assert d["output"]["format"] == {"signed": True, "width": 16, "integer": 6}
    assert d["output"]["beats_per_sample"] == 3
    assert d["latency"] == {"core_cycles": 3, "total_cycles": 3 + SHELL_OVERHEAD_CYCLES}
    assert s.interval_cycles == 8


def test_parse_format():
    assert parse_format("ap_fixed<8,3>") == FixedFormat(True, 8, 3)
    assert parse_format("ufixed<6,0,RND_CONV,SAT>") == FixedFormat(False, 6, 0)
    assert parse_format("ap_uint<4>") == FixedFormat(False, 4, 4)
    assert parse_format("int<12>") == FixedFormat(True, 12, 12)
    with pytest.raises(SpecError, match="cannot parse"):
        parse_format("float")


def test_port_rejects_formats_wider_than_a_lane():
    with pytest.raises(SpecError, match="format.width"):
        PortSpec((4,), FixedFormat(True, 33, 3), 64)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["input"].update(beats_per_sample=7), "input.beats_per_sample"),
    (lambda d: d.update(spec_version=99), "version"),
    (lambda d: d.update(clock=100), "unknown key"),
    (lambda d: d["output"]["format"].update(width=40), "output.format.width"),
    (lambda d: d["input"].update(stream_bits=30), "input.stream_bits"),
    (lambda d: d["latency"].update(total_cycles=1), "total_cycles"),
    (lambda d: d.update(checksums={"a.bit": "md5:00"}), "checksums"),
    (lambda d: d.pop("output"), "missing output"),
])
def test_spec_validation_names_the_field(tmp_path, mutate, message):
    d = _spec().to_dict()
    mutate(d)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(d))
    with pytest.raises(SpecError, match=message) as info:
        Spec.load(path)
    assert isinstance(info.value, ConfigError) and "\n" not in str(info.value)


def test_spec_load_errors(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        Spec.load(tmp_path / "missing.json")
    (tmp_path / "spec.json").write_text("{")
    with pytest.raises(SpecError, match="not valid JSON"):
        Spec.load(tmp_path)


def test_checksums(tmp_path):
    (tmp_path / "design.bit").write_bytes(b"\x00\x01bitstream")
    s = _spec().with_checksums(tmp_path, ["design.bit"])
    assert s.checksums["design.bit"].startswith("sha256:")
    s.save(tmp_path)
    Spec.load(tmp_path).verify_checksums(tmp_path)
    (tmp_path / "design.bit").write_bytes(b"changed")
    with pytest.raises(SpecError, match="does not match"):
        s.verify_checksums(tmp_path)
    (tmp_path / "design.bit").unlink()
    with pytest.raises(SpecError, match="missing"):
        s.verify_checksums(tmp_path)
