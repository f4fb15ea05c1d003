"""Memory files (``$readmemh``) for the streaming modules, from numpy integer arrays.

The word layouts are the ones documented in the module headers of ``hdl/fd_mvu.v`` and
``hdl/fd_chanaffine.v``; this module is their only writer, so a layout change stays in two
places that sit side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fpga_dnn.errors import FpgaDnnError

#: Directory of the Verilog sources (``fd_*.v``).
HDL_DIR = Path(__file__).resolve().parent / "hdl"


class MemFileError(FpgaDnnError):
    """Weights or biases that do not fit the module parameters they are written for."""


def hdl_sources(*modules: str) -> list[Path]:
    """Paths of the named library modules and of those they instantiate
    (:data:`fpga_dnn.rtl.library.STREAM_REQUIRES`), each once, e.g. ``hdl_sources('fd_swg', 'fd_mvu')``."""
    from fpga_dnn.rtl.library import STREAM_REQUIRES

    names: list[str] = []
    for m in modules:
        for d in (m, *STREAM_REQUIRES.get(m, ())):
            if d not in names:
                names.append(d)
    paths = [HDL_DIR / f"{m}.v" for m in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        known = sorted(p.stem for p in HDL_DIR.glob("fd_*.v"))
        raise MemFileError(f"no streaming module {', '.join(missing)}; known: {', '.join(known)}")
    return paths


def _integers(a, what: str, shape_ndim: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != shape_ndim:
        raise MemFileError(f"{what} must be a {shape_ndim}-D integer array, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise MemFileError(f"{what} must hold integers (the fixed-point values times 2^frac), got {arr.dtype}")
    return arr.astype(object)  # Python ints: no overflow while packing wide words


def _check_range(arr: np.ndarray, bits: int, signed: bool, what: str) -> None:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        kind = "signed" if signed else "unsigned"
        raise MemFileError(f"{what} has values in [{arr.min()}, {arr.max()}], outside the {bits}-bit "
                           f"{kind} range [{lo}, {hi}]")


def pack_words(values, bits: int) -> int:
    """Concatenate integers (element 0 in the least significant bits), two's complement."""
    word, mask = 0, (1 << bits) - 1
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def _hex_lines(words, width: int) -> str:
    nd = max(1, (width + 3) // 4)
    return "".join(f"{w:0{nd}x}\n" for w in words)


def mvu_weight_words(w, pe: int, simd: int, ww: int) -> list[int]:
    """fd_mvu weight ROM words: word ``nf*KF + kf`` holds ``w[nf*pe + p][kf*simd + s]`` at
    bits ``[(p*simd + s)*ww +: ww]``; ``w`` is the integer matrix ``w[N][K]``."""
    w = _integers(w, "weight matrix w[N][K]", 2)
    n, k = w.shape
    if pe < 1 or n % pe:
        raise MemFileError(f"PE={pe} must divide N={n}")
    if simd < 1 or k % simd:
        raise MemFileError(f"SIMD={simd} must divide K={k}")
    _check_range(w, ww, True, f"weight matrix ({n}x{k})")
    nf, kf = n // pe, k // simd
    # blocks[nf, kf, p, s] = w[nf*pe + p, kf*simd + s]
    blocks = w.reshape(nf, pe, kf, simd).transpose(0, 2, 1, 3).reshape(nf * kf, pe * simd)
    return [pack_words(row, ww) for row in blocks]


def mvu_bias_words(bias, pe: int, aw: int) -> list[int]:
    """fd_mvu bias ROM words: word ``nf`` holds ``bias[nf*pe + p]`` at bits ``[p*aw +: aw]``."""
    b = _integers(bias, "bias", 1)
    if pe < 1 or b.shape[0] % pe:
        raise MemFileError(f"PE={pe} must divide the bias length {b.shape[0]}")
    _check_range(b, aw, True, f"bias ({b.shape[0]} values)")
    return [pack_words(b[i:i + pe], aw) for i in range(0, b.shape[0], pe)]


def write_mvu_memfiles(w, bias, pe: int, simd: int, ww: int, aw: int,
                       weight_path, bias_path=None) -> tuple[Path, Path | None]:
    """Write fd_mvu's WEIGHT_FILE (and BIAS_FILE when ``bias`` is not None) for a fold.

    ``w``: integer matrix ``w[N][K]`` (K in the input order of the stream, e.g. fd_swg's window
    order), ``bias``: ``(N,)`` integers on the accumulator grid or None. Returns the paths.
    """
    words = mvu_weight_words(w, pe, simd, ww)
    weight_path = Path(weight_path)
    weight_path.write_text(_hex_lines(words, pe * simd * ww))
    if bias is None:
        return weight_path, None
    if np.asarray(bias).shape != (np.asarray(w).shape[0],):
        raise MemFileError(f"bias shape {np.asarray(bias).shape} does not match N={np.asarray(w).shape[0]}")
    bias_path = Path(bias_path if bias_path is not None else weight_path.with_suffix(".bias.mem"))
    bias_path.write_text(_hex_lines(mvu_bias_words(bias, pe, aw), pe * aw))
    return weight_path, bias_path


def write_vector_memfile(values, bits: int, path, signed: bool = True) -> Path:
    """One ``bits``-bit value per line (fd_chanaffine's SCALE_FILE and BIAS_FILE)."""
    v = _integers(values, "values", 1)
    _check_range(v, bits, signed, f"vector of {v.shape[0]} values")
    path = Path(path)
    path.write_text(_hex_lines([int(x) & ((1 << bits) - 1) for x in v], bits))
    return path
