"""hls4ml's ``ModelGraph`` as plain data: one :class:`LayerNode` per hls4ml layer, in graph order.

Why a per-layer graph beside :class:`~fpga_dnn.hw.graph.HwGraph`: the unrolled generator rebuilds
every hls4ml layer's C++ one to one (:mod:`fpga_dnn.rtl.layers`, whose handlers cite the
``nnet_utils`` header each mirrors), and the streaming lowering (:mod:`fpga_dnn.hw.lower`) fuses
these layers into hardware units. Both read this graph; :mod:`fpga_dnn.hw.from_hls4ml` is the one
module that reads hls4ml's objects to build it. Everything here is python/numpy: attributes,
weights as the C++ build sees them, every type as the project's one fixed-point class
(:class:`~fpga_dnn.fixedpoint.FixedFormat`).

A type hls4ml has that the hardware cannot reproduce (a float, saturation bits, an unknown mode)
is recorded with its reason and refused only when a handler asks for it, naming the layer: many
graphs carry such types on attributes nothing reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fpga_dnn.fixedpoint import FixedFormat
from fpga_dnn.errors import UnsupportedPrecisionError

#: ``Port.kind`` / ``Weight.kind``: what the precision class makes of the products (hls4ml's
#: ``FPGABackend.product_type``): a plain fixed-point value, an XNOR bit (0/1 reads as -1/+1) or a
#: power-of-two weight (sign and exponent).
KINDS = ("fixed", "xnor", "exponent")


@dataclass(frozen=True)
class Port:
    """One tensor of a layer: its shape (hls4ml's, without the batch axis), type and kind."""

    shape: tuple[int, ...]
    fixed: FixedFormat | None      # None when hls4ml's type has no exact fixed-point form
    kind: str = "fixed"
    reason: str = ""               # why ``fixed`` is None

    def type(self, where: str) -> FixedFormat:
        """The fixed-point type, or the refusal naming ``where``."""
        if self.fixed is None:
            raise UnsupportedPrecisionError(f"{where}: {self.reason}")
        return self.fixed

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class Weight:
    """A weight as the C++ build sees it: ``values`` after hls4ml's decimal printing and the cast
    to its type (for a power-of-two weight: ``+-2**e``, and ``type`` is the exponent's integer
    type). ``data`` is the array hls4ml holds, before printing."""

    data: np.ndarray
    values: np.ndarray | None
    fixed: FixedFormat | None
    kind: str = "fixed"
    reason: str = ""


@dataclass
class LayerNode:
    """One hls4ml layer. ``inputs``/``outputs`` are hls4ml's variable names (the graph's edges)."""

    name: str
    hls_class: str                        # hls4ml's own class (e.g. the fused BatchNormalizationQuantizedTanh)
    class_name: str                       # ``layer.class_name`` (e.g. 'Conv2D', 'PointwiseConv2D')
    bases: tuple[str, ...]                # hls4ml class names of the layer's MRO, for :meth:`is_a`
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    in_ports: tuple[Port, ...]
    out_port: Port
    attrs: dict = field(default_factory=dict)      # the plain attributes (ints, strings, arrays, ...)
    types: dict = field(default_factory=dict)      # type attributes (accum_t, table_t, ...) -> Port
    weights: dict = field(default_factory=dict)    # weight name -> Weight
    # For a node hls4ml made up (the fused ``bnbt_<bn>``): the Keras layers it stands for, in words.
    origin: str | None = None

    def attr(self, key: str, default=None):
        """An attribute, as ``Layer.get_attr`` gives it (``default`` when absent)."""
        return self.attrs.get(key, default)

    def is_a(self, hls_class_name: str) -> bool:
        """Is the layer an instance of hls4ml's class of that name (subclasses included)?"""
        return hls_class_name in self.bases

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.out_port.shape


@dataclass
class LayerGraph:
    """The converted model: layers in hls4ml's order, its input/output variables and flavour."""

    layers: list[LayerNode]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    io_type: str
    backend: str
    input_shapes: tuple[tuple[int, ...], ...] = ()   # of the model's input variables
    output_shapes: tuple[tuple[int, ...], ...] = ()  # of the model's output variables
    keras_layers: tuple[tuple[str, str], ...] = ()   # (name, class) of the Keras model hls4ml converted

    def consumers(self) -> dict[str, list[str]]:
        """Variable name -> names of the layers that read it."""
        users: dict[str, list[str]] = {}
        for layer in self.layers:
            for name in layer.inputs:
                users.setdefault(name, []).append(layer.name)
        return users

    def n_weights(self) -> int:
        """Elements of every layer's ``weight`` (the size that decides 'auto' architecture)."""
        return sum(int(np.size(w.data)) for layer in self.layers for k, w in layer.weights.items() if k == "weight")


# --------------------------------------------------------------------------------------------
# the accessors the handlers use (each refusal names the layer and the type)
# --------------------------------------------------------------------------------------------

def out_type(layer: LayerNode) -> FixedFormat:
    """A layer's result type (``result_t``)."""
    return layer.out_port.type(f"layer {layer.name!r} result_t")


def in_type(layer: LayerNode, where: str, i: int = 0) -> FixedFormat:
    """The type of a layer's ``i``-th input (``data_T``)."""
    return layer.in_ports[i].type(where)


def attr_type(layer: LayerNode, name: str) -> FixedFormat:
    """A layer's type attribute (``accum_t``, ``table_t``, ...); refused when the layer has none."""
    port = layer.types.get(name)
    if port is None:
        raise UnsupportedPrecisionError(f"layer {layer.name!r} has no {name}")
    return port.type(f"layer {layer.name!r} {name}")


def weight_values(w: Weight, where: str) -> tuple[np.ndarray, FixedFormat]:
    """A weight's values as the C++ build sees them, and its type (see :class:`Weight`)."""
    if w.values is None:
        raise UnsupportedPrecisionError(f"{where}: {w.reason}")
    return w.values, w.fixed
