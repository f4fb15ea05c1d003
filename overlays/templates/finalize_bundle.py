"""Complete the bundle's spec.json after Vivado exported the bundle: checksums and the real PL clock.

    python3 finalize_bundle.py BUNDLE_DIR [--pl-clock reports/pl_clock_mhz.txt]

Standard library only, so it runs on the Vivado machine without fpga_dnn installed. It changes
nothing in spec.json but

* the ``checksums`` entries of ``<name>.bit`` and ``<name>.hwh``, in the form
  ``fpga_dnn.runtime.spec.Spec`` writes and verifies (``"sha256:<hex>"``, sorted keys); the
  runtime refuses a bundle whose files do not match;
* with ``--pl-clock FILE`` (written by the Vivado step, export_bundle.tcl): ``clock_mhz`` and
  ``extra.overlay.clock_mhz`` become the PL clock Vivado really set (its divisors give e.g.
  99.999 MHz for 100 asked for); ``extra.overlay.clock_mhz_requested`` keeps the board file's.

Copied into each overlay folder by fpga_dnn.overlay (``fpga_dnn.overlay.bundle.finalize_bundle``
is the same step in Python; a test checks that both write the same spec).
"""

import hashlib
import json
import os
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def read_clock(path):
    """The PL clock in MHz from the Vivado step's file (one number), or an error message."""
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError as err:
        return None, f"cannot read {path}: {err.strerror} (did the Vivado step export the bundle?)"
    try:
        mhz = round(float(text), 6)
    except ValueError:
        return None, f"{path} should hold the PL clock in MHz, holds {text[:40]!r}"
    if not 0 < mhz < 2000:
        return None, f"{path}: PL clock {mhz} MHz is not a clock"
    return mhz, None


def main(argv):
    args = argv[1:]
    clock_file = None
    if "--pl-clock" in args:
        i = args.index("--pl-clock")
        if i + 1 >= len(args):
            args = []
        else:
            clock_file = args[i + 1]
            args = args[:i] + args[i + 2:]
    if len(args) != 1:
        print("usage: python3 finalize_bundle.py BUNDLE_DIR [--pl-clock reports/pl_clock_mhz.txt]", file=sys.stderr)
        return 2
    bundle = args[0]
    spec_path = os.path.join(bundle, "spec.json")
    try:
        with open(spec_path) as fh:
            spec = json.load(fh)
    except (OSError, ValueError) as err:
        print(f"ERROR: [fpga_dnn] cannot read {spec_path}: {err}", file=sys.stderr)
        return 1
    name = spec.get("name")
    sums = dict(spec.get("checksums") or {})
    # an encrypted Zynq UltraScale+ bundle carries bootgen's <name>.bin instead of the .bit
    bitstream = ".bin" if os.path.isfile(os.path.join(bundle, f"{name}.bin")) and \
        not os.path.isfile(os.path.join(bundle, f"{name}.bit")) else ".bit"
    for ext in (bitstream, ".hwh"):
        path = os.path.join(bundle, f"{name}{ext}")
        if not os.path.isfile(path):
            print(f"ERROR: [fpga_dnn] {path} is missing: did Vivado export the bundle?", file=sys.stderr)
            return 1
        sums[f"{name}{ext}"] = sha256(path)
    spec["checksums"] = dict(sorted(sums.items()))
    if clock_file is not None:
        mhz, err = read_clock(clock_file)
        if err:
            print(f"ERROR: [fpga_dnn] {err}", file=sys.stderr)
            return 1
        spec["clock_mhz"] = mhz
        overlay = spec.setdefault("extra", {}).setdefault("overlay", {})
        overlay.setdefault("clock_mhz_requested", overlay.get("clock_mhz"))
        overlay["clock_mhz"] = mhz
    tmp = spec_path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(json.dumps(spec, indent=2) + "\n")
    os.replace(tmp, spec_path)
    clock = f" and the PL clock {spec['clock_mhz']} MHz" if clock_file is not None else ""
    print(f"fpga_dnn: checksums of {name}{bitstream} and {name}.hwh{clock} written to {spec_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
