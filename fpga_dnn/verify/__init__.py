"""Verification of deployed designs: golden vectors (:mod:`.golden`), model-level faults
(:mod:`.model_faults`), robustness (:mod:`.robustness`) and their reports (:mod:`.report`).

The board-side half of the golden vectors (reading them, the self-test) is
:mod:`fpga_dnn.runtime.golden`: the runtime imports numpy only, this package the toolchain.
"""
