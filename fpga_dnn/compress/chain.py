"""A QKeras/Keras 2 model as an editable chain of layers, and its rebuild.

Every compression that changes a layer's shape or quantizer (structured pruning, low-rank
factorisation, per-layer bit widths) edits a list of :class:`LayerSpec` (class, config, weights)
and rebuilds the model from it. The chain must be sequential (each layer reads the previous
one), which holds for the zoo and for most trigger/edge MLPs and CNNs; anything else is refused
with the layer named.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .. import kerasenv
from ..errors import ConfigError, UnsupportedLayerError
from ..fixedpoint import FixedFormat

DENSE = ("QDense", "Dense")
CONV = ("QConv2D", "Conv2D", "QConv1D", "Conv1D")
#: Layers that carry a kernel the compression passes work on.
KERNEL_LAYERS = DENSE + CONV
#: Layers that keep the channel axis as it is (structured pruning passes through them).
CHANNEL_PRESERVING = ("QActivation", "Activation", "ReLU", "MaxPooling2D", "AveragePooling2D",
                      "MaxPooling1D", "AveragePooling1D", "Dropout", "QBatchNormalization",
                      "BatchNormalization")


@dataclass
class LayerSpec:
    """One layer of the chain: enough to rebuild it (``config``) and restore it (``weights``)."""

    cls: type
    config: dict
    weights: list = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.cls.__name__

    @property
    def name(self) -> str:
        return self.config["name"]

    def copy(self) -> "LayerSpec":
        return LayerSpec(self.cls, copy.deepcopy(self.config), [np.array(w) for w in self.weights])


@dataclass
class Chain:
    input_shape: tuple
    input_name: str
    layers: list  # of LayerSpec
    name: str

    def copy(self) -> "Chain":
        return Chain(self.input_shape, self.input_name, [l.copy() for l in self.layers], self.name)

    def index(self, name: str) -> int:
        for i, l in enumerate(self.layers):
            if l.name == name:
                return i
        raise ConfigError(f"no layer {name!r} in the model; layers: {', '.join(l.name for l in self.layers)}")


def require_keras2(model, what: str) -> None:
    if not kerasenv.is_keras2_model(model):
        raise ConfigError(f"{what} works on QKeras/Keras 2 models; this is a Keras 3 (HGQ2) model. HGQ2 learns "
                          "its bit widths itself: use the bit-width search with method = 'hgq2'")


def to_chain(model, what: str = "compression") -> Chain:
    """The model as a :class:`Chain`; refuses graphs that are not a simple sequence."""
    require_keras2(model, what)
    cfg = model.get_config()
    layers = cfg["layers"]
    if not layers or layers[0]["class_name"] != "InputLayer":
        raise ConfigError(f"{what} needs a functional model that starts with an Input layer")
    prev = layers[0]["config"]["name"]
    specs = []
    for lc in layers[1:]:
        nodes = lc.get("inbound_nodes") or []
        inbound = [n[0] for node in nodes for n in node] if nodes and isinstance(nodes[0], list) else []
        if inbound != [prev]:
            raise UnsupportedLayerError(lc["config"]["name"], lc["class_name"],
                                        ["sequential chains (each layer reads only the previous one)"], step=what)
        layer = model.get_layer(lc["config"]["name"])
        specs.append(LayerSpec(type(layer), layer.get_config(), [np.array(w) for w in layer.get_weights()]))
        prev = lc["config"]["name"]
    return Chain(tuple(model.input_shape[1:]), layers[0]["config"]["name"], specs, model.name)


def from_chain(chain: Chain):
    """Build the Keras 2 model the chain describes, weights restored where they are given."""
    k = kerasenv.tf_keras()
    kerasenv.qkeras()
    x = inp = k.Input(chain.input_shape, name=chain.input_name)
    built = []
    for spec in chain.layers:
        layer = spec.cls.from_config(copy.deepcopy(spec.config))
        x = layer(x)
        built.append((layer, spec))
    model = k.Model(inp, x, name=chain.name)
    for layer, spec in built:
        if spec.weights:
            layer.set_weights(spec.weights)
    return model


def clone(model):
    """An independent copy (same weights) of a Keras 2 chain model."""
    return from_chain(to_chain(model))


# ---------------------------------------------------------------------------------------------
# QKeras quantizers in layer configs

def quantizer_config(spec: LayerSpec, key: str = "kernel_quantizer") -> dict | None:
    q = spec.config.get(key)
    return q.get("config") if isinstance(q, dict) else None


def weight_format(spec: LayerSpec) -> FixedFormat | None:
    """The fixed-point format of the layer's kernel quantizer (``quantized_bits(bits, integer)``
    keeps ``integer`` bits left of the point besides the sign), or None without one."""
    q = quantizer_config(spec)
    if q is None:
        return None
    signed = bool(q.get("keep_negative", True))
    return FixedFormat(signed, int(q["bits"]), int(q["integer"]) + (1 if signed else 0))


def quantize_weights(values: np.ndarray, spec: LayerSpec) -> np.ndarray:
    """What the layer's kernel quantizer makes of ``values`` (round half to even, saturate)."""
    fmt = weight_format(spec)
    if fmt is None:
        return values
    q = fmt.quantize(values)
    if quantizer_config(spec).get("symmetric"):  # symmetric quantizers drop the most negative code
        q = np.maximum(q, -fmt.max_value)
    return q


def set_weight_bits(spec: LayerSpec, bits: int, integer: int | None = None) -> None:
    """Set the kernel and bias quantizers' total bits (integer bits kept unless given)."""
    for key in ("kernel_quantizer", "bias_quantizer"):
        q = quantizer_config(spec, key)
        if q is None:
            raise ConfigError(f"layer {spec.name!r} ({spec.kind}) has no QKeras {key}: per-layer bit widths "
                              "need QKeras layers")
        q["bits"] = int(bits)
        if integer is not None:
            q["integer"] = int(integer)
        if q["integer"] >= q["bits"]:
            raise ConfigError(f"layer {spec.name!r}: {bits} bits cannot hold {q['integer']} integer bits")


def activation_bits(spec: LayerSpec) -> tuple[str, int, int] | None:
    """(quantizer name, bits, integer) of a ``QActivation``'s quantizer, or None."""
    if spec.kind != "QActivation":
        return None
    act = spec.config.get("activation")
    qk = kerasenv.qkeras()
    q = qk.get_quantizer(act) if isinstance(act, (str, dict)) else act
    name = type(q).__name__
    if name not in ("quantized_relu", "quantized_bits"):
        return None
    return name, int(q.bits), int(q.integer)


def set_activation_bits(spec: LayerSpec, bits: int) -> None:
    cur = activation_bits(spec)
    if cur is None:
        raise ConfigError(f"layer {spec.name!r} ({spec.kind}) has no quantized_relu/quantized_bits quantizer")
    name, _, integer = cur
    if integer > bits:
        raise ConfigError(f"layer {spec.name!r}: {bits} bits cannot hold {integer} integer bits")
    spec.config["activation"] = f"{name}({int(bits)},{integer})"
