"""The Verilog library files the generators use but do not write, and what each of them holds.

A generator records in its :class:`~fpga_dnn.rtl.design.Design` what every source holds
(:class:`~fpga_dnn.rtl.design.SourceInfo`: its modules, the memory files its parameters name by
default). For the files it writes it knows that; for the library files it copies or references
it is declared here, once. ``tests/test_layout.py`` checks every declaration against the files
themselves (the one place that reads them), so a library change the declarations miss - a new
da4ml release, a new ``fd_*`` module - fails there rather than in yosys.
"""

from __future__ import annotations

from pathlib import Path

from .design import SourceInfo

#: da4ml's static sources (``da4ml/codegen/rtl/verilog/source/*.v``, copied by da4ml into a core's
#: ``src/static/``) define one module each, named after the file; these name a default memory file
#: (``lookup_table``: ``parameter MEM_FILE = "whatever.mem"``).
DA4ML_MEMFILE_DEFAULTS = {"lookup_table": ("whatever.mem",)}

#: The streaming library (``fpga_dnn/rtl/stream/hdl/fd_*.v``) defines one module per file, named
#: after the file (``memfiles.hdl_sources`` finds them so); these name default memory files.
STREAM_MEMFILE_DEFAULTS = {"fd_mvu": ("weights.mem", "bias.mem"), "fd_chanaffine": ("scale.mem", "bias.mem")}
#: Streaming library modules that instantiate others (a source list naming one needs the rest).
STREAM_REQUIRES = {"fd_pool": ("fd_swg",), "fd_requant": ("fd_cast",), "fd_mvu": ("fd_cast",)}


def da4ml_static(path) -> SourceInfo:
    """What one of da4ml's static sources holds."""
    stem = Path(path).stem
    return SourceInfo((stem,), DA4ML_MEMFILE_DEFAULTS.get(stem, ()))


def stream_library(path) -> SourceInfo:
    """What one ``fd_*.v`` of the streaming library holds."""
    stem = Path(path).stem
    return SourceInfo((stem,), STREAM_MEMFILE_DEFAULTS.get(stem, ()), STREAM_REQUIRES.get(stem, ()))
