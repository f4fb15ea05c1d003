"""Accelerator models: what sits between the DMA's MM2S and S2MM streams in a simulated board.

An accelerator model is a callable ``model(frame) -> output frame``:

* ``frame``: the bytes of one MM2S transfer (a ``numpy.uint8`` array), i.e. one AXI-Stream
  frame ending with ``tlast`` — whole samples in the beat layout of the spec's input port.
* returns the bytes the accelerator sends back on S2MM for that frame (a ``uint8`` array; the
  last beat carries ``tlast``), or ``None`` when it never answers (a hung accelerator: the S2MM
  channel then stays busy until the driver gives up and resets the DMA).

The models here follow the RTL shell's rules (``sim/axis_shell.v``): a frame that ends inside a
sample completes it with zeros, each lane's bits above the format width are ignored, one output
sample per input sample. :class:`FixedPointModel` is the hook for the real network: give it a
``model_fn(q_in) -> q_out`` on fixed-point integers — e.g. the compiled Verilator/da4ml RTL
emulation — and it does the lane decoding and encoding.

Imports numpy and the runtime's packing only (no pynq): the pynq-free ``emulate`` backend uses
the same models as the simulated board.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from fpga_dnn.errors import DataError
from fpga_dnn.runtime.packing import pack, unpack
from fpga_dnn.runtime.spec import PortSpec, Spec

#: ``model_fn(q_in) -> q_out``: integers of the input format, shape ``(batch, *input.shape)``
#: (int64) in; integers of the output format, shape ``(batch, *output.shape)`` (or
#: ``(batch, output elements)``) out.
ModelFn = Callable[[np.ndarray], np.ndarray]


def reference_fn(spec: Spec) -> ModelFn:
    """The exact function the instant model computes — the project's dummy core's function.

    ``out_i = (in_{i mod N_in} * 3 + i) mod 2**W_out``, read as signed when the output format
    is (as ``fpga_dnn_dummy_core`` in ``sim/test_cores`` and
    ``fpga_dnn.rtl.shell.dummy_core_reference``): every input element influences some
    output, and output lane bits wrap exactly like hardware would.
    """
    n_in, n_out = spec.input.elements, spec.output.elements
    fmt = spec.output.format
    idx = np.arange(n_out)
    src = idx % n_in
    mask = (1 << fmt.width) - 1
    half = 1 << (fmt.width - 1)

    def fn(q_in: np.ndarray) -> np.ndarray:
        q = np.asarray(q_in, dtype=np.int64).reshape(len(q_in), n_in)
        v = (q[:, src] * 3 + idx) & mask
        if fmt.signed:
            v = np.where(v >= half, v - (1 << fmt.width), v)
        return v.reshape((len(q),) + spec.output.shape)

    return fn


def _frame_samples(frame: np.ndarray, port: PortSpec) -> np.ndarray:
    """The frame's bytes as whole samples; a trailing partial sample is completed with zeros."""
    frame = np.ascontiguousarray(frame, dtype=np.uint8).reshape(-1)
    extra = (-frame.size) % port.sample_bytes
    if extra:
        frame = np.concatenate([frame, np.zeros(extra, dtype=np.uint8)])
    return frame


class FixedPointModel:
    """An accelerator computing ``model_fn`` on fixed-point integers, behind the beat layout.

    spec: the design spec (input/output ports: shapes, formats, stream widths).
    model_fn: ``q_out = model_fn(q_in)``, see :data:`ModelFn`. Outputs outside the output
        format's integer range raise :class:`~fpga_dnn.errors.DataError` (a model bug: the RTL
        cannot produce them). Plug the RTL emulation in here.
    latency_s: host seconds to sleep per frame, to mimic a slow accelerator (default 0).

    ``calls`` counts frames, ``samples`` counts samples processed.
    """

    def __init__(self, spec: Spec, model_fn: ModelFn, latency_s: float = 0.0):
        if not callable(model_fn):
            raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}")
        self.spec = spec
        self.model_fn = model_fn
        self.latency_s = float(latency_s)
        self.calls = 0
        self.samples = 0

    def __call__(self, frame: np.ndarray) -> Optional[np.ndarray]:
        data = _frame_samples(frame, self.spec.input)
        q_in = unpack(data, self.spec.input)
        q_out = np.asarray(self.model_fn(q_in))
        if q_out.dtype.kind not in "iu":
            raise DataError(f"accelerator model_fn returned dtype {q_out.dtype}; expected integers")
        if len(q_out) != len(q_in):
            raise DataError(f"accelerator model_fn returned {len(q_out)} samples for {len(q_in)}")
        self.calls += 1
        self.samples += len(q_in)
        if self.latency_s:
            time.sleep(self.latency_s)
        return pack(q_out, self.spec.output).reshape(-1)


