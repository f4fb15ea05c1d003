"""Loading users' model files: QKeras (Keras 2, ``.h5``/``.keras``) or HGQ2/Keras 3 (``.keras``/``.h5``).

The Keras version that wrote the file decides which Keras loads it (tf_keras for 2.x with QKeras
custom objects resolved by us, Keras 3 with HGQ2 registered). Every failure is one clear line.

A model file can carry code: a ``Lambda`` layer's function is Python bytecode that Keras runs
while loading a ``.h5`` (``safe_mode`` does not apply to HDF5: CVE-2024-3660, CVE-2025-9905),
and a ``.keras`` config can name arbitrary modules and functions (CVE-2025-1550, CVE-2025-9906,
the ``TFSMLayer`` bypass CVE-2026-1462). So before any Keras deserialisation
:func:`check_model_config` reads the configuration as plain JSON — the HDF5 ``model_config``
attribute with h5py, the archive's ``config.json`` with zipfile — and refuses, naming the layer:
any layer class outside the layers the tool converts (:func:`fpga_dnn.convert.supported_layers`,
so ``Lambda``, ``TFSMLayer`` and unknown classes), any serialised object from a module outside
Keras/QKeras/HGQ2, any serialised function or lambda that is not a Keras activation, and QKeras
quantizer strings that are not a plain call. ``.keras`` files are then loaded with
``safe_mode=True``; unsafe deserialisation is never enabled.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

from . import kerasenv
from .errors import ModelFileError, UnsupportedLayerError

MODEL_SUFFIXES = (".h5", ".hdf5", ".keras")

#: Modules a serialised object in a model's configuration may come from.
ALLOWED_MODULE_PREFIXES = ("keras", "tf_keras", "qkeras", "hgq")
#: Serialised objects that are code, refused wherever they appear.
CODE_OBJECTS = {"Lambda", "__lambda__", "TFSMLayer", "TFOpLambda", "SlicingOpLambda"}
#: Containers whose ``layers`` are the layers to check (nested models are checked too).
MODEL_CLASSES = {"Functional", "Sequential", "Model"}
#: Wrapper layers whose inner layer sits under these keys.
WRAPPED_LAYER_KEYS = ("layer", "forward_layer", "backward_layer")
#: A QKeras quantizer/activation given as a string: a name, optionally called with literals.
_QKERAS_STRING = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\(\s*([-+\w.]+\s*(=\s*[-+\w.\'\"]+\s*)?,?\s*)*\))?")
MAX_CONFIG_BYTES = 16 << 20


def saved_keras_version(path: Path) -> str:
    """The Keras version recorded in a saved model file."""
    if path.suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as z:
                return str(json.loads(z.read("metadata.json"))["keras_version"])
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as err:
            raise ModelFileError(f"{path} is not a readable .keras model archive ({err})") from None
    try:
        import h5py

        with h5py.File(path, "r") as f:
            ver = f.attrs.get("keras_version")
            if ver is None or "model_config" not in f.attrs:
                raise ModelFileError(f"{path} is an HDF5 file without a Keras model in it (weights only?)")
            return ver.decode() if isinstance(ver, bytes) else str(ver)
    except ModelFileError:
        raise
    except Exception as err:
        raise ModelFileError(f"{path} is not a readable HDF5 Keras model ({type(err).__name__}: {err})") from None


def read_model_config(path: Path) -> Tuple[dict, str]:
    """``(model configuration, Keras version)`` of a saved model, read as JSON without Keras."""
    version = saved_keras_version(path)
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as z:
                info = z.getinfo("config.json")
                if info.file_size > MAX_CONFIG_BYTES:
                    raise ModelFileError(f"{path}: config.json is {info.file_size} bytes (limit {MAX_CONFIG_BYTES})")
                text = z.read(info)
        else:
            import h5py

            with h5py.File(path, "r") as f:
                text = f.attrs["model_config"]
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if len(text) > MAX_CONFIG_BYTES:
            raise ModelFileError(f"{path}: the model configuration is larger than {MAX_CONFIG_BYTES} bytes")
        config = json.loads(text)
    except ModelFileError:
        raise
    except (KeyError, ValueError, RecursionError, OSError, zipfile.BadZipFile) as err:
        raise ModelFileError(f"{path}: cannot read the model configuration ({type(err).__name__}: {err})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(f"{path}: the model configuration is not a Keras model")
    return config, version


def _objects(value: Any, where: str) -> Iterator[Tuple[dict, str]]:
    """Every serialised object (a dict with ``class_name``) in a configuration, with its path."""
    stack = [(value, where)]
    while stack:
        v, w = stack.pop()
        if isinstance(v, dict):
            if "class_name" in v:
                yield v, w
            stack.extend((x, f"{w}.{k}") for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, f"{w}[{i}]") for i, x in enumerate(v))


def _layers(model: dict) -> Iterator[dict]:
    """The layers of a model configuration, nested models' and wrapped layers included."""
    stack = [model]
    while stack:
        m = stack.pop()
        cfg = m.get("config")
        layers = cfg.get("layers") if isinstance(cfg, dict) else None
        for layer in layers if isinstance(layers, list) else []:
            if not isinstance(layer, dict):
                continue
            yield layer
            if layer.get("class_name") in MODEL_CLASSES:
                stack.append(layer)
            lcfg = layer.get("config")
            for key in WRAPPED_LAYER_KEYS:
                inner = lcfg.get(key) if isinstance(lcfg, dict) else None
                if isinstance(inner, dict) and "class_name" in inner:
                    yield inner


