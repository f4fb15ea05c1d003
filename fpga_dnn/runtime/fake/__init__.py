"""A simulated PYNQ board for the runtime's ``sim`` backend and tests.

``hwh`` (handoff/bitstream generator), ``memory`` (DDR with CPU caches), ``dma`` (AXI DMA
register model) and ``models`` (accelerator models) need numpy only; ``device`` (the
``pynq.Device`` subclass) needs pynq. Nothing is imported here, so the pynq-free parts load
without pynq.
"""
