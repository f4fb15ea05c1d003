"""fpga_dnn: quantized DNNs to FPGAs, bit-exact at every step.

Importing the package is cheap: TensorFlow, hls4ml and da4ml are imported only by the steps
that need them (see :mod:`fpga_dnn.kerasenv`), and :mod:`fpga_dnn.runtime` needs only numpy.
"""

__version__ = "0.1.0"
