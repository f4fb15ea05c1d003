"""Streaming (folded) RTL: the Verilog module library in ``hdl/`` and its memory files."""
