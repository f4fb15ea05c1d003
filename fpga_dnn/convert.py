"""Conversion step: a QAT model (QKeras or HGQ2) to an hls4ml ``ModelGraph`` and HLS project.

The hls4ml configuration is built from the model itself: per-layer weight/bias/activation
precisions come from the QKeras quantizers (or HGQ2's learned quantizers), every accumulator and
unquantized result is left to hls4ml's precision inference (``auto``: wide enough to be exact),
and the input precision is the fixed-point format of the data, so that no input wraps.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import kerasenv
from .errors import ConfigError, DataError, FpgaDnnError, UnknownNameError, UnsupportedLayerError
from .fixedpoint import FixedFormat
from .log import progress

BACKENDS = ("Vivado", "Vitis")
IO_TYPES = ("io_parallel", "io_stream")
STRATEGIES = ("Latency", "Resource")
DEFAULT_BOARD = "pynq-z2"


@dataclass
class ConvertOptions:
    """hls4ml options. Names follow hls4ml's own (``IOType``, ``ReuseFactor``, ``Strategy``)."""

    backend: str = "Vivado"
    io_type: str = "io_parallel"
    reuse_factor: int = 1
    strategy: str = "Latency"
    clock_period: float = 10.0  # ns; 100 MHz, the PYNQ boards' default PL clock
    part: str | None = None  # default: the board's part
    board: str | None = None  # overlays/boards/<board>.toml: gives the part (default pynq-z2; a flow sets its target)
    # Default: inferred exactly from the data. "auto" leaves hls4ml's own choice (no data check:
    # inputs outside that type then wrap or round, as they would in hardware).
    input_precision: str | None = None
    project_name: str = "fpga_dnn_model"
    # Per-layer hls4ml precision overrides, e.g. {"relu1": {"result": "ufixed<6,1,RND_CONV,SAT>"}}.
    precision_overrides: dict = field(default_factory=dict)
    # Keep every layer's output for hls4ml's trace (mismatch reports). Off by default: tracing
    # keeps no-op layers (linear activations) in the graph that hls4ml would otherwise remove.
    trace: bool = False

    def hls4ml_part(self) -> str:
        """The FPGA part hls4ml is given: ``part``, else the board's (resolved late, so that a
        flow's target board decides it)."""
        from .boards import load_board

        return self.part or load_board(self.board or DEFAULT_BOARD).part

    def check(self) -> "ConvertOptions":
        canon = {b.lower(): b for b in BACKENDS}
        if str(self.backend).lower() not in canon:
            raise UnknownNameError("backend", self.backend, BACKENDS)
        self.backend = canon[str(self.backend).lower()]
        if self.io_type not in IO_TYPES:
            raise UnknownNameError("io_type", self.io_type, IO_TYPES)
        canon = {s.lower(): s for s in STRATEGIES}
        if str(self.strategy).lower() not in canon:
            raise UnknownNameError("strategy", self.strategy, STRATEGIES)
        self.strategy = canon[str(self.strategy).lower()]
        if not isinstance(self.reuse_factor, int) or self.reuse_factor < 1:
            raise ConfigError(f"reuse_factor must be a positive integer, got {self.reuse_factor!r}")
        from .boards import load_board

        if self.board:
            load_board(self.board)  # unknown names fail here, with the list of boards
        if not isinstance(self.precision_overrides, dict) or not all(
                isinstance(v, dict) for v in self.precision_overrides.values()):
            raise ConfigError("precision_overrides must map layer names to {type: precision} tables")
        if not self.clock_period > 0:
            raise ConfigError(f"clock_period must be positive (ns), got {self.clock_period!r}")
        return self


@dataclass
class ConvertResult:
    """The converted model (hls4ml's ``ModelGraph``, the one IR every later step reads)."""

    hls_model: object
    framework: str
    output_dir: Path
    hls_config: dict
    input_format: FixedFormat | None  # None: hls4ml chose (input_precision="auto")
    options: ConvertOptions
    seconds: float
    info: dict = field(default_factory=dict)
    keras_model: object = None
    #: layers whose exactness over every input could not be proven: {layer: reason}
    unguaranteed: dict = field(default_factory=dict)

    def traced_twin(self):
        """The same conversion with per-layer tracing on (a separate project, compiled)."""
        from dataclasses import replace

        from .csim import compile_model

        twin = convert(self.keras_model, None, replace(self.options, trace=True,
                       input_precision=str(self.input_format) if self.input_format else "auto"),
                       output_dir=self.output_dir.with_name(self.output_dir.name + "_trace"),
                       framework=self.framework)
        compile_model(twin.hls_model)
        return twin.hls_model


