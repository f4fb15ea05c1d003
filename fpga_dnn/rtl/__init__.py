"""RTL generation: hls4ml ``ModelGraph`` -> da4ml fixed-point trace -> pipelined Verilog.

* :func:`trace_model_graph` (:mod:`.trace`) rebuilds the converted network, layer by layer and
  type by type, with da4ml's tracing API; the result is bit-exact with hls4ml's C-sim.
* :func:`write_verilog` / :class:`RtlDesign` (:mod:`.verilog`) emit the pipelined core with one
  fixed-point format per port (its Verilator model for bulk runs: :mod:`fpga_dnn.simulate.emulator`).
* :func:`compare_routes` (:mod:`.hgq_check`) checks an HGQ2 model against da4ml's own tracer.

Importing this package is cheap: da4ml and hls4ml are imported by the functions that use them.
"""

from .hgq_check import RouteAgreement, compare_routes, trace_hgq2
from .layers import supported_layers
from .precision import HlsType, UnsupportedPrecisionError
from .trace import LayerInfo, TracedModel, UnsupportedGraphError, trace_model_graph
from .verilog import RtlDesign, write_verilog

__all__ = [
    "HlsType",
    "LayerInfo",
    "RouteAgreement",
    "RtlDesign",
    "TracedModel",
    "UnsupportedGraphError",
    "UnsupportedPrecisionError",
    "compare_routes",
    "supported_layers",
    "trace_hgq2",
    "trace_model_graph",
    "write_verilog",
]
