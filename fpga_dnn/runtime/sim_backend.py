"""The ``sim`` backend: the ``pynq`` backend's code on a fake PYNQ board (real pynq, fake device).

Everything pynq does on a board happens: ``pynq.Overlay`` parses the bundle's ``.hwh`` (or one
generated from the spec when the bundle has no bitstream yet), binds ``pynq.lib.dma.DMA``,
``download()`` programs the PL clocks through ``pynq.ps.Clocks``, ``pynq.allocate`` gives the
buffers, and :class:`~.pynq_backend.PynqDmaBackend` drives the DMA registers — of the
:class:`~fpga_dnn.runtime.fake.device.FakeBoardDevice`, whose AXI DMA model feeds the
accelerator model: the RTL emulation (a ``model_fn`` on fixed-point integers), the instant
reference model, or a faulty one.

Needs pynq, so it runs in the board environment (Python 3.10, numpy < 2, pynq 3.1).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

from fpga_dnn.errors import DeviceError
from fpga_dnn.runtime.bundle import BOARD_PARTS, Bundle, read_bit_header
from fpga_dnn.runtime.fake.dma import HP_PORT_BYTES_PER_S
from fpga_dnn.runtime.pynq_backend import PynqDmaBackend


class SimBackend(PynqDmaBackend):
    """:class:`PynqDmaBackend` on a :class:`FakeBoardDevice` built for a bundle.

    bundle: the bundle (its ``.bit``/``.hwh`` are used when present).
    model: the accelerator model — ``'instant'``/``None``, a ``model_fn(q_in) -> q_out`` on
        integers (e.g. the RTL emulation), or a frame model (see :mod:`fpga_dnn.runtime.fake.models`).
    board: ``'pynq-z2'`` or ``'ultra96'``; default: the bitstream's part, else ``spec.extra['board']``,
        else PYNQ-Z2.
    design: an :class:`~fpga_dnn.runtime.fake.hwh.OverlayDesign` to generate instead of the
        bundle's handoff (e.g. a small ``sg_length_width`` to force batch splitting).
    access / poll_delay / trace / bandwidth: passed to :class:`FakeBoardDevice` (``bandwidth``:
        bytes/s per DMA channel, default a PYNQ-Z2 HP port's 800 MB/s; ``None``: instant).
    timeout_s / dma: as :class:`PynqDmaBackend`.
    """

    name = "sim"

    def __init__(self, bundle: Bundle, model=None, board: Optional[str] = None, design=None,
                 access: str = "mmap", poll_delay: int = 0, trace: bool = False,
                 timeout_s: Optional[float] = None, dma: Optional[str] = None,
                 bandwidth: Optional[float] = HP_PORT_BYTES_PER_S):
        try:
            from fpga_dnn.runtime.fake.device import FakeBoardDevice
        except ImportError as err:
            raise DeviceError(f"the 'sim' backend needs the pynq package (board environment: Python 3.10, "
                              f"numpy<2, pynq 3.1): {err}; without pynq use backend 'emulate'") from None
        from fpga_dnn.runtime.fake.hwh import OverlayDesign
        from fpga_dnn.runtime.fake.models import make_model

        spec = bundle.spec
        self._tmp = None
        bitfile = bundle.bitfile
        if board is None:
            board = (BOARD_PARTS.get(read_bit_header(bitfile).get("part", "")) if bitfile else None) \
                or spec.extra.get("board") or "pynq-z2"
        if design is not None or bitfile is None:
            design = design or OverlayDesign.for_spec(spec, board=board)
            board = design.board
            self._tmp = tempfile.TemporaryDirectory(prefix="fpga_dnn_sim_")
            bitfile, _ = design.write(self._tmp.name, spec.name)
        self.fake = FakeBoardDevice(make_model(spec, model), board=board, access=access,
                                    poll_delay=poll_delay, trace=trace, bandwidth=bandwidth)
        super().__init__(Path(bitfile), device=self.fake, dma=dma, timeout_s=timeout_s)

    def accelerator_seconds(self) -> float:
        return sum(d.model_seconds for d in self.fake.dmas.values())

    def info(self) -> Dict[str, Any]:
        return {**super().info(), "board": self.fake.board,
                "accelerator": type(self.fake.accelerator).__name__}

    def close(self) -> None:
        super().close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
