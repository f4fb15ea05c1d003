"""Overlay generation: from a verified design to a PYNQ bundle (``.bit`` + ``.hwh`` + ``spec.json``).

There is no Vivado on most machines that run fpga_dnn, so this package *writes* the Vivado flow
as scripts (IP packaging, block design with PS + AXI DMA + accelerator, bitstream, export),
checks what can be checked without Vivado, and runs Vivado only when the user names it. Two
paths share the block design and the bundle format:

* ``rtl``: the AXI-Stream shell + da4ml core (:func:`fpga_dnn.rtl.shell.write_axis_design`)
  packaged as a Vivado IP;
* ``hls``: an hls4ml project's network behind fpga_dnn's HLS AXI-Stream top, synthesised by
  Vitis HLS / Vivado HLS for the board's part (both boards, Ultra96 included).

Both move samples in the beat layout ``fpga_dnn-lanes-v1``, so the runtime treats their
bundles alike. Board facts: ``overlays/boards/*.toml``; templates: ``overlays/templates/``,
``hls/``; user documentation: ``overlays/README.md``.
"""

from .bundle import bundle_files, finalize_bundle
from .generate import ACCEL_CELL, DMA_CELL, PATHS, TEMPLATES_DIR, OverlayScripts, describe, generate_overlay
from .hls import HlsProject, hls_spec, read_hls_project, render_hls_top
from .vivado import find_vivado, run_overlay

__all__ = [
    "ACCEL_CELL", "DMA_CELL", "PATHS", "TEMPLATES_DIR", "HlsProject", "OverlayScripts", "bundle_files",
    "describe", "finalize_bundle", "find_vivado", "generate_overlay", "hls_spec", "read_hls_project",
    "render_hls_top", "run_overlay",
]
