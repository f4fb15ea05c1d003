"""Golden vectors: a bundle's known-answer self-test.

A bundle may carry ``golden.npz``: inputs with the outputs the verified design gave for them,
bit for bit (the flow takes them from the RTL emulation and checks them against hls4ml's C-sim,
:mod:`fpga_dnn.verify.golden`). The spec names the file under ``extra.golden`` and lists it in
its ``checksums``, so the signature covers it like the bitstream. Before the first ``predict``,
:meth:`~fpga_dnn.runtime.accelerator.Accelerator.open` runs every vector through the board
(:func:`self_test`) and refuses a board whose outputs differ, naming the first differing
vector and element; ``fpga-dnn verify BUNDLE`` / ``python -m fpga_dnn.runtime verify BUNDLE``
run them on demand and print a pass/fail table (:func:`format_table`).

The file is a plain ``.npz`` (no pickled objects: read with ``allow_pickle=False``):

* ``inputs``: int64, ``(n, *input shape)``, the input format's integers ``q``;
* ``outputs``: int64, ``(n, *output shape)``, the output format's integers;
* ``kinds``: unicode, ``(n,)``, what each vector is for (``test 3``, ``edge all-max``,
  ``probe 17``...), shown in reports;
* ``format``: the string :data:`GOLDEN_FORMAT`.

A bundle without golden vectors (made before they existed, or by hand) is still run: the
self-test reports that it has none and logs a warning (``self_test='required'`` refuses it).
Imports numpy only.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from fpga_dnn.errors import DataError, DeviceError
from fpga_dnn.runtime.packing import from_fixed, int_range

log = logging.getLogger("fpga_dnn.runtime")

GOLDEN_FILENAME = "golden.npz"
GOLDEN_FORMAT = "fpga_dnn-golden-v1"
#: The spec's ``extra`` key that names the file (and its vector count).
GOLDEN_KEY = "golden"
#: At most this many vectors (a self-test must stay short on the board).
MAX_VECTORS = 4096
#: ``self_test`` values :meth:`Accelerator.open` accepts besides True/False.
REQUIRED = "required"

PathLike = Union[str, Path]


class SelfTestError(DeviceError):
    """The board's outputs differ from the bundle's golden vectors (or a required set is missing)."""


@dataclass(frozen=True)
class GoldenVectors:
    """Inputs (``q`` integers) with the bit-exact outputs the verified design gave for them."""

    inputs: np.ndarray
    outputs: np.ndarray
    kinds: np.ndarray

    def __post_init__(self) -> None:
        for name in ("inputs", "outputs"):
            a = np.asarray(getattr(self, name))
            if a.dtype.kind not in "iu":
                raise DataError(f"golden vectors: {name} must be integers (fixed-point q), got dtype {a.dtype}")
            object.__setattr__(self, name, a.astype(np.int64))
        object.__setattr__(self, "kinds", np.asarray(self.kinds, dtype=str))
        n = len(self.inputs)
        if not (self.inputs.ndim >= 2 and len(self.outputs) == n and self.kinds.shape == (n,) and 1 <= n):
            raise DataError(f"golden vectors: {n} inputs, {len(self.outputs)} outputs and {self.kinds.shape} kinds "
                            "do not line up (need at least one vector, one kind per vector)")

    def __len__(self) -> int:
        return len(self.inputs)

    def save(self, path: PathLike) -> Path:
        """Write the ``.npz``, byte for byte the same for the same vectors (no time stamps: np.savez
        would stamp each member, and a rebuilt bundle's checksum would change for nothing)."""
        return save_npz(path, inputs=self.inputs, outputs=self.outputs, kinds=self.kinds,
                        format=np.array(GOLDEN_FORMAT))

    @classmethod
    def load(cls, path: PathLike, spec=None) -> "GoldenVectors":
        """Read ``path`` without unpickling anything; with ``spec``, check the shapes and that
        every integer lies in its port format's range. Raises :class:`DataError` (one line)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"inputs", "outputs", "kinds", "format"} - set(data.files)
                if missing:
                    raise DataError(f"golden vectors {path.name}: missing {', '.join(sorted(missing))}")
                if str(data["format"]) != GOLDEN_FORMAT:
                    raise DataError(f"golden vectors {path.name}: format {str(data['format'])[:40]!r}; "
                                    f"this runtime reads {GOLDEN_FORMAT}")
                gv = cls(data["inputs"], data["outputs"], data["kinds"])
        except (OSError, ValueError, KeyError) as err:   # not an npz, a pickled member, truncated
            raise DataError(f"golden vectors {path.name} cannot be read: {str(err)[:160]}") from None
        if len(gv) > MAX_VECTORS:
            raise DataError(f"golden vectors {path.name}: {len(gv)} vectors (at most {MAX_VECTORS})")
        if spec is not None:
            for name, arr, port in (("inputs", gv.inputs, spec.input), ("outputs", gv.outputs, spec.output)):
                if arr.shape[1:] != tuple(port.shape):
                    raise DataError(f"golden vectors {path.name}: {name} have shape {arr.shape[1:]} per vector, "
                                    f"the spec's {name[:-1]} is {tuple(port.shape)}")
                lo, hi = int_range(port.format)
                if arr.min() < lo or arr.max() > hi:
                    raise DataError(f"golden vectors {path.name}: {name} outside {port.format}'s range [{lo}, {hi}]")
        return gv


def save_npz(path: PathLike, **arrays) -> Path:
    """An ``.npz`` (readable by ``np.load(allow_pickle=False)``) that is byte for byte the same for
    the same arrays: np.savez stamps each member with the time, so its bytes (and any checksum or
    content hash of the file) change for nothing."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())
    return path


def attach(directory: PathLike, spec, golden: GoldenVectors, info: Optional[Dict[str, Any]] = None):
    """Write ``golden`` into the bundle folder ``directory`` and return ``spec`` naming it
    (``extra.golden``, with ``info`` such as the design coverage) with its checksum; save the
    returned spec into the bundle."""
    path = golden.save(Path(directory) / GOLDEN_FILENAME)
    GoldenVectors.load(path, spec)   # what the runtime will read
    extra = {**spec.extra, GOLDEN_KEY: {**(info or {}), "file": GOLDEN_FILENAME, "vectors": len(golden),
                                        "format": GOLDEN_FORMAT}}
    return spec.replace(extra=extra).with_checksums(directory, [GOLDEN_FILENAME])


def golden_file(spec) -> Optional[str]:
    """The golden vectors' file name the spec declares, or None."""
    entry = spec.extra.get(GOLDEN_KEY)
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        from fpga_dnn.runtime.spec import SpecError
        raise SpecError(f"spec: extra.{GOLDEN_KEY}: expected {{'file': NAME, ...}}, got {str(entry)[:80]}")
    return entry["file"]


@dataclass
class SelfTestReport:
    """What :func:`self_test` found. ``status``: ``passed``, ``failed`` or ``none`` (no vectors)."""

    design: str
    backend: str
    status: str
    vectors: int = 0
    kinds: List[str] = field(default_factory=list)
    passed: Optional[np.ndarray] = None       # bool per vector
    first: Optional[Dict[str, Any]] = None    # the first difference: vector, kind, element, expected, got
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def message(self) -> str:
        """One line: the verdict (for a failure, the first differing vector and element)."""
        if self.status == "none":
            return f"self-test of {self.design} on {self.backend}: the bundle has no golden vectors ({self.note})"
        if self.status == "passed":
            return f"self-test of {self.design} on {self.backend}: all {self.vectors} golden vectors bit-exact"
        f = self.first
        bad = int((~self.passed).sum())
        return (f"self-test of {self.design} on {self.backend} failed: golden vector {f['vector']} ({f['kind']}) "
                f"output element {f['element']}: expected {f['expected']} ({f['expected_value']:g}) got {f['got']} "
                f"({f['got_value']:g}); {bad} of {self.vectors} vectors differ, so this board does not compute what "
                f"was verified{self.note}")

    def as_dict(self) -> Dict[str, Any]:
        return {"design": self.design, "backend": self.backend, "status": self.status, "vectors": self.vectors,
                "failed": 0 if self.passed is None else int((~self.passed).sum()), "first_difference": self.first}


def self_test(acc, golden: Optional[GoldenVectors]) -> SelfTestReport:
    """Run every golden vector through ``acc`` (an :class:`Accelerator`: the whole path, packing,
    DMA and decoding) and compare the output integers bit for bit."""
    spec, name = acc.spec, acc.backend.name
    if golden is None:
        return SelfTestReport(spec.name, name, "none", note="made before golden vectors, or by hand")
    got = np.asarray(acc.predict_fixed(golden.inputs)).reshape(len(golden), -1)
    want = golden.outputs.reshape(len(golden), -1)
    same = got == want
    passed = same.all(axis=1)
    rep = SelfTestReport(spec.name, name, "passed" if passed.all() else "failed", len(golden),
                         [str(k) for k in golden.kinds], passed)
    if not passed.all():
        v = int(np.argmin(passed))
        e = int(np.argmin(same[v]))
        fmt = spec.output.format
        rep.first = {"vector": v, "kind": str(golden.kinds[v]), "element": e, "expected": int(want[v, e]),
                     "got": int(got[v, e]), "expected_value": float(from_fixed(want[v, e], fmt)),
                     "got_value": float(from_fixed(got[v, e], fmt))}
        model = (acc.backend.info() or {}).get("accelerator") or (acc.backend.info() or {}).get("model")
        if model == "InstantModel":
            rep.note = (" (the accelerator model is the instant reference function, not the network: "
                        "give the RTL emulation as model=, e.g. fpga-dnn verify --design)")
    return rep


def format_table(rep: SelfTestReport, limit: int = 40) -> str:
    """A pass/fail table: one row per kind of vector (test samples, edges, probes), then the verdict."""
    lines = [f"golden vectors of {rep.design} on {rep.backend}:"]
    if rep.status == "none":
        return "\n".join(lines + ["  none in this bundle", rep.message()])
    groups: Dict[str, List[int]] = {}
    for i, k in enumerate(rep.kinds):
        groups.setdefault(k.split(" ")[0], []).append(i)
    lines.append(f"  {'kind':<10} {'vectors':>8} {'passed':>8} {'failed':>8}")
    for kind, idx in groups.items():
        ok = int(rep.passed[idx].sum())
        lines.append(f"  {kind:<10} {len(idx):>8} {ok:>8} {len(idx) - ok:>8}")
    bad = np.flatnonzero(~rep.passed)
    for i in bad[:limit]:
        lines.append(f"  FAIL vector {i} ({rep.kinds[i]})")
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    lines.append(("PASS: " if rep.status == "passed" else "FAIL: ") + rep.message())
    return "\n".join(lines)


def check_golden_option(self_test_option) -> None:
    if self_test_option not in (True, False, REQUIRED):
        raise DataError(f"self_test must be True, False or {REQUIRED!r}, got {self_test_option!r}")


def run_open_self_test(acc, option) -> SelfTestReport:
    """:meth:`Accelerator.open`'s check: raises :class:`SelfTestError` (one line) on a failure,
    or with ``option='required'`` on a bundle without vectors; warns on a bundle without them."""
    rep = acc.self_test()
    if rep.status == "failed":
        raise SelfTestError(rep.message() + " (self_test=False skips this check)")
    if rep.status == "none":
        if option == REQUIRED:
            raise SelfTestError(rep.message() + "; self_test='required' refuses it (rebuild the bundle with the flow)")
        log.warning(rep.message() + ": running it unchecked")
    return rep


def verify(bundle_dir: PathLike, backend: str = "pynq", print_fn=print, **open_options) -> SelfTestReport:
    """``fpga-dnn verify`` / ``python -m fpga_dnn.runtime verify``: open the bundle (signature and
    checksums checked as always), run its golden vectors, print the pass/fail table."""
    from fpga_dnn.runtime.accelerator import Accelerator

    with Accelerator.open(bundle_dir, backend=backend, self_test=False, **open_options) as acc:
        rep = acc.self_test()
    if print_fn is not None:
        print_fn(format_table(rep))
    return rep
