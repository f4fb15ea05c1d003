"""Loading users' model files: QKeras (Keras 2, ``.h5``/``.keras``) or HGQ2/Keras 3 (``.keras``/``.h5``).

The Keras version that wrote the file decides which Keras loads it (tf_keras for 2.x with QKeras
custom objects resolved by us, Keras 3 with HGQ2 registered). Every failure is one clear line.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

from . import kerasenv
from .errors import ModelFileError

MODEL_SUFFIXES = (".h5", ".hdf5", ".keras")


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
    version = saved_keras_version(path)
    keras2 = version.startswith("2.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if keras2:
                model = kerasenv.tf_keras().models.load_model(
                    path, custom_objects=kerasenv.qkeras_custom_objects(), compile=False)
            else:
                kerasenv.hgq()  # registers HGQ2's layers and quantizers with Keras 3
                model = kerasenv.keras3().models.load_model(path, compile=False)
    except Exception as err:
        msg = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"cannot load {path} (written by Keras {version}): {msg}") from None
    return model, framework_of(model)
