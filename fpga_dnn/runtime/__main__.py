"""``python -m fpga_dnn.runtime``: the board-side commands (numpy and pynq only).

    python -m fpga_dnn.runtime check BUNDLE [--trusted-key PUB]
    python -m fpga_dnn.runtime verify BUNDLE --trusted-key PUB [--backend pynq|sim|emulate] [--model-worker CMD]
    python -m fpga_dnn.runtime run BUNDLE --input x.npy --trusted-key PUB [--min-version N] [--allow-unsigned]
                                   [--labels y.npy] [--backend pynq|sim|emulate]
                                   [--batch N] [--bench-samples N] [--output y.npy] [--timeout S]

On a PYNQ board this is the whole runtime (the ``fpga-dnn`` command needs the toolchain's
dependencies). User errors print one line and exit with status 2, like ``fpga-dnn``.
"""

from __future__ import annotations

import argparse
import sys

from fpga_dnn.errors import FpgaDnnError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fpga_dnn.runtime", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="check a bundle folder (spec, checksums, bitstream, handoff, DMA)")
    c.add_argument("bundle")
    c.add_argument("--trusted-key", action="append", default=[], metavar="PUB",
                   help="public key (PEM) whose signature is accepted; repeatable")
    v = sub.add_parser("verify", help="run the bundle's golden vectors (known-answer test); print pass/fail")
    v.add_argument("bundle")
    r = sub.add_parser("run", help="predict inputs from a file; print accuracy, latency, throughput")
    r.add_argument("bundle")
    r.add_argument("--input", required=True, help=".npy inputs, or .npz with x[_test] (and y[_test])")
    r.add_argument("--labels", help=".npy class labels or expected outputs")
    r.add_argument("--batch", type=int, default=None, help="samples per predict call (default: all)")
    r.add_argument("--bench-samples", type=int, default=1000, help="samples to time (0: skip)")
    r.add_argument("--output", help="save predictions to this .npy")
    r.add_argument("--saturate", action="store_true", help="clip out-of-range inputs instead of refusing them")
    r.add_argument("--round", action="store_true", help="round off-grid inputs (to nearest, ties to even)")
    r.add_argument("--no-self-test", action="store_true", help="skip the golden-vector self-test at open")
    for q in (r, v):
        _open_args(q)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "check":
            from fpga_dnn.runtime.bundle import check_bundle
            report = check_bundle(args.bundle, trusted_keys=args.trusted_key)
            print(report.format())
            return 0 if report.ok else 1
        options = {"timeout_s": args.timeout, "trusted_keys": args.trusted_key,
                   "allow_unsigned": args.allow_unsigned, "min_version": args.min_version}
        worker = None
        if args.model_worker:
            import shlex
            from fpga_dnn.runtime.bridge import WorkerModelFn
            worker = options["model"] = WorkerModelFn(shlex.split(args.model_worker))
        try:
            if args.cmd == "verify":
                from fpga_dnn.runtime.golden import verify
                return 0 if verify(args.bundle, backend=args.backend, **options).status == "passed" else 1
            from fpga_dnn.runtime.run import run
            options.update(overflow="saturate" if args.saturate else "raise",
                           rounding="nearest_even" if args.round else "exact", self_test=not args.no_self_test)
            run(args.bundle, args.input, backend=args.backend, labels_path=args.labels, batch=args.batch,
                bench_samples=args.bench_samples, output_path=args.output, **options)
        finally:
            if worker is not None:
                worker.close()
        return 0
    except FpgaDnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _open_args(p) -> None:
    """The options both run and verify take: backend, trust, timeout, the model worker."""
    p.add_argument("--backend", default="pynq", choices=["pynq", "sim", "emulate"],
                   help="pynq: the board (default); sim: pynq on a fake board; emulate: no pynq")
    p.add_argument("--sim", action="store_const", const="sim", dest="backend", help="same as --backend sim")
    p.add_argument("--timeout", type=float, default=None, help="DMA timeout per transfer, seconds")
    p.add_argument("--trusted-key", action="append", default=[], metavar="PUB",
                   help="public key (PEM) whose signature is accepted; repeatable")
    p.add_argument("--allow-unsigned", action="store_true", help="run a bundle without a signature")
    p.add_argument("--min-version", type=int, default=None, help="refuse a bundle whose bundle_version is lower")
    p.add_argument("--model-worker", metavar="CMD",
                   help="sim/emulate: a command serving the accelerator's model_fn (fpga_dnn.runtime.bridge), "
                        "e.g. the RTL emulation in the toolchain environment; default: the instant reference model")


if __name__ == "__main__":
    sys.exit(main())
