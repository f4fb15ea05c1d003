"""The model zoo: each architecture buildable as QKeras (Keras 2), HGQ2 (Keras 3) or float.

=============  ===============  ======================================================
name           dataset          architecture
=============  ===============  ======================================================
digits_mlp     digits           64-32-32-10 dense, ReLU
digits_cnn     digits_images    8x8x1 -> Conv2D 3x3 x8 -> ReLU -> MaxPool 2x2 -> Dense 10
jet_mlp        jet_synthetic    16-64-32-32-5 dense, ReLU (hls4ml jet-tagging architecture)
=============  ===============  ======================================================

All outputs are logits (no softmax layer): the loss applies the softmax, and the hardware
returns the logits bit-exactly (argmax is the class). QKeras weights use
``quantized_bits(weight_bits, weight_integer_bits, alpha=1)`` and activations
``quantized_relu(activation_bits, activation_integer_bits)``; HGQ2 starts from the same widths
and learns per-weight widths (``hgq_trainable_bits``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from . import kerasenv
from .errors import ConfigError, UnknownNameError

FRAMEWORKS = ("qkeras", "hgq2", "float")


@dataclass(frozen=True)
class Arch:
    name: str
    dataset: str
    kind: str  # 'mlp' or 'cnn'
    hidden: tuple
    n_classes: int
    conv_filters: int = 0


ZOO = {
    "digits_mlp": Arch("digits_mlp", "digits", "mlp", (32, 32), 10),
    "digits_cnn": Arch("digits_cnn", "digits_images", "cnn", (), 10, conv_filters=8),
    "jet_mlp": Arch("jet_mlp", "jet_synthetic", "mlp", (64, 32, 32), 5),
}


@dataclass(frozen=True)
class Quant:
    """Bit widths of a QAT model. Integer bits include the sign bit for weights (QKeras style:
    ``quantized_bits(bits, integer)`` keeps ``integer`` bits left of the point, sign aside)."""

    weight_bits: int = 8
    weight_integer_bits: int = 0
    activation_bits: int = 8
    activation_integer_bits: int = 1

    def check(self):
        for k, v in asdict(self).items():
            if not isinstance(v, int) or v < 0 or (k.endswith("_bits") and "integer" not in k and not 2 <= v <= 24):
                raise ConfigError(f"{k}={v!r}: bit widths must be integers in 2..24 (integer bits >= 0)")
        if self.activation_integer_bits > self.activation_bits or self.weight_integer_bits >= self.weight_bits:
            raise ConfigError(f"integer bits must be smaller than the total width: {self}")
        return self


def arch(name: str) -> Arch:
    if name not in ZOO:
        raise UnknownNameError("model", name, ZOO)
    return ZOO[name]


def build_model(name: str, framework: str = "qkeras", quant: Quant | None = None, *, input_shape=None,
                seed: int = 0, hgq_trainable_bits: bool = True, hgq_homogeneous_activations: bool = False,
                hidden: tuple | None = None, hgq_beta: float = 1e-6):
    """Build a zoo model. ``input_shape`` defaults to the zoo dataset's shape; ``hidden`` overrides
    the hidden layer widths (a narrower student); ``hgq_beta`` weighs HGQ2's resource (EBOPs)
    penalty: larger = smaller hardware."""
    a = arch(name)
    if hidden is not None:
        if not hidden or any(int(n) < 1 for n in hidden):
            raise ConfigError(f"hidden widths must be positive integers, got {hidden!r}")
        a = Arch(a.name, a.dataset, a.kind, tuple(int(n) for n in hidden), a.n_classes, a.conv_filters)
    quant = (quant or Quant()).check()
    if framework not in FRAMEWORKS:
        raise UnknownNameError("framework", framework, FRAMEWORKS)
    if input_shape is None:
        input_shape = {"digits": (64,), "digits_images": (8, 8, 1), "jet_synthetic": (16,)}[a.dataset]
    if framework == "hgq2":
        return _build_hgq2(a, quant, tuple(input_shape), seed, hgq_trainable_bits, hgq_homogeneous_activations,
                           hgq_beta)
    return _build_keras2(a, quant, tuple(input_shape), seed, quantized=framework == "qkeras")


def _build_keras2(a: Arch, q: Quant, input_shape, seed: int, quantized: bool):
    k = kerasenv.tf_keras()
    k.utils.set_random_seed(seed)
    L = k.layers
    if quantized:
        qk = kerasenv.qkeras()
        wq = lambda: qk.quantized_bits(q.weight_bits, q.weight_integer_bits, alpha=1)  # noqa: E731
        dense = lambda n, nm: qk.QDense(n, kernel_quantizer=wq(), bias_quantizer=wq(), name=nm)  # noqa: E731
        act = lambda nm: qk.QActivation(  # noqa: E731
            qk.quantized_relu(q.activation_bits, q.activation_integer_bits), name=nm)
        conv = lambda f, nm: qk.QConv2D(f, 3, kernel_quantizer=wq(), bias_quantizer=wq(), name=nm)  # noqa: E731
    else:
        dense = lambda n, nm: L.Dense(n, name=nm)  # noqa: E731
        act = lambda nm: L.Activation("relu", name=nm)  # noqa: E731
        conv = lambda f, nm: L.Conv2D(f, 3, name=nm)  # noqa: E731
    x = inp = L.Input(input_shape, name="model_input")
    if a.kind == "cnn":
        x = act("relu0")(conv(a.conv_filters, "conv0")(x))
        x = L.MaxPooling2D(2, name="pool0")(x)
        x = L.Flatten(name="flatten")(x)
    for i, n in enumerate(a.hidden):
        x = act(f"relu{i + 1}")(dense(n, f"dense{i + 1}")(x))
    out = dense(a.n_classes, "logits")(x)
    return k.Model(inp, out, name=f"{a.name}_{'qkeras' if quantized else 'float'}")


def _build_hgq2(a: Arch, q: Quant, input_shape, seed: int, trainable_bits: bool, homogeneous: bool,
                beta: float = 1e-6):
    keras = kerasenv.keras3()
    hgq = kerasenv.hgq()
    from hgq.config import LayerConfigScope, QuantizerConfigScope

    keras.utils.set_random_seed(seed)
    # kbi weights: b bits of magnitude (+ sign), i integer bits; kif datalanes (inputs of each
    # layer): i integer, f fractional bits, unsigned after ReLU is learnt by HGQ2 itself.
    wb = q.weight_bits - 1  # sign is separate in HGQ2's kbi
    datalane = dict(place="datalane", default_q_type="kif", overflow_mode="SAT", round_mode="RND",
                    i0=q.activation_integer_bits, f0=q.activation_bits - q.activation_integer_bits,
                    trainable=trainable_bits)
    if homogeneous:  # io_stream in hls4ml needs one type per tensor
        datalane["heterogeneous_axis"] = ()
        datalane.pop("heterogeneous_axis")
        datalane["homogeneous_axis"] = None
    with (
        QuantizerConfigScope(place=("weight", "bias"), default_q_type="kbi", overflow_mode="SAT_SYM",
                             b0=wb, i0=q.weight_integer_bits, trainable=trainable_bits),
        QuantizerConfigScope(**datalane),
        LayerConfigScope(enable_ebops=trainable_bits, beta0=beta if trainable_bits else 0.0),
    ):
        H = hgq.layers
        x = inp = keras.Input(input_shape, name="model_input")
        if a.kind == "cnn":
            x = H.QConv2D(a.conv_filters, 3, activation="relu", name="conv0")(x)
            x = H.QMaxPool2D(2, name="pool0")(x)
            x = keras.layers.Flatten(name="flatten")(x)
        for i, n in enumerate(a.hidden):
            x = H.QDense(n, activation="relu", name=f"dense{i + 1}")(x)
        out = H.QDense(a.n_classes, name="logits")(x)
    return keras.Model(inp, out, name=f"{a.name}_hgq2")