def supported_layers(framework: str) -> set[str]:
    """Keras layer class names hls4ml 1.3.0 converts for this framework."""
    from hls4ml.converters import get_supported_keras_layers

    names = set(get_supported_keras_layers()) | {"Dropout"}  # hls4ml drops Dropout
    if framework == "hgq2":
        from hls4ml.converters.keras_v3 import layer_handlers

        names |= {k.rsplit(".", 1)[1] for k in layer_handlers if ".preprocessing." not in k}
    return names


def check_layers(model, framework: str) -> None:
    """Refuse an unsupported layer before hls4ml does (its error names neither layer nor list)."""
    supported = supported_layers(framework)
    keys = set()
    if framework == "hgq2":
        from hls4ml.converters.keras_v3 import layer_handlers

        keys = set(layer_handlers)
    for layer in model.layers:
        if layer.name in ("input", "output"):
            raise ConfigError(f"layer name {layer.name!r} is reserved in hls4ml's ModelGraph; rename the layer")
        cls = type(layer)
        if cls.__name__ in supported or f"{cls.__module__}.{cls.__name__}" in keys:
            continue
        raise UnsupportedLayerError(layer.name, cls.__name__, supported - {"Functional", "Sequential"})


def check_input(model, x: np.ndarray, what: str = "input data") -> np.ndarray:
    """Data must match the model's input shape and be numeric; returns float64 contiguous."""
    check_single_input(model)
    expected = tuple(model.input_shape[1:])
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise DataError(f"{what} has dtype {x.dtype}; expected a numeric array (float or int)")
    if x.ndim == len(expected):  # one sample
        x = x[None]
    if tuple(x.shape[1:]) != expected:
        raise DataError(f"{what} has shape {x.shape}; the model expects (N, {', '.join(map(str, expected))})")
    return np.ascontiguousarray(x, dtype=np.float64)


def input_format_for(x: np.ndarray | None, override: str | None) -> FixedFormat | None:
    if override == "auto":
        return None
    if x is None:
        if not override:
            raise DataError("no data to infer the input precision from: give data or an input precision")
        return FixedFormat.parse(override)
    if override:
        fmt = FixedFormat.parse(override)
        if not fmt.on_grid(x).all():
            bad = int((~fmt.on_grid(x)).sum())
            raise DataError(f"{bad} input values are not representable in {fmt}; they would be rounded or wrap")
        return fmt
    return FixedFormat.infer(x)


def build_hls_config(model, framework: str, opts: ConvertOptions, input_format: FixedFormat) -> dict:
    import hls4ml

    ctx = kerasenv.hls4ml_keras2() if framework == "qkeras" else contextlib.nullcontext()
    with ctx, _quiet():
        cfg = hls4ml.utils.config_from_keras_model(
            model, granularity="name", backend=opts.backend, default_reuse_factor=opts.reuse_factor)
    cfg["Model"]["Strategy"] = opts.strategy
    cfg["Model"]["ReuseFactor"] = opts.reuse_factor
    for name, layer_cfg in cfg["LayerName"].items():
        layer_cfg["Trace"] = bool(opts.trace)
        prec = layer_cfg.get("Precision")
        if isinstance(prec, dict):
            # An unset type silently becomes the model default fixed<16,6>; 'auto' is exact.
            prec.setdefault("result", "auto")
    if framework == "qkeras":
        _pin_linear_quantizers(model, cfg)
    for name, prec in opts.precision_overrides.items():
        if name not in cfg["LayerName"]:
            raise ConfigError(f"precision_overrides: no layer {name!r}; layers: {', '.join(cfg['LayerName'])}")
        cfg["LayerName"][name].setdefault("Precision", {}).update(prec)
    in_layers = [n for n in cfg["LayerName"] if n == _input_layer_name(model)] or [next(iter(cfg["LayerName"]))]
    if input_format is not None:
        cfg["LayerName"][in_layers[0]].setdefault("Precision", {})["result"] = input_format.hls4ml()
    return cfg


