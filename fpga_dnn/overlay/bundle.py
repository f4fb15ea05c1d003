"""The deployable bundle: one folder with ``<name>.bit``, ``<name>.hwh`` and ``spec.json``.

(An encrypted Zynq UltraScale+ build carries bootgen's ``<name>.bin`` instead of the ``.bit``: see
:mod:`fpga_dnn.overlay.encryption`.) After the checksums, sign the folder with ``fpga-dnn sign``
(:mod:`fpga_dnn.runtime.signing`): the board runtime refuses unsigned bundles by default.

pynq.Overlay loads ``<name>.bit`` and reads the hardware handoff ``<name>.hwh`` beside it (same
base name), so both are copied under the spec's name. The spec is written into the bundle when
the scripts are generated (with ``extra['overlay']`` describing board and DMA); the checksums of
the two files are added once Vivado has exported them — by ``finalize_bundle.py`` in the
overlay folder (standard library only, for the Vivado machine) or by :func:`finalize_bundle`,
together with the PL clock Vivado really set.
"""

from __future__ import annotations

from pathlib import Path

from fpga_dnn.errors import ConfigError
from fpga_dnn.runtime.spec import SPEC_FILENAME, Spec

BUNDLE_EXTENSIONS = (".bit", ".hwh")


def bundle_files(spec: Spec, bundle_dir=None) -> list[str]:
    """The hardware files of ``spec``'s bundle: ``[<name>.bit, <name>.hwh]``, or ``[<name>.bin,
    <name>.hwh]`` when ``bundle_dir`` holds an encrypted ZynqMP image and no ``.bit``."""
    if bundle_dir is not None and (Path(bundle_dir) / f"{spec.name}.bin").is_file() \
            and not (Path(bundle_dir) / f"{spec.name}.bit").is_file():
        return [f"{spec.name}.bin", f"{spec.name}.hwh"]
    return [f"{spec.name}{ext}" for ext in BUNDLE_EXTENSIONS]


def read_pl_clock(path) -> float:
    """The PL clock in MHz that the Vivado step wrote (``reports/pl_clock_mhz.txt``: one number)."""
    path = Path(path)
    try:
        text = path.read_text().strip()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror} (did the Vivado step export the bundle?)") from None
    try:
        mhz = round(float(text), 6)
    except ValueError:
        raise ConfigError(f"{path} should hold the PL clock in MHz, holds {text[:40]!r}") from None
    if not 0 < mhz < 2000:
        raise ConfigError(f"{path}: PL clock {mhz} MHz is not a clock")
    return mhz


def finalize_bundle(bundle_dir, pl_clock_file=None) -> Spec:
    """Add the checksums of ``<name>.bit``/``<name>.hwh`` to the bundle's spec; returns the spec.

    ``pl_clock_file``: the Vivado step's ``reports/pl_clock_mhz.txt``; its clock becomes the spec's
    ``clock_mhz`` (and ``extra.overlay.clock_mhz``; ``clock_mhz_requested`` keeps the board file's).
    The same step as ``finalize_bundle.py`` in the overlay folder. Raises :class:`ConfigError`
    naming the missing file when Vivado has not exported it.
    """
    bundle_dir = Path(bundle_dir)
    spec = Spec.load(bundle_dir / SPEC_FILENAME)
    files = bundle_files(spec, bundle_dir)
    for name in files:
        if not (bundle_dir / name).is_file():
            raise ConfigError(f"bundle {bundle_dir}: {name} is missing (has Vivado run the overlay scripts?)")
    spec = spec.with_checksums(bundle_dir, files)
    if pl_clock_file is not None:
        mhz = read_pl_clock(pl_clock_file)
        overlay = dict(spec.extra.get("overlay") or {})
        overlay.setdefault("clock_mhz_requested", overlay.get("clock_mhz"))
        overlay["clock_mhz"] = mhz
        spec = spec.replace(clock_mhz=mhz, extra={**spec.extra, "overlay": overlay})
    spec.save(bundle_dir / SPEC_FILENAME)
    spec.verify_checksums(bundle_dir)
    return spec
