"""Finding and running Vivado for the generated overlay scripts.

Vivado runs only when the user names it: ``vivado=PATH`` (the ``vivado`` binary or its install
folder), or the environment variables ``FPGA_DNN_VIVADO`` or ``XILINX_VIVADO`` (set by Vivado's
``settings64.sh``). A ``vivado`` that merely happens to be on PATH does not start an hour-long
build by surprise. The build itself is ``run_vivado.sh`` — the same script a user runs by hand
on another machine — so there is one way the overlay gets built.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Optional

from fpga_dnn.errors import ConfigError, ToolError
from fpga_dnn.log import progress

ENV_VARS = ("FPGA_DNN_VIVADO", "XILINX_VIVADO")


def _binary(path: Path) -> Optional[Path]:
    """``path`` itself if it is a file, else ``path/bin/vivado`` if that exists."""
    if path.is_file():
        return path
    cand = path / "bin" / "vivado"
    return cand if cand.is_file() else None


def find_vivado(vivado=None, environ=None) -> Optional[Path]:
    """The Vivado binary to run, or None when none was named.

    ``vivado``: a path given by the user (file or install folder); an explicit path that does
    not exist is an error, not a silent fallback. ``False`` means "do not run Vivado".
    """
    if vivado is False:
        return None
    env = os.environ if environ is None else environ
    if vivado:
        found = _binary(Path(vivado).expanduser())
        if not found:
            raise ConfigError(f"Vivado not found at {vivado} (give the vivado binary or its install folder)")
        return found
    for var in ENV_VARS:
        if env.get(var):
            found = _binary(Path(env[var]).expanduser())
            if not found:
                raise ConfigError(f"${var}={env[var]} does not contain a vivado binary (expected bin/vivado)")
            return found
    return None


def first_error(*logs: Path) -> Optional[str]:
    """The first ``ERROR:`` line of the given logs (ours first, then Vivado's), for a one-line message."""
    for log in logs:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        m = re.search(r"^ERROR:.*$", text, re.M)
        if m:
            return m.group(0).strip()[:300]
    return None


def run_overlay(out_dir: Path, vivado: Path, tclargs=(), timeout: Optional[float] = None) -> Path:
    """Run ``out_dir/run_vivado.sh`` with ``vivado``; returns the log path.

    Raises :class:`ToolError` with the first ERROR line and the log path when it fails.
    """
    out_dir = Path(out_dir)
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / "run.log"
    env = dict(os.environ, VIVADO=str(vivado))
    progress(f"overlay: running Vivado ({vivado}) in {out_dir}; log {log}")
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(["bash", str(out_dir / "run_vivado.sh"), *tclargs], cwd=out_dir, env=env,
                                  stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolError(f"Vivado overlay build timed out after {timeout:.0f} s", log_path=log) from None
    if proc.returncode != 0:
        # run_vivado.sh's own ERROR line names the failed step's log; quote that log's first ERROR.
        ours = first_error(log)
        named = re.search(r"see (logs/[\w.]+)", ours or "")
        tool_logs = [out_dir / named.group(1)] if named else []
        if named and named.group(1) == "logs/vivado.log":
            tool_logs.append(logs / "vivado.stdout")
        err = first_error(*tool_logs) or ours
        raise ToolError(f"Vivado overlay build failed (exit {proc.returncode})" + (f": {err}" if err else ""),
                        log_path=log)
    return log
