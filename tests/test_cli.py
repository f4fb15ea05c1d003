import subprocess
import sys

import pytest

from fpga_dnn.cli import build_parser


def test_help_lists_every_verb():
    r = subprocess.run([sys.executable, "-m", "fpga_dnn", "--help"], capture_output=True, text=True, check=True)
    for verb in ("train", "convert", "csim", "flow", "rtl", "sim", "estimate", "overlay", "run", "bundle", "compress", "pareto"):
        assert verb in r.stdout


@pytest.mark.parametrize("verb, option", [("train", "--weight-bits"), ("convert", "--io-type"),
                                          ("csim", "--reuse-factor"), ("flow", "config"),
                                          ("rtl", "--stream-bits"), ("sim", "--no-cocotb"),
                                          ("estimate", "--target-board"), ("overlay", "--vivado"),
                                          ("run", "--sim"), ("bundle", "bundle"),
                                          ("compress", "--techniques"), ("pareto", "--yosys")])
def test_each_verb_has_its_own_help(verb, option):
    r = subprocess.run([sys.executable, "-m", "fpga_dnn", verb, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and option in r.stdout and f"fpga-dnn {verb}" in r.stdout


def test_parser_defaults():
    a = build_parser().parse_args(["csim", "digits_mlp"])
    assert (a.framework, a.io_type, a.board, a.weight_bits) == ("qkeras", "io_parallel", None, 8)  # None: the flow target (pynq-z2)