def _pin_linear_quantizers(model, cfg: dict) -> None:
    """A QKeras ``QActivation(quantized_bits(...))`` rounds half to even and saturates. hls4ml turns
    it into a 'linear' activation that its MergeLinearActivation pass folds into the layer before
    (a Dense/Conv with an unset type) and its cast is lost: C-sim then keeps the full-width sum.
    We pin the exact type, ``fixed<bits, integer+1, RND_CONV, SAT>``, on both layers; the
    activation then casts nothing and hls4ml removes it, the layer before doing the cast."""
    qk = kerasenv.qkeras()
    for layer in model.layers:
        if type(layer).__name__ != "QActivation":
            continue
        q = qk.get_quantizer(layer.get_config()["activation"]) if isinstance(
            layer.get_config()["activation"], (str, dict)) else layer.activation
        if type(q).__name__ != "quantized_bits":
            continue
        qc = q.get_config()
        if qc.get("alpha") not in (None, 1, 1.0) or qc.get("symmetric") or not qc.get("keep_negative", True):
            raise ConfigError(f"layer {layer.name!r}: quantized_bits activations are supported with alpha=1, "
                              f"keep_negative=True, symmetric=0 (got {qc})")
        hls_type = f"fixed<{int(qc['bits'])},{int(qc['integer']) + 1},RND_CONV,SAT>"
        inbound = layer._inbound_nodes[0].inbound_layers
        parent = inbound[0] if isinstance(inbound, (list, tuple)) else inbound
        for name in (parent.name, layer.name):
            if name in cfg["LayerName"]:
                cfg["LayerName"][name].setdefault("Precision", {})["result"] = hls_type
        # A QDense/QConv without activation gets a 'linear' node named '<layer>_linear' from hls4ml's
        # parser, typed with the model default (fixed<16,6>) once its parent's type is pinned: pin it too.
        if parent.name in cfg["LayerName"]:
            cfg["LayerName"].setdefault(f"{parent.name}_linear", {})["Precision"] = {"result": hls_type}


def _input_layer_name(model) -> str:
    """The input layer's name (a Sequential model has no InputLayer in ``model.layers``)."""
    names = getattr(model, "input_names", None)  # Keras 2
    if names:
        return names[0]
    history = getattr(model.inputs[0], "_keras_history", None)  # Keras 3: the tensor's InputLayer
    return history[0].name if history else model.inputs[0].name


