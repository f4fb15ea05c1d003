import numpy as np
import pytest

from fpga_dnn import data
from fpga_dnn.errors import DataError, UnknownNameError
from fpga_dnn.fixedpoint import FixedFormat


def test_digits_split_is_fixed_and_on_grid(digits):
    again = data.digits()
    assert digits.x_train.shape == (1347, 64) and digits.x_test.shape == (450, 64)
    np.testing.assert_array_equal(digits.x_test, again.x_test)
    np.testing.assert_array_equal(digits.y_test, again.y_test)
    assert digits.input_format == FixedFormat(False, 5, 1)
    assert digits.input_format.on_grid(digits.x_train).all()
    assert FixedFormat.infer(np.concatenate([digits.x_train, digits.x_test])) == digits.input_format
    assert set(np.unique(digits.y_test)) == set(range(10))


def test_digit_images_match_flat(digits, digits_images):
    assert digits_images.x_test.shape == (450, 8, 8, 1)
    np.testing.assert_array_equal(digits_images.x_test.reshape(450, 64), digits.x_test)


def test_jet_synthetic_shape_grid_and_balance():
    d = data.jet_synthetic()
    assert d.x_train.shape[1] == 16 and d.n_classes == 5
    assert d.input_format == FixedFormat(True, 8, 3)
    assert d.input_format.on_grid(d.x_test).all()
    counts = np.bincount(d.y_train, minlength=5)
    assert counts.min() > 0.15 * len(d.y_train)
    assert "SYNTHETIC" in d.description


def test_unknown_dataset_lists_known():
    with pytest.raises(UnknownNameError, match="digits"):
        data.load_dataset("mnist")


def test_data_file_round_trip_and_errors(tmp_path, digits):
    p = digits.save_npz(tmp_path / "d.npz")
    x, y = data.load_data_file(p)
    np.testing.assert_array_equal(x, digits.x_test)
    np.testing.assert_array_equal(y, digits.y_test)
    np.save(tmp_path / "x.npy", digits.x_test[:5])
    x, y = data.load_data_file(tmp_path / "x.npy")
    assert x.shape == (5, 64) and y is None
    with pytest.raises(DataError, match="not found"):
        data.load_data_file(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", foo=np.zeros(3))
    with pytest.raises(DataError, match="x_test"):
        data.load_data_file(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read"):
        data.load_data_file(tmp_path / "junk.npz")


def test_fixed_format_inference_and_parsing():
    assert FixedFormat.infer(np.array([-4.0, 3.96875])) == FixedFormat(True, 8, 3)
    assert FixedFormat.infer(np.array([0, 3])) == FixedFormat(False, 2, 2)
    assert FixedFormat.parse("ap_fixed<8,3,AP_RND,AP_SAT>") == FixedFormat(True, 8, 3, "RND", "SAT")  # modes kept
    assert FixedFormat.parse("ap_fixed<8,3,AP_RND,AP_SAT>").format == FixedFormat(True, 8, 3)
    assert FixedFormat.parse("ufixed<5,1>").hls4ml() == "ufixed<5,1>"
    with pytest.raises(DataError, match="grid"):
        FixedFormat.infer(np.array([0.1]))
    with pytest.raises(DataError, match="not a fixed-point format"):
        FixedFormat.parse("float32")
    f = FixedFormat(True, 4, 2)  # step 0.25, range [-2, 1.75]
    np.testing.assert_array_equal(f.quantize([0.125, 0.375, 5, -9]), [0.0, 0.5, 1.75, -2.0])
