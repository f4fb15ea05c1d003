"""Moved to :mod:`fpga_dnn.rtl.shell` (the AXI-Stream shell is part of generating a design);
this name stays for callers of the old path."""

from fpga_dnn.rtl.shell import *  # noqa: F401,F403
from fpga_dnn.rtl.shell import (  # noqa: F401 (underscore-free names re-exported explicitly)
    DUMMY_CORE_MODULE, DUMMY_CORE_SOURCE, SHELL_MODULE, SHELL_SOURCE, SIM_DIR, AxisDesign, dummy_core_parameters,
    dummy_core_reference, dummy_core_spec, render_axis_top, write_axis_design, write_dummy_design,
)