def _layer_name(obj: dict) -> str:
    cfg = obj.get("config")
    name = obj.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None)
    return str(name) if name is not None else "?"


def check_model_config(config: dict, framework: str, path: Path, supported: Optional[set] = None) -> None:
    """Refuse a model configuration that could run code or holds a layer the tool cannot convert
    (module docstring). Raises :class:`UnsupportedLayerError` (naming the layer and the supported
    ones) or :class:`ModelFileError`, one line each. Reads JSON only: nothing is imported."""
    if supported is None:
        from .convert import supported_layers

        supported = supported_layers(framework)
    if config.get("class_name") not in MODEL_CLASSES:
        raise ModelFileError(f"{path}: the file holds a {config.get('class_name')!r}, not a Keras model "
                             f"({', '.join(sorted(MODEL_CLASSES))})")
    for layer in _layers(config):
        cls = layer.get("class_name")
        registered = str(layer.get("registered_name") or "")
        if cls in CODE_OBJECTS or (cls not in supported and registered not in supported):
            raise UnsupportedLayerError(_layer_name(layer), str(cls), supported - MODEL_CLASSES,
                                        step="loading a model file (checked before Keras reads it)")
    for obj, where in _objects(config, "config"):
        cls, module = obj.get("class_name"), obj.get("module")
        if cls in CODE_OBJECTS:
            raise ModelFileError(f"{path}: {where} is a {cls} (code in the model file); refused before loading")
        if cls == "function" and not (isinstance(module, str) and "activations" in module.split(".")):
            raise ModelFileError(f"{path}: {where} is a serialised function {obj.get('config')!r} from module "
                                 f"{module!r}; only Keras activations are accepted")
        if module is not None and not (isinstance(module, str) and module.split(".")[0] in ALLOWED_MODULE_PREFIXES):
            raise ModelFileError(f"{path}: {where} ({cls}) comes from module {module!r}; model files may use only "
                                 f"{', '.join(ALLOWED_MODULE_PREFIXES)} objects")
    if framework == "qkeras":
        for layer in _layers(config):
            cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
            for key, value in cfg.items():
                if isinstance(value, str) and (key.endswith("quantizer") or key == "activation") \
                        and not _QKERAS_STRING.fullmatch(value.strip()):
                    raise ModelFileError(f"{path}: layer {_layer_name(layer)!r}: {key} {value[:80]!r} is not a "
                                         "quantizer or activation name (e.g. quantized_bits(6,0,alpha=1))")


def framework_of(model) -> str:
    """'qkeras' for a Keras 2 model (QKeras layers or plain), 'hgq2' for a Keras 3 model."""
    return "qkeras" if kerasenv.is_keras2_model(model) else "hgq2"


def load_model(path):
    """Load a saved model; returns ``(model, framework)``."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    if path.suffix not in MODEL_SUFFIXES:
        raise ModelFileError(f"{path}: expected a Keras model file ({', '.join(MODEL_SUFFIXES)})")
    config, version = read_model_config(path)
    keras2 = version.startswith("2.")
    check_model_config(config, "qkeras" if keras2 else "hgq2", path)   # before Keras reads anything
    safe = {"safe_mode": True} if path.suffix == ".keras" else {}       # .h5: the check above is the guard
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if keras2:
                model = kerasenv.tf_keras().models.load_model(
                    path, custom_objects=kerasenv.qkeras_custom_objects(), compile=False, **safe)
            else:
                kerasenv.hgq()  # registers HGQ2's layers and quantizers with Keras 3
                model = kerasenv.keras3().models.load_model(path, compile=False, **safe)
    except Exception as err:
        msg = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"cannot load {path} (written by Keras {version}): {msg}") from None
    return model, framework_of(model)
