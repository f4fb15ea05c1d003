"""Add the bundle files' checksums to the bundle's spec.json (run after Vivado exported them).

    python3 finalize_bundle.py BUNDLE_DIR

Standard library only, so it runs on the Vivado machine without fpga_dnn installed. It changes
nothing in spec.json but the ``checksums`` entries of ``<name>.bit`` and ``<name>.hwh``, in the
form ``fpga_dnn.runtime.spec.Spec`` writes and verifies (``"sha256:<hex>"``, sorted keys); the
runtime refuses a bundle whose files do not match. Copied into each overlay folder by
fpga_dnn.overlay (see ``fpga_dnn.overlay.bundle.finalize_bundle`` for the same step in Python).
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


def main(argv):
    if len(argv) != 2:
        print("usage: python3 finalize_bundle.py BUNDLE_DIR", file=sys.stderr)
        return 2
    bundle = argv[1]
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
    tmp = spec_path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(json.dumps(spec, indent=2) + "\n")
    os.replace(tmp, spec_path)
    print(f"fpga_dnn: checksums of {name}{bitstream} and {name}.hwh written to {spec_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
