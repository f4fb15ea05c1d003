"""Board definitions, read from ``overlays/boards/<name>.toml`` (one data file per board).

Only the fields conversion needs are checked here (name, part, budget); the overlay step reads
the rest. A malformed file names the file and the field.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, UnknownNameError

BOARDS_DIR = Path(__file__).resolve().parent.parent / "overlays" / "boards"
REQUIRED = {"name": str, "part": str, "ps_ip": str, "pl_clock_mhz": (int, float), "budget": dict}
BUDGET_KEYS = ("LUT", "FF", "DSP", "BRAM36")


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    ps_ip: str
    pl_clock_mhz: float
    budget: dict
    raw: dict = field(default_factory=dict, compare=False, repr=False)


def board_files(folder: Path = BOARDS_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).glob("*.toml"))}


def load_board(name: str, folder: Path = BOARDS_DIR) -> Board:
    files = board_files(folder)
    if name not in files:
        raise UnknownNameError("board", name, files)
    path = files[name]
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"board file {path}: not valid TOML: {err}") from None
    for key, typ in REQUIRED.items():
        if not isinstance(raw.get(key), typ):
            raise ConfigError(f"board file {path}: field '{key}' is missing or not a {getattr(typ, '__name__', typ)}")
    for key in BUDGET_KEYS:
        v = raw["budget"].get(key)
        if not isinstance(v, int) or v < 0:
            raise ConfigError(f"board file {path}: field 'budget.{key}' must be a non-negative integer")
    return Board(raw["name"], raw["part"], raw["ps_ip"], float(raw["pl_clock_mhz"]), dict(raw["budget"]), raw)
