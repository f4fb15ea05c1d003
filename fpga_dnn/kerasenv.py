"""The two Keras worlds in one process, and the routing of each to the right hls4ml converter.

* QKeras 0.9.0 works only on Keras 2. With TensorFlow 2.21 that is the ``tf_keras`` package,
  which ``tf.keras`` becomes when ``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow's first
  import (:mod:`fpga_dnn` sets it on import). On Keras 3 QKeras fails *silently*.
* HGQ2 uses Keras 3 (``import keras``) and is unaffected by the flag.
* hls4ml chooses its Keras parser from ``keras.__version__`` (Keras 3 here), so a QKeras model
  must be sent to its Keras 2 converter on purpose: :func:`hls4ml_keras2` patches only that
  attribute, only while hls4ml parses the model.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
import warnings

from .errors import FpgaDnnError

_patch_lock = threading.Lock()


def _set_tf_flags():
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # oneDNN may reorder float sums; QAT outputs are compared bit for bit with C-sim.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def _quiet_known_warnings():
    # QKeras quantizers pass through Keras 2's constraint serializer, and .h5 is "legacy": both
    # warnings are expected and say nothing to our users.
    warnings.filterwarnings("ignore", message=r".*keras.constraints.serialize\(\).*")
    warnings.filterwarnings("ignore", message=r".*saving your model as an HDF5 file.*")


#: TensorFlow's GPU start-up lines on a machine without a GPU (the PyPI wheel is built with CUDA):
#: printed by its C++ runtime before (or regardless of) ``TF_CPP_MIN_LOG_LEVEL``, so they are
#: filtered at the file-descriptor level while TensorFlow starts. Anything else passes through.
_GPU_NOISE = re.compile(rb"cudart_stub|cuInit|cuda_platform|cuda_diagnostics|cuda_executor|absl::InitializeLog|"
                        rb"Unable to register cu(DNN|FFT|BLAS)|TensorRT|computation_placer|cpu_feature_guard|"
                        rb"rebuild TensorFlow with the appropriate compiler flags")


@contextlib.contextmanager
def _drop_gpu_noise():
    """Capture fd 2 while TensorFlow starts and replay every line but its GPU-probe noise."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreter): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp:
                if not _GPU_NOISE.search(line):
                    os.write(2, line)


def tensorflow():
    """Import TensorFlow with Keras 2 behind ``tf.keras``; refuse a process where that is too late."""
    _set_tf_flags()
    _quiet_known_warnings()
    already = "tensorflow" in sys.modules
    with warnings.catch_warnings(), (contextlib.nullcontext() if already else _drop_gpu_noise()):
        warnings.simplefilter("ignore")
        import tensorflow as tf

        if not already:
            tf.config.list_physical_devices("GPU")  # the CUDA probe (cuInit) happens here, filtered
    if already and not tf.keras.layers.Dense.__module__.startswith("tf_keras"):
        raise FpgaDnnError(
            "TensorFlow was imported before fpga_dnn with Keras 3 behind tf.keras; QKeras needs "
            "Keras 2: import fpga_dnn first or set TF_USE_LEGACY_KERAS=1 before importing TensorFlow"
        )
    return tf


def tf_keras():
    """Keras 2 (the ``tf_keras`` package), for QKeras models."""
    tensorflow()
    import tf_keras

    return tf_keras


def keras3():
    """Keras 3 (``import keras``), for HGQ2 models."""
    tensorflow()
    import keras

    return keras


def qkeras():
    """QKeras, checked to be the real Keras 2 QKeras and not hgq2's same-named shim."""
    tensorflow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import qkeras
            import qkeras.qlayers
    except ImportError as err:  # pragma: no cover - environment fault
        raise FpgaDnnError(f"QKeras does not import ({err}); run `make env` to repair the environment") from err
    if not hasattr(qkeras, "QDense"):
        raise FpgaDnnError("the installed 'qkeras' is hgq2's shim, not QKeras 0.9.0; run `make env`")
    return qkeras


def hgq():
    """HGQ2 (package ``hgq``)."""
    keras3()
    import hgq

    return hgq


def qkeras_custom_objects() -> dict:
    """Every QKeras layer, quantizer and helper needed to load a QKeras model file."""
    qk = qkeras()
    from qkeras.utils import _add_supported_quantized_objects

    objects: dict = {}
    _add_supported_quantized_objects(objects)
    objects.setdefault("QDense", qk.QDense)
    return objects


def is_keras2_model(model) -> bool:
    """True for a tf_keras (Keras 2) model, False for a Keras 3 model."""
    return type(model).__module__.startswith("tf_keras") or any(
        type(m).__module__.startswith("tf_keras") for m in type(model).__mro__
    )


@contextlib.contextmanager
def hls4ml_keras2():
    """Make hls4ml take its Keras 2 code path for the duration of the block."""
    import keras

    with _patch_lock:
        real = keras.__version__
        keras.__version__ = tf_keras().__version__
        try:
            yield
        finally:
            keras.__version__ = real
