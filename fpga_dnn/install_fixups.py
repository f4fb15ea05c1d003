"""Repairs the toolchain environment after `pip install -r requirements/toolchain.lock`.

hgq2 0.2.0 ships a small Keras 3 package that is *also* named ``qkeras``. Installed into the
same site-packages it overwrites QKeras 0.9.0's ``__init__.py`` and adds ``qlayers/`` and
``quantizers/`` packages that shadow QKeras's ``qlayers.py`` and ``quantizers.py`` (a package
directory wins over a module of the same name), so ``import qkeras`` fails or, worse, gives
layers that do not train under Keras 2. hgq2 itself never imports that shim. We delete the
shim's files (as listed in hgq2's RECORD) and reinstall the real QKeras without dependencies.

Run as ``python -m fpga_dnn.install_fixups``; it is idempotent.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

QKERAS_PIN = "QKeras==0.9.0"


def _shim_dirs() -> list[Path]:
    """Directories under site-packages/qkeras that belong to hgq2's shim."""
    try:
        dist = metadata.distribution("hgq2")
    except metadata.PackageNotFoundError:
        return []
    dirs = set()
    for f in dist.files or []:
        parts = Path(f).parts
        if len(parts) >= 3 and parts[0] == "qkeras" and parts[1] != "__pycache__":
            dirs.add(Path(dist.locate_file(Path(parts[0]) / parts[1])))
    return sorted(dirs)


def _qkeras_is_real() -> bool:
    code = (
        "import os; os.environ['TF_USE_LEGACY_KERAS']='1'; os.environ['TF_CPP_MIN_LOG_LEVEL']='3';"
        "import qkeras, qkeras.qlayers as q; assert q.__file__.endswith('qlayers.py'); qkeras.QDense"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def main() -> int:
    removed = [d for d in _shim_dirs() if d.is_dir()]
    for d in removed:
        shutil.rmtree(d)
    if removed or not _qkeras_is_real():
        print(f"install_fixups: removing hgq2's qkeras shim ({len(removed)} dirs), reinstalling {QKERAS_PIN}")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", QKERAS_PIN],
            check=True,
        )
    if not _qkeras_is_real():
        print("install_fixups: QKeras still does not import; see requirements/README.md", file=sys.stderr)
        return 1
    print("install_fixups: QKeras 0.9.0 and hgq2 coexist")
    return 0


if __name__ == "__main__":
    sys.exit(main())
