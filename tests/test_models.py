import pytest

from fpga_dnn import models
from fpga_dnn.errors import ConfigError, UnknownNameError


@pytest.mark.parametrize("name,framework", [(n, f) for n in sorted(models.ZOO) for f in models.ZOO[n].frameworks])
def test_zoo_builds_with_trainable_weights(name, framework):
    m = models.build_model(name, framework, models.Quant(weight_bits=6, activation_bits=6))
    n_out = m.output_shape[-1]
    assert n_out == models.ZOO[name].n_classes
    # QKeras on Keras 3 fails silently with zero trainable weights: guard against it.
    assert len(m.trainable_weights) >= 2 * (len(models.ZOO[name].hidden) + 1)


def test_qkeras_bit_widths_are_parameters():
    m = models.build_model("digits_mlp", "qkeras", models.Quant(weight_bits=5, activation_bits=4,
                                                                activation_integer_bits=2))
    dense = m.get_layer("dense1")
    assert dense.kernel_quantizer_internal.bits == 5
    act = m.get_layer("relu1").quantizer
    assert act.bits == 4 and act.integer == 2


def test_jet_mlp_is_the_hls4ml_architecture():
    m = models.build_model("jet_mlp", "float")
    assert [l.units for l in m.layers if hasattr(l, "units")] == [64, 32, 32, 5]
    assert m.input_shape == (None, 16)


def test_bad_names_and_widths():
    with pytest.raises(UnknownNameError, match="digits_mlp"):
        models.build_model("resnet50")
    with pytest.raises(UnknownNameError, match="qkeras"):
        models.build_model("digits_mlp", "brevitas")
    with pytest.raises(ConfigError, match="bit widths"):
        models.build_model("digits_mlp", "qkeras", models.Quant(weight_bits=1))
