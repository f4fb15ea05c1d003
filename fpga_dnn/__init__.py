"""fpga_dnn: quantized DNNs to FPGAs, bit-exact at every step.

Importing the package is cheap: TensorFlow, hls4ml and da4ml are imported only by the steps
that need them (see :mod:`fpga_dnn.kerasenv`), and :mod:`fpga_dnn.runtime` needs only numpy.
"""

import os as _os

# QKeras needs Keras 2 (tf-keras) behind ``tf.keras`` while HGQ2 uses Keras 3 (``import keras``).
# TensorFlow reads this flag once, at its first import, so it is set as early as possible.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # float sums in a fixed order

__version__ = "0.1.0"
