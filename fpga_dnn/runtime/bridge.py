"""A ``model_fn`` computed in another Python process: the bridge between the two environments.

The ``sim`` backend needs pynq, which needs numpy < 2 (the board environment); the RTL
emulation needs da4ml, which needs numpy >= 2 (the toolchain environment). :class:`WorkerModelFn`
lets a ``sim`` backend in the board environment use a ``model_fn`` that lives in the toolchain
environment::

    fn = WorkerModelFn([".venv/bin/python", "-m", "fpga_dnn.runtime.bridge",
                        "--factory", "mypackage.emulation:make_model_fn", "build/rtl/digits_mlp"])
    acc = Accelerator.open(bundle, backend="sim", model=fn)

The worker imports ``module:function``, calls ``function(*args)`` once to get the
``model_fn(q_in) -> q_out`` (integers in, integers out; see
:data:`fpga_dnn.runtime.fake.models.ModelFn`), then serves requests. Protocol on the worker's
stdin/stdout, both directions: an 8-byte little-endian length, then that many bytes of an
``.npy`` file (``numpy.save``/``numpy.load`` with ``allow_pickle=False``, readable by numpy 1
and 2 alike). An error in the worker comes back as a length with the top bit set followed by
the UTF-8 message. Every read has a timeout: nothing hangs if the worker dies or stalls.

Standard library and numpy only.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import select
import struct
import subprocess
import sys
import time
import traceback
from typing import Callable, List, Optional, Sequence

import numpy as np

from fpga_dnn.errors import DeviceError

_ERROR_FLAG = 1 << 63


def _encode(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    data = buf.getvalue()
    return struct.pack("<Q", len(data)) + data


def _decode(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


class WorkerModelFn:
    """``model_fn(q_in) -> q_out`` served by a worker process (started on first use).

    argv: the worker's command line (it must speak this module's protocol: usually
        ``[python, "-m", "fpga_dnn.runtime.bridge", "--factory", "module:function", *args]``).
    timeout_s: seconds to wait for each answer (and for the worker to start).
    env: extra environment variables for the worker.

    Use as a context manager, or call :meth:`close`, to stop the worker.
    """

    def __init__(self, argv: Sequence[str], timeout_s: float = 120.0, env: Optional[dict] = None):
        self.argv = list(argv)
        self.timeout_s = float(timeout_s)
        self.env = dict(env or {})
        self._proc: Optional[subprocess.Popen] = None
        self.calls = 0

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            env = {**os.environ, **self.env}
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env)
        return self._proc

    def _read_exact(self, n: int, deadline: float) -> bytes:
        proc = self._proc
        fd = proc.stdout.fileno()
        chunks: List[bytes] = []
        got = 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close(kill=True)
                raise DeviceError(f"model worker {self.argv[0]} did not answer within {self.timeout_s} s")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                err = self._stderr_tail()
                self.close()
                raise DeviceError(f"model worker {' '.join(self.argv[:4])} exited: {err}")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _stderr_tail(self) -> str:
        try:
            self._proc.wait(timeout=1)
            text = self._proc.stderr.read().decode(errors="replace").strip()
        except Exception:  # noqa: BLE001 - best effort for an error message
            text = ""
        return text.splitlines()[-1] if text else f"exit status {self._proc.returncode}"

    def __call__(self, q_in: np.ndarray) -> np.ndarray:
        proc = self._start()
        deadline = time.monotonic() + self.timeout_s
        try:
            proc.stdin.write(_encode(np.asarray(q_in)))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            err = self._stderr_tail()
            self.close()
            raise DeviceError(f"model worker {' '.join(self.argv[:4])} is not running: {err}") from None
        (length,) = struct.unpack("<Q", self._read_exact(8, deadline))
        payload = self._read_exact(length & ~_ERROR_FLAG, deadline)
        self.calls += 1
        if length & _ERROR_FLAG:
            raise DeviceError(f"model worker failed: {payload.decode(errors='replace')}")
        return _decode(payload)

    def close(self, kill: bool = False) -> None:
        """Stop the worker: closing its stdin ends it; killed if it lingers 2 s (or at once
        with ``kill``, for a worker that stopped answering)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if kill:
                proc.kill()
            proc.stdin.close()
            proc.wait(timeout=2)
        except Exception:  # noqa: BLE001 - make sure it is gone
            proc.kill()
            proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            stream.close()

    def __enter__(self) -> "WorkerModelFn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def serve(model_fn: Callable[[np.ndarray], np.ndarray], stdin=None, stdout=None) -> None:
    """The worker loop: answer requests until stdin closes."""
    rd = stdin or sys.stdin.buffer
    wr = stdout or sys.stdout.buffer
    while True:
        head = rd.read(8)
        if len(head) < 8:
            return
        (length,) = struct.unpack("<Q", head)
        q_in = _decode(rd.read(length))
        try:
            out = _encode(np.asarray(model_fn(q_in)))
        except Exception as err:  # noqa: BLE001 - reported to the caller, the worker lives on
            msg = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}".encode()
            out = struct.pack("<Q", len(msg) | _ERROR_FLAG) + msg
        wr.write(out)
        wr.flush()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fpga_dnn.runtime.bridge",
                                 description="Serve a model_fn over stdin/stdout (see fpga_dnn.runtime.bridge).")
    ap.add_argument("--factory", required=True, help="module:function returning model_fn; called with the args")
    ap.add_argument("args", nargs="*", help="string arguments for the factory")
    args = ap.parse_args(argv)
    module, _, func = args.factory.partition(":")
    if not func:
        ap.error("--factory must be module:function")
    model_fn = getattr(importlib.import_module(module), func)(*args.args)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints from the model must not corrupt the protocol
    serve(model_fn, sys.stdin.buffer, out)
    return 0


def reference_model_fn(spec_path: str) -> Callable[[np.ndarray], np.ndarray]:
    """A factory for tests and demos: the instant model's reference function for a spec file."""
    from fpga_dnn.runtime.fake.models import reference_fn
    from fpga_dnn.runtime.spec import Spec
    return reference_fn(Spec.load(spec_path))


if __name__ == "__main__":
    sys.exit(main())