class InstantModel(FixedPointModel):
    """The driver-only model: decode the input lanes, apply :func:`reference_fn`, encode.

    It answers within the MM2S transfer, so a benchmark measures the host driver alone.
    """

    def __init__(self, spec: Spec):
        super().__init__(spec, reference_fn(spec))


class Float32Model:
    """A float32-lane accelerator (hls4ml's ``float`` AXI-Stream interface): 4 bytes per element.

    n_in / n_out: elements per input / output sample.
    fn: ``y = fn(x)`` on float32 arrays ``(batch, n_in) -> (batch, n_out)``; the default takes
        ``y_i = 3 * x_{i mod n_in} + i`` (the float analogue of :func:`reference_fn`).
    """

    def __init__(self, n_in: int, n_out: int, fn: Optional[Callable[[np.ndarray], np.ndarray]] = None):
        self.n_in, self.n_out = int(n_in), int(n_out)
        idx = np.arange(self.n_out)
        self.fn = fn or (lambda x: x[:, idx % self.n_in] * np.float32(3) + idx.astype(np.float32))
        self.calls = 0

    def __call__(self, frame: np.ndarray) -> Optional[np.ndarray]:
        sample_bytes = 4 * self.n_in
        frame = np.ascontiguousarray(frame, dtype=np.uint8).reshape(-1)
        n = -(-frame.size // sample_bytes)
        padded = np.zeros(n * sample_bytes, dtype=np.uint8)
        padded[: frame.size] = frame
        x = padded.view(np.float32).reshape(n, self.n_in)
        y = np.ascontiguousarray(self.fn(x), dtype=np.float32).reshape(n, self.n_out)
        self.calls += 1
        return y.view(np.uint8).reshape(-1)


class FaultyModel:
    """Wraps a model and misbehaves on chosen frames, for error-path tests.

    inner: the model to wrap.
    fault: ``'stuck'`` — swallow the frame and never answer (S2MM stays busy: a timeout);
        ``'short'`` — answer with the last ``short_bytes`` bytes missing (S2MM completes early,
        fewer bytes than asked for);
        ``'garbage'`` — answer with the right length but all bytes 0xA5.
    frames: which frames (0-based call numbers) misbehave; ``None`` = every frame.
    short_bytes: bytes dropped by ``'short'`` (default: one 32-bit beat).

    ``calls`` counts frames seen, ``faults`` counts faults injected.
    """

    FAULTS = ("stuck", "short", "garbage")

    def __init__(self, inner: Callable, fault: str = "stuck", frames=None, short_bytes: int = 4):
        if fault not in self.FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(self.FAULTS)}")
        self.inner, self.fault, self.short_bytes = inner, fault, int(short_bytes)
        self.frames = None if frames is None else set(int(f) for f in frames)
        self.calls = 0
        self.faults = 0

    def __call__(self, frame: np.ndarray) -> Optional[np.ndarray]:
        n = self.calls
        self.calls += 1
        if self.frames is not None and n not in self.frames:
            return self.inner(frame)
        self.faults += 1
        if self.fault == "stuck":
            return None
        out = self.inner(frame)
        if out is None:
            return None
        if self.fault == "short":
            return out[: max(0, out.size - self.short_bytes)]
        return np.full(out.size, 0xA5, dtype=np.uint8)


class RecordingModel:
    """Wraps a frame model and keeps a copy of every frame (the packed input bytes) it is sent,
    so tests can compare what two driver paths put on the stream.

    inner: the frame model to wrap. ``frames``: the recorded frames, as ``bytes``, in order.
    """

    frame_model = True

    def __init__(self, inner: Callable):
        self.inner, self.frames = inner, []

    def __call__(self, frame: np.ndarray) -> Optional[np.ndarray]:
        self.frames.append(bytes(np.asarray(frame, dtype=np.uint8)))
        return self.inner(frame)


def make_model(spec: Spec, model=None) -> Callable:
    """The accelerator model for ``model`` as users give it:

    * ``None`` or ``'instant'``: :class:`InstantModel` (the reference function);
    * a frame model — an instance of the classes here, or any callable carrying the attribute
      ``frame_model = True`` — is used as it is (bytes in, bytes out);
    * any other callable is a ``model_fn`` on fixed-point integers (:data:`ModelFn`), wrapped in
      :class:`FixedPointModel`.
    """
    if model is None or (isinstance(model, str) and model == "instant"):
        return InstantModel(spec)
    if isinstance(model, str):
        raise ValueError(f"unknown accelerator model {model!r}; known: 'instant', or pass a model_fn")
    if isinstance(model, (FixedPointModel, Float32Model, FaultyModel)) or getattr(model, "frame_model", False):
        return model
    if callable(model):
        return FixedPointModel(spec, model)
    raise TypeError(f"an accelerator model must be 'instant', a model_fn or a frame model, got {model!r}")
