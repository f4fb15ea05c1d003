"""Soak and stress of the runtime: a long run through the ``sim`` backend with faults injected.

A million samples (by default) go through :class:`~fpga_dnn.runtime.accelerator.Accelerator` on
the fake board — real pynq, the timed fake DMA — in calls of random size (one sample up to
several DMA transfers) and in streams of random batches, while DMA errors (the status error
bits on either channel) and accelerator stalls (a frame that never comes back: a timeout) are
injected at random. Every output is checked against the reference function sample by sample,
so a lost, duplicated or reordered sample shows as a mismatch; a call that raises is retried
with the same inputs (what an application does), and the retry must succeed: the error was
recovered. Reported: samples sent (attempted, retries included) and received (verified), errors
injected and recovered, and the per-call latency distribution (p50, p99, max).

Runs in the board environment (pynq): ``python -m fpga_dnn.runtime.soak [--samples N] [--json
out.json]``; ``make bench`` records it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

#: DMA transfer limit of the soak design: c_sg_length_width 14 -> 16,383 bytes = 255 samples,
#: so calls of up to 3 x 255 samples split often.
SG_LENGTH_WIDTH = 14
ERROR_BITS = (0x10, 0x20, 0x40)


class _Stalls:
    """A frame model that, when armed, swallows the next frame (the accelerator hangs once)."""

    frame_model = True

    def __init__(self, inner):
        self.inner, self.armed, self.stalls = inner, False, 0

    def __call__(self, frame):
        if self.armed:
            self.armed = False
            self.stalls += 1
            return None
        return self.inner(frame)


def run_soak(samples: int = 1_000_000, seed: int = 0, error_rate: float = 0.03, stall_rate: float = 0.01,
             stream_fraction: float = 0.3, timeout_s: float = 0.05, workdir: Optional[Path] = None,
             progress=None) -> Dict[str, Any]:
    """The soak run (see the module docstring); returns the counts and the latency figures.

    samples: verified samples to deliver. error_rate / stall_rate: chance per call that a DMA
    error / an accelerator stall is injected before it. stream_fraction: share of calls made as
    a ``predict_stream`` of several batches instead of one ``predict``. timeout_s: the DMA
    timeout (the price of a stall). ``progress(done, total)``: called now and then.
    """
    from fpga_dnn.errors import DmaError
    from fpga_dnn.runtime.accelerator import Accelerator
    from fpga_dnn.runtime.fake.hwh import OverlayDesign
    from fpga_dnn.runtime.fake.models import InstantModel, reference_fn
    from fpga_dnn.runtime.packing import from_fixed, to_fixed
    from fpga_dnn.runtime.spec import Spec

    rng = np.random.default_rng(seed)
    spec = Spec.create("soak_mlp", (64,), "ufixed<5,5>", (10,), "fixed<16,6>", 3, stream_bits=64)
    ref = reference_fn(spec)
    with tempfile.TemporaryDirectory(prefix="fpga_dnn_soak_") as tmp:
        bundle = Path(workdir or tmp) / "bundle"
        bundle.mkdir(parents=True, exist_ok=True)
        OverlayDesign.for_spec(spec, sg_length_width=SG_LENGTH_WIDTH).write(bundle, spec.name)
        spec.with_checksums(bundle, [f"{spec.name}.bit", f"{spec.name}.hwh"]).save(bundle)
        model = _Stalls(InstantModel(spec))
        acc = Accelerator.open(bundle, backend="sim", model=model, timeout_s=timeout_s,
                               allow_unsigned=True)   # a bundle generated here, for the fake board
        dma = acc.backend.fake.dma
        limit = acc.samples_per_transfer
        counts = {"calls": 0, "stream_calls": 0, "samples_sent": 0, "samples_received": 0, "mismatched_samples": 0,
                  "dma_errors_injected": 0, "stalls_injected": 0, "errors_raised": 0, "recovered": 0,
                  "transfers": 0, "dma_resets": 0}
        latencies = []
        t_start = time.perf_counter()

        def expected(x):
            return from_fixed(ref(to_fixed(x, spec.input.format)), spec.output.format)

        def inject() -> None:
            if rng.random() < error_rate:
                dma.inject_error(("MM2S", "S2MM")[rng.integers(2)], int(rng.choice(ERROR_BITS)))
                counts["dma_errors_injected"] += 1
            if rng.random() < stall_rate:
                model.armed = True
                counts["stalls_injected"] += 1

        def attempt(batches, stream: bool):
            """One call (retried until it succeeds); returns the outputs, one per batch."""
            failed = 0
            while True:
                inject()
                sent = sum(len(b) for b in batches)
                counts["samples_sent"] += sent
                t0 = time.perf_counter()
                try:
                    if stream:
                        out = list(acc.predict_stream(batches))
                    else:
                        out = [acc.predict(batches[0])]
                except DmaError:
                    counts["errors_raised"] += 1
                    failed += 1
                    if failed > 10:
                        raise
                    continue
                latencies.append(time.perf_counter() - t0)
                counts["recovered"] += failed   # each error raised was followed by a call that worked
                return out

        done = 0
        while done < samples:
            stream = rng.random() < stream_fraction
            sizes = rng.integers(1, 3 * limit + 2, size=int(rng.integers(2, 6)) if stream else 1)
            sizes = np.minimum(sizes, max(1, samples - done))
            batches = [acc.random_inputs(int(n), seed=int(rng.integers(1 << 31))) for n in sizes]
            out = attempt(batches, stream)
            counts["calls"] += 1
            counts["stream_calls"] += int(stream)
            for x, y in zip(batches, out):
                same = (y == expected(x)).all(axis=1) if len(y) == len(x) else np.zeros(len(x), bool)
                counts["mismatched_samples"] += int((~same).sum())
                counts["samples_received"] += int(same.sum())
            done += int(sizes.sum())
            if progress is not None and counts["calls"] % 200 == 0:
                progress(done, samples)
        seconds = time.perf_counter() - t_start
        counts["transfers"] = sum(1 for t in dma.transfers if t.channel == "MM2S") if dma.trace else None
        counts["dma_resets"] = acc.backend.resets
        counts["stalls_seen_by_accelerator"] = model.stalls
        acc.close()
    lat = np.array(latencies) * 1e6
    return {"samples": samples, "seconds": seconds, "dma_limit_samples": limit, **counts,
            "errors_injected": counts["dma_errors_injected"] + counts["stalls_injected"],
            # (an injected error can be absorbed by another in the same transfer: raised <= injected)
            "all_recovered": counts["recovered"] == counts["errors_raised"],
            "nothing_lost_duplicated_or_reordered": counts["mismatched_samples"] == 0
            and counts["samples_received"] == samples,
            "latency_us": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                           "max": float(lat.max()), "calls": int(lat.size)}}


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m fpga_dnn.runtime.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the result as JSON to this file ('-': stdout)")
    args = ap.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_soak(args.samples, args.seed,
                       progress=lambda d, t: print(f"soak: {d:,}/{t:,} samples", file=sys.stderr, flush=True))
    text = json.dumps(res, indent=2)
    if args.json == "-":
        print(text)
    elif args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0 if res["nothing_lost_duplicated_or_reordered"] and res["all_recovered"] else 1


if __name__ == "__main__":
    sys.exit(main())
