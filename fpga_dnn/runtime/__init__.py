"""The board runtime: imports only numpy and the standard library (pynq only in its backend).

Runs on the PYNQ images' Python 3.10 with numpy 1.21+ as well as in the toolchain environment.
:mod:`fpga_dnn.runtime.spec` is the design contract (``spec.json``);
:mod:`fpga_dnn.runtime.packing` holds the beat layout and the vectorised fixed-point packing.
"""

from fpga_dnn.runtime.packing import (  # noqa: F401
    BEAT_LAYOUT,
    decode,
    encode,
    from_fixed,
    int_range,
    pack,
    to_fixed,
    unpack,
)
from fpga_dnn.runtime.spec import FixedFormat, PortSpec, Spec, SpecError, parse_format  # noqa: F401
