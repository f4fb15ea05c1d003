"""How hls4ml's C-sim library gets built: hls4ml's own ``build_lib.sh`` (1.3.0), made faster, same library.

Every C-sim build parses the whole ap_types / nnet_utils header set, the same files in every
project of one hls4ml version: about 9 CPU-s of g++ for a small Dense model, of which the model's
own code is a fraction. Two changes to the script hls4ml writes, each applied only where the
script has exactly hls4ml 1.3.0's lines (another version's script is left as it is):

1. **Side by side**: the model and its ctypes bridge (two translation units) compile in parallel.
2. **Precompiled headers**: those headers are compiled once per content hash into a GCC
   precompiled header in the build cache (kind ``csim_pch``, :mod:`fpga_dnn.cache`), which each
   build includes first. Measured on a 8-6-3 Dense model: 9.0 CPU-s -> 2.2 CPU-s per build.

Why the library is the same: same compiler, flags and header contents (the cache key hashes them,
the compiler's version and the flags); a header generated per model (``nnet_code_gen.h``) is
never precompiled, and the others only declare templates and guard themselves, so including them
first changes nothing. GCC checks a precompiled header on use: a stale or mismatched one is
ignored with a ``-Winvalid-pch`` warning and the headers are read as text (slower, still right).

One source change, and why: ``nnet_helpers.h`` expands ``WEIGHTS_DIR`` (the project's absolute
weights folder, a ``-D`` of the script) inside its weight-loading templates, so a precompiled
header would freeze the first project's path. ``WEIGHTS_DIR`` is defined instead as a call to
``fpga_dnn_weights_dir()``, which a one-line translation unit per project returns.

``FPGA_DNN_CSIM_PCH=0`` turns the precompiled header off (the side-by-side build stays).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from .errors import ToolError
from .log import progress

#: Turns the precompiled header off when set to 0.
PCH_ENV = "FPGA_DNN_CSIM_PCH"
PCH_HEADER = "fd_pch.h"
WEIGHTS_FUNCTION = "fpga_dnn_weights_dir"
_WEIGHTS_DEFINE = f"-D 'WEIGHTS_DIR={WEIGHTS_FUNCTION}()'"
#: Generated per model by hls4ml: never precompiled.
_PER_MODEL_HEADERS = ("nnet_code_gen.h",)

#: hls4ml 1.3.0's ``build_lib.sh`` lines this module rewrites: the two compiles and the link.
_HLS4ML_DEFINE = '-D WEIGHTS_DIR="${WEIGHTS_DIR}"'
_BUILD_LINES = ('${CC} ${CFLAGS} ${INCFLAGS} -D WEIGHTS_DIR="${WEIGHTS_DIR}" -c firmware/${PROJECT}.cpp -o ${PROJECT}.o\n',
                '${CC} ${CFLAGS} ${INCFLAGS} -D WEIGHTS_DIR="${WEIGHTS_DIR}" -c ${PROJECT}_bridge.cpp -o ${PROJECT}_bridge.o\n')
_LINK_LINE = '${CC} ${CFLAGS} ${INCFLAGS} -shared ${PROJECT}.o ${PROJECT}_bridge.o -o firmware/${PROJECT}-${LIB_STAMP}.so\n'
_INCFLAGS_LINE = 'INCFLAGS="-Ifirmware/ap_types/"\n'


def parallel_build_script(path: Path) -> bool:
    """Compile the model and its ctypes bridge side by side in hls4ml's ``build_lib.sh``.

    Same compiler, flags and sources, so the library is the same; a script of another hls4ml
    version (lines not found) or one already changed is left as it is. True if changed.
    """
    try:
        text = path.read_text()
    except OSError:
        return False
    main, bridge = _BUILD_LINES
    if main not in text or bridge not in text:
        return False
    path.write_text(_side_by_side(text, main, bridge))
    return True


def _side_by_side(text: str, main: str, bridge: str, before_wait: str = "") -> str:
    """``text`` with the ``main`` compile line run in the background and waited for after the
    ``bridge`` line (and ``before_wait``, more commands to run meanwhile)."""
    text = text.replace(main, main.rstrip("\n") + " &\nmain_pid=$!\n", 1)
    return text.replace(bridge, bridge + before_wait + "wait $main_pid\n", 1)


def fast_build_script(project_dir: Path) -> str:
    """Rewrite ``project_dir/build_lib.sh`` (side by side, precompiled headers where possible).

    Returns what was done: ``"pch"`` (both), ``"parallel"`` (side by side only: precompiled
    headers off, or they could not be built) or ``"unchanged"`` (not hls4ml 1.3.0's script).
    """
    project_dir = Path(project_dir)
    script = project_dir / "build_lib.sh"
    try:
        text = script.read_text()
    except OSError:
        return "unchanged"
    if not all(line in text for line in (*_BUILD_LINES, _LINK_LINE, _INCFLAGS_LINE)):
        return "unchanged"
    pch = None if os.environ.get(PCH_ENV, "1") == "0" else precompiled_headers(project_dir / "firmware")
    if pch is None:
        return "parallel" if parallel_build_script(script) else "unchanged"
    use = f"${{FPGA_DNN_PCH}} {_WEIGHTS_DEFINE}"
    main, bridge = (line.replace(_HLS4ML_DEFINE, use) for line in _BUILD_LINES)
    for hls4ml_line, line in zip(_BUILD_LINES, (main, bridge)):
        text = text.replace(hls4ml_line, line, 1)
    text = text.replace(_INCFLAGS_LINE, _INCFLAGS_LINE + f'# fpga_dnn: hls4ml\'s headers precompiled once (fpga_dnn/csim_build.py)\n'
                                                       f'FPGA_DNN_PCH="-include {pch} -Winvalid-pch"\n', 1)
    weights_unit = (f"printf 'const char *{WEIGHTS_FUNCTION}() {{ return %s; }}\\n' \"${{WEIGHTS_DIR}}\""
                    f" > {WEIGHTS_FUNCTION}.cpp\n"
                    f"${{CC}} ${{CFLAGS}} -c {WEIGHTS_FUNCTION}.cpp -o {WEIGHTS_FUNCTION}.o\n")
    text = _side_by_side(text, main, bridge, before_wait=weights_unit)
    text = text.replace(_LINK_LINE, _LINK_LINE.replace("${PROJECT}_bridge.o", f"${{PROJECT}}_bridge.o {WEIGHTS_FUNCTION}.o"), 1)
    script.write_text(text)
    return "pch"


@functools.lru_cache(maxsize=None)
def compiler_flags(cc: str = "g++") -> str:
    """The ``CFLAGS`` hls4ml 1.3.0's ``build_lib.sh`` arrives at with this compiler (same probes)."""
    def accepts(flag: str) -> bool:
        return subprocess.run([cc, "-Werror", "-fsyntax-only", flag, "-xc++", "-", "-o", "/dev/null"],
                              input="", capture_output=True, text=True).returncode == 0

    flags = "-O3 -fPIC " + ("-std=c++23" if accepts("-std=c++23") else "-std=c++11")
    if accepts("-fno-gnu-unique"):
        flags += " -fno-gnu-unique"
    return flags


@functools.lru_cache(maxsize=None)
def compiler_version(cc: str = "g++") -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return ""


def precompiled_headers(firmware: Path, cc: str = "g++") -> Path | None:
    """The precompiled header for ``firmware``'s hls4ml headers (built once per content hash), as the
    path to pass to ``-include``; None if it cannot be built (the build then parses as usual)."""
    from .cache import cache_dir, cached_build

    firmware = Path(firmware)
    ap_types, nnet = firmware / "ap_types", firmware / "nnet_utils"
    if not ap_types.is_dir() or not nnet.is_dir():
        return None
    headers = sorted(h for h in nnet.glob("*.h") if h.name not in _PER_MODEL_HEADERS)
    if any(any(p in h.read_text(errors="replace") for p in _PER_MODEL_HEADERS) for h in headers):
        return None  # a shared header includes a per-model one: nothing can be precompiled safely
    sources = sorted(p for p in ap_types.rglob("*") if p.is_file()) + headers
    flags = compiler_flags(cc)
    params = {"flow": "csim-pch-v1", "cflags": flags, "define": _WEIGHTS_DEFINE,
              "files": [str(p.relative_to(firmware)) for p in sources]}

    def build(d: Path) -> None:
        shutil.copytree(ap_types, d / "ap_types", dirs_exist_ok=True)
        (d / "nnet_utils").mkdir(exist_ok=True)
        for h in headers:
            shutil.copy2(h, d / "nnet_utils" / h.name)
        lines = ["// Generated by fpga_dnn.csim_build: hls4ml's shared headers, precompiled once.",
                 f"extern const char *{WEIGHTS_FUNCTION}();  // WEIGHTS_DIR (see fpga_dnn/csim_build.py)",
                 "#include <algorithm>", "#include <iostream>", "#include <map>",
                 '#include "ap_fixed.h"', '#include "ap_int.h"', '#include "hls_stream.h"']
        lines += [f'#include "nnet_utils/{h.name}"' for h in headers]
        (d / PCH_HEADER).write_text("\n".join(lines) + "\n")
        cmd = [cc, *flags.split(), f"-I{d / 'ap_types'}", f"-I{d}", f"-DWEIGHTS_DIR={WEIGHTS_FUNCTION}()",
               "-x", "c++-header", str(d / PCH_HEADER), "-o", str(d / (PCH_HEADER + ".gch"))]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            (d / "pch.log").write_text(run.stdout + run.stderr)
            raise ToolError("precompiling hls4ml's headers failed", log_path=d / "pch.log")

    if (cache_dir("csim_pch", sources, params, compiler_version(cc)) / "pch.log").is_file():
        return None  # failed before for these very headers: not tried again on every build
    try:
        d, built_now = cached_build("csim_pch", sources, params, build, tool_version=compiler_version(cc))
    except ToolError as err:
        progress(f"csim: {err}; building without precompiled headers")
        return None
    if built_now:
        progress(f"csim: hls4ml's headers precompiled once ({d})")
    # The include path is the cache's copy, so a PCH found invalid is read as text from identical files.
    return d / PCH_HEADER
