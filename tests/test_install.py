"""The environment itself: the traps the install step works around must stay worked around."""

import fpga_dnn
from fpga_dnn import kerasenv


def test_qkeras_is_real_and_on_keras2():
    qk = kerasenv.qkeras()
    assert qk.QDense.__mro__[1].__module__.startswith("tf_keras")


def test_both_keras_worlds_in_one_process():
    k2, k3 = kerasenv.tf_keras(), kerasenv.keras3()
    assert k2.__version__.startswith("2.") and k3.__version__.startswith("3.")
    hgq = kerasenv.hgq()
    assert hasattr(hgq.layers, "QDense")


def test_package_import_is_light():
    import subprocess
    import sys

    code = "import fpga_dnn, fpga_dnn.fixedpoint, fpga_dnn.errors, sys; " \
           "print(any(m in sys.modules for m in ('tensorflow', 'hls4ml', 'keras')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert fpga_dnn.__version__
