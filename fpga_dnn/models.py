"""The model zoo: each architecture buildable as QKeras (Keras 2), HGQ2 (Keras 3) or float.

=============  ===============  ======================================================
name           dataset          architecture
=============  ===============  ======================================================
digits_mlp     digits           64-32-32-10 dense, ReLU
digits_cnn     digits_images    8x8x1 -> Conv2D 3x3 x8 -> ReLU -> MaxPool 2x2 -> Dense 10
jet_mlp        jet_synthetic    16-64-32-32-5 dense, ReLU (hls4ml jet-tagging architecture)
rn07           shapes_synthetic MLPerf Tiny RN07 (hls4ml's entry): 32x32x3 -> Conv32 k1 ->
                                Conv4 k4 -> Conv32 k4 -> Conv32 k4 /4 -> Conv32 k4 -> Dense 10
resnet8        shapes_synthetic MLPerf Tiny reference ResNet-8: Conv16 k3, three residual stacks
                                16/32/64 (Add skips, BatchNorm, stride-2, 1x1 projections),
                                AvgPool 8x8 -> Dense 10
ad08           anomaly_synthetic MLPerf Tiny AD08 autoencoder (hls4ml's entry): Dense
                                64-72-72-8-72-72-64, BatchNorm + ReLU after each hidden Dense;
                                output = the reconstruction of the 64 inputs
=============  ===============  ======================================================

The MLPerf Tiny models (rn07, resnet8, ad08) are built for QKeras and float only, with 'same'
padding everywhere. Their BatchNormalization layers stay separate layers in hls4ml (not fused
into a quantized Conv/Dense); :func:`snap_batchnorm` puts them on the fixed-point grid after
training (scale and offset exact in hls4ml's types), which makes C-sim bit-exact with Keras.

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
    n_classes: int              # output width for an autoencoder ('ae': the reconstruction)
    conv_filters: int = 0
    frameworks: tuple = ("qkeras", "hgq2", "float")


ZOO = {
    "digits_mlp": Arch("digits_mlp", "digits", "mlp", (32, 32), 10),
    "digits_cnn": Arch("digits_cnn", "digits_images", "cnn", (), 10, conv_filters=8),
    "jet_mlp": Arch("jet_mlp", "jet_synthetic", "mlp", (64, 32, 32), 5),
    "rn07": Arch("rn07", "shapes_synthetic", "rn07", (), 10, frameworks=("qkeras", "float")),
    "resnet8": Arch("resnet8", "shapes_synthetic", "resnet", (16, 32, 64), 10, frameworks=("qkeras", "float")),
    "ad08": Arch("ad08", "anomaly_synthetic", "ae", (72, 72, 8, 72, 72), 64, frameworks=("qkeras", "float")),
}
INPUT_SHAPES = {"digits": (64,), "digits_images": (8, 8, 1), "jet_synthetic": (16,),
                "shapes_synthetic": (32, 32, 3), "anomaly_synthetic": (64,)}
# RN07's convolutions (filters, kernel, stride), hls4ml's MLPerf Tiny entry.
RN07_CONVS = ((32, 1, 1), (4, 4, 1), (32, 4, 1), (32, 4, 4), (32, 4, 1))
# BatchNormalization epsilon of the MLPerf models: a power of two, so that snap_batchnorm can make
# moving_variance + epsilon exactly 1 (the normalisation then multiplies by exactly 1).
BN_EPSILON = 2.0 ** -16
# Grid of the snapped BatchNorm scale and offset: inside hls4ml's default fixed<16,6> (10
# fractional bits), so its scale_t/bias_t hold them exactly.
BN_SCALE_FRAC, BN_BIAS_FRAC = 6, 10


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
        a = Arch(a.name, a.dataset, a.kind, tuple(int(n) for n in hidden), a.n_classes, a.conv_filters,
                 a.frameworks)
    quant = (quant or Quant()).check()
    if framework not in FRAMEWORKS:
        raise UnknownNameError("framework", framework, FRAMEWORKS)
    if framework not in a.frameworks:
        raise ConfigError(f"model {name!r} is built for {' and '.join(a.frameworks)} only, not {framework!r}")
    if input_shape is None:
        input_shape = INPUT_SHAPES[a.dataset]
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
    if a.kind in ("rn07", "resnet", "ae"):
        return _build_mlperf(a, q, input_shape, quantized, k)
    x = inp = L.Input(input_shape, name="model_input")
    if a.kind == "cnn":
        x = act("relu0")(conv(a.conv_filters, "conv0")(x))
        x = L.MaxPooling2D(2, name="pool0")(x)
        x = L.Flatten(name="flatten")(x)
    for i, n in enumerate(a.hidden):
        x = act(f"relu{i + 1}")(dense(n, f"dense{i + 1}")(x))
    out = dense(a.n_classes, "logits")(x)
    return k.Model(inp, out, name=f"{a.name}_{'qkeras' if quantized else 'float'}")


def _build_mlperf(a: Arch, q: Quant, input_shape, quantized: bool, k):
    """RN07, ResNet-8 and AD08 (QKeras or float; the caller has set the seed)."""
    L = k.layers
    if quantized:
        qk = kerasenv.qkeras()
        wq = lambda: qk.quantized_bits(q.weight_bits, q.weight_integer_bits, alpha=1)  # noqa: E731

        def conv(f, ks, s, nm):
            return qk.QConv2D(f, ks, strides=s, padding="same", kernel_quantizer=wq(), bias_quantizer=wq(), name=nm)

        def dense(n, nm):
            return qk.QDense(n, kernel_quantizer=wq(), bias_quantizer=wq(), name=nm)

        def relu(nm):
            return qk.QActivation(qk.quantized_relu(q.activation_bits, q.activation_integer_bits), name=nm)

        def cast(nm):  # a signed activation cast (hls4ml pins it onto the layer before)
            return qk.QActivation(qk.quantized_bits(q.activation_bits, q.activation_integer_bits, alpha=1), name=nm)
    else:
        def conv(f, ks, s, nm):
            return L.Conv2D(f, ks, strides=s, padding="same", name=nm)

        def dense(n, nm):
            return L.Dense(n, name=nm)

        def relu(nm):
            return L.Activation("relu", name=nm)

        def cast(nm):
            return L.Activation("linear", name=nm)

    def bn(nm):
        return L.BatchNormalization(epsilon=BN_EPSILON, name=nm)

    x = inp = L.Input(input_shape, name="model_input")
    if a.kind == "rn07":
        for i, (f, ks, s) in enumerate(RN07_CONVS):
            x = relu(f"relu{i}")(conv(f, ks, s, f"conv{i}")(x))
        x = L.Flatten(name="flatten")(x)
        out = dense(a.n_classes, "logits")(x)
    elif a.kind == "resnet":
        # Keras' MLPerf Tiny reference (resnet_v1_eembc): a stem conv, then per stack
        # conv-BN-ReLU-conv-BN + skip (identity, or a strided 1x1 projection), Add, ReLU.
        x = relu("relu0")(bn("bn0")(conv(a.hidden[0], 3, 1, "conv0")(x)))
        for s, f in enumerate(a.hidden, start=1):
            stride = 1 if s == 1 else 2
            y = relu(f"relu{s}a")(bn(f"bn{s}a")(conv(f, 3, stride, f"conv{s}a")(x)))
            y = bn(f"bn{s}b")(conv(f, 3, 1, f"conv{s}b")(y))
            if stride != 1:
                x = conv(f, 1, stride, f"skip{s}")(x)
            x = relu(f"relu{s}")(L.Add(name=f"add{s}")([x, y]))
        pool = int(min(x.shape[1:3]))
        # The 8x8 average divides by 64: cast it to the activation grid explicitly, else hls4ml
        # keeps the pool's input type and truncates 6 fractional bits that Keras keeps.
        x = cast("pool_cast")(L.AveragePooling2D(pool, name="pool")(x))
        x = L.Flatten(name="flatten")(x)
        out = dense(a.n_classes, "logits")(x)
    else:  # ae
        for i, n in enumerate(a.hidden, start=1):
            x = relu(f"relu{i}")(bn(f"bn{i}")(dense(n, f"dense{i}")(x)))
        out = dense(a.n_classes, "reconstruction")(x)
    return k.Model(inp, out, name=f"{a.name}_{'qkeras' if quantized else 'float'}")


def snap_batchnorm(model) -> int:
    """Put every BatchNormalization of ``model`` on the fixed-point grid, in place.

    Inference BN computes ``(x - mean) / sqrt(var + eps) * gamma + beta``; hls4ml folds it into
    ``x * scale + bias`` with scale and bias in its ``scale_t``/``bias_t`` (default fixed<16,6>),
    so Keras (float) and C-sim differ unless both are exact. We rewrite each BN into the same
    function with ``mean = 0``, ``var = 1 - eps`` (so ``var + eps == 1`` exactly in float32 and
    float64), ``gamma = scale`` rounded to ``2**-BN_SCALE_FRAC`` and ``beta = bias`` rounded to
    ``2**-BN_BIAS_FRAC``. Keras then multiplies and adds numbers with few significant bits (exact
    in float32), and hls4ml's types hold scale and bias exactly. Returns how many BNs changed.
    The rounding moves each scale by at most 2**-7 (accuracy barely moves; re-measure it).
    """
    import numpy as np

    n = 0
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        cfg = layer.get_config()
        if not (cfg.get("scale", True) and cfg.get("center", True)):
            raise ConfigError(f"layer {layer.name!r}: snap_batchnorm needs a BatchNormalization with scale and center")
        eps = np.float32(cfg["epsilon"])
        gamma, beta, mean, var = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
        var_one = np.float32(1.0) - eps
        if np.float32(var_one + eps) != 1.0 or float(var_one) + float(eps) != 1.0:
            raise ConfigError(f"layer {layer.name!r}: epsilon {cfg['epsilon']} is not a power of two; "
                              f"build BatchNormalization with epsilon={BN_EPSILON}")
        scale = gamma / np.sqrt(var + float(eps))
        bias = beta - mean * scale
        scale = np.round(scale * 2 ** BN_SCALE_FRAC) / 2 ** BN_SCALE_FRAC
        bias = np.round(bias * 2 ** BN_BIAS_FRAC) / 2 ** BN_BIAS_FRAC
        lim = 2.0 ** 5  # fixed<16,6> holds [-32, 32)
        scale = np.clip(scale, -lim, lim - 2.0 ** -BN_SCALE_FRAC)
        bias = np.clip(bias, -lim, lim - 2.0 ** -BN_BIAS_FRAC)
        layer.set_weights([scale.astype(np.float32), bias.astype(np.float32),
                           np.zeros_like(mean, dtype=np.float32), np.full_like(var, var_one, dtype=np.float32)])
        n += 1
    return n


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