@contextlib.contextmanager
def _quiet():
    """hls4ml prints every layer it parses; keep the user's console for our progress lines."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def convert(model, x: np.ndarray | None, opts: ConvertOptions | None = None, output_dir="build/hls",
            framework: str | None = None, write: bool = True, quiet: bool = False) -> ConvertResult:
    """Convert ``model`` with calibration/test inputs ``x`` and write the HLS project.

    ``write=False`` keeps the graph in memory only; ``quiet`` drops the progress lines (a search
    loop converting many candidates).

    ``x`` sets the input precision (unless ``opts.input_precision`` does) and is checked against
    the model's input shape; it may be None when ``opts.input_precision`` is given.
    """
    import hls4ml

    from . import compat
    from .modelio import framework_of

    compat.apply()  # hls4ml 1.3.0 vs numpy 2 (power-of-two weights): see fpga_dnn/compat.py
    opts = (opts or ConvertOptions()).check()
    framework = framework or framework_of(model)
    check_layers(model, framework)
    x = check_input(model, x) if x is not None else None
    fmt = input_format_for(x, opts.input_precision)
    output_dir = Path(output_dir)
    t0 = time.perf_counter()
    say = (lambda _msg: None) if quiet else progress
    say(f"convert: {framework} model '{model.name}' -> hls4ml {opts.backend} {opts.io_type}, "
             f"input {fmt or 'hls4ml default'}, strategy {opts.strategy}, reuse {opts.reuse_factor}")
    check_single_input(model)
    try:
        cfg = build_hls_config(model, framework, opts, fmt)
    except FpgaDnnError:
        raise
    except Exception as err:  # hls4ml's config builder asserts (e.g. heterogeneous QUnaryFunctionLUT)
        raise FpgaDnnError(f"hls4ml cannot configure '{model.name}': {_one_line(err)}") from err
    ctx = kerasenv.hls4ml_keras2() if framework == "qkeras" else contextlib.nullcontext()

    def hls4ml_convert():
        return hls4ml.converters.convert_from_keras_model(
            model, hls_config=cfg, output_dir=str(output_dir), project_name=opts.project_name,
            backend=opts.backend, io_type=opts.io_type, part=opts.hls4ml_part(), clock_period=opts.clock_period)

    unguaranteed = {}
    try:
        with ctx, _quiet(), compat.exact_binary_thresholds():
            hls_model = hls4ml_convert()
            bn_types, bn_data, unguaranteed = _exact_batchnorm(model, hls_model, cfg, opts)
            if bn_types:
                hls_model = hls4ml_convert()  # again, with the derived BN types
                from .bnexact import apply_batchnorm_data

                apply_batchnorm_data(hls_model, bn_data)
            if write:
                hls_model.write()
                from .compat import fix_written_project

                fix_written_project(hls_model.config.get_output_dir())
                from .hw.from_hls4ml import read_interface

                # the top function's interface as data, beside the project: what the HLS overlay
                # reads later (in this process or another), instead of parsing the C++ above
                read_interface(hls_model).save(output_dir)
    except FpgaDnnError:
        raise
    except Exception as err:
        raise FpgaDnnError(f"hls4ml could not convert '{model.name}': {_one_line(err)}") from err
    if bn_types:
        say("convert: types derived for exactness on every input: " + "; ".join(
            f"{n} " + ", ".join(f"{k} {v}" for k, v in t.items()) for n, t in bn_types.items()))
    seconds = time.perf_counter() - t0
    say(f"convert: wrote HLS project {output_dir} ({seconds:.1f} s)" if write else
        f"convert: hls4ml graph built ({seconds:.1f} s)")
    info = {"layers": [{"name": l.name, "class": l.class_name} for l in hls_model.get_layers()],
            "batchnorm_types": bn_types}
    if unguaranteed:
        say("convert: exactness over the whole input range not guaranteed for: "
            + "; ".join(f"{n} ({why})" for n, why in unguaranteed.items()))
    return ConvertResult(hls_model, framework, output_dir, cfg, fmt, opts, seconds, info, keras_model=model,
                         unguaranteed=unguaranteed)


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300]}" if text else type(err).__name__


def check_single_input(model) -> None:
    """hls4ml's flow here takes one input tensor (one AXI-Stream of samples)."""
    if len(getattr(model, "inputs", []) or []) > 1:
        raise ConfigError(f"model '{model.name}' has {len(model.inputs)} inputs; models with several inputs are "
                          "not supported (one input tensor, e.g. concatenate the inputs into one)")


def _exact_batchnorm(model, hls_model, cfg: dict, opts: ConvertOptions) -> tuple:
    """Derive exact BN scale/bias types (:mod:`fpga_dnn.bnexact`) into ``cfg`` unless the user
    set them; returns ``(types, data, unguaranteed)`` and adds hls4ml-default types to the last."""
    from .bnexact import MAX_FRAC, UNROLLED_MAX_FRAC, default_typed, derive_batchnorm_types, derive_pooling_types

    user = {n for n, p in opts.precision_overrides.items() if {"scale", "bias", "result"} & set(p)}
    # an io_parallel graph goes to the unrolled (da4ml-traced) RTL: constants no wider than it is exact at
    max_frac = UNROLLED_MAX_FRAC if opts.io_type == "io_parallel" else MAX_FRAC
    bn_types, bn_data, unguaranteed = derive_batchnorm_types(model, hls_model, max_frac=max_frac)
    pool_types, pool_unguaranteed = derive_pooling_types(hls_model)
    bn_types.update(pool_types)
    unguaranteed.update(pool_unguaranteed)
    for name in user:
        bn_types.pop(name, None), bn_data.pop(name, None), unguaranteed.pop(name, None)
    for name, t in bn_types.items():
        cfg["LayerName"].setdefault(name, {}).setdefault("Precision", {}).update(t)
    for name, why in default_typed(hls_model, skip=set(bn_types) | user).items():
        unguaranteed.setdefault(name, why)
    return bn_types, bn_data, unguaranteed


def options_from_dict(d: dict) -> ConvertOptions:
    known = set(ConvertOptions.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"unknown convert option(s) {sorted(unknown)}; known: {sorted(known)}")
    return ConvertOptions(**d).check()


def describe(opts: ConvertOptions) -> dict:
    return asdict(opts)
