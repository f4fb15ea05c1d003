"""The converted model's top-level interface, as plain data: what the HLS overlay needs.

hls4ml writes the network's top function ``void <project>(<inputs>, <outputs>)`` from its
``ModelGraph``: one argument per input and output variable, each of the variable's typedef
(``input_t``, ``result_t``: an array of ``shape``'s size for ``io_parallel``, an
``hls::stream<nnet::array<T, pack>>`` for ``io_stream``). :func:`fpga_dnn.hw.from_hls4ml.read_interface`
reads those facts from the graph (the one reader of hls4ml); the convert step saves them as
``fpga_dnn_interface.json`` beside the project it writes (:data:`INTERFACE_FILE`), so the
overlay, in this process or a later one, reads the record and never parses the generated C++,
tcl or bridge file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from fpga_dnn.errors import ConfigError
from fpga_dnn.fixedpoint import FixedFormat

INTERFACE_FILE = "fpga_dnn_interface.json"
INTERFACE_VERSION = 1


@dataclass(frozen=True)
class IoPort:
    """One argument of the top function: an input or output variable of the graph."""

    name: str                     # the argument (hls4ml's variable name)
    type_name: str                # its typedef (input_t, result_t, layerN_t)
    shape: tuple                  # the tensor's shape (no batch axis)
    fixed: Optional[FixedFormat]  # the element type; None when it has no fixed-point form
    pack: int = 1                 # io_stream: elements per stream word (nnet::array<T, pack>)
    reason: str = ""              # why ``fixed`` is None

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n


@dataclass(frozen=True)
class HlsInterface:
    """The top function of a converted model and the project settings its HLS synthesis uses.

    ``directory`` is the written project (its ``firmware/`` is what HLS compiles); it is not
    saved: a loaded record takes the folder it was loaded from. ``extra_args`` are arguments
    beyond the inputs and outputs (weights hls4ml keeps in BRAM ports)."""

    project: str
    io_type: str
    backend: str
    part: str
    clock_period: float
    clock_uncertainty: str
    maximum_size: int
    inputs: tuple
    outputs: tuple
    namespace: Optional[str] = None
    extra_args: tuple = ()
    directory: Optional[Path] = None

    def to_dict(self) -> dict:
        def port(p: IoPort) -> dict:   # FixedFormat's fields, as load's FixedFormat(**f) takes them
            return {**asdict(p), "shape": list(p.shape)}

        return {"interface_version": INTERFACE_VERSION, "project": self.project, "io_type": self.io_type,
                "backend": self.backend, "part": self.part, "clock_period": self.clock_period,
                "clock_uncertainty": self.clock_uncertainty, "maximum_size": self.maximum_size,
                "namespace": self.namespace, "extra_args": list(self.extra_args),
                "inputs": [port(p) for p in self.inputs], "outputs": [port(p) for p in self.outputs]}

    def save(self, directory=None) -> Path:
        """Write :data:`INTERFACE_FILE` into ``directory`` (default: the project's folder)."""
        folder = Path(directory if directory is not None else self.directory)
        path = folder / INTERFACE_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder) -> "HlsInterface":
        """The record the convert step saved in the project folder ``folder``."""
        folder = Path(folder)
        path = folder / INTERFACE_FILE
        if not path.is_file():
            raise ConfigError(f"{folder} has no {INTERFACE_FILE}: not a project written by the convert step "
                              "(run `fpga-dnn convert`, or pass the hls4ml ModelGraph itself)")
        try:
            d = json.loads(path.read_text())
            if d.get("interface_version") != INTERFACE_VERSION:
                raise ConfigError(f"{path}: interface_version {d.get('interface_version')!r}, this fpga_dnn reads "
                                  f"{INTERFACE_VERSION}; convert the model again")

            def port(p: dict) -> IoPort:
                f = p["fixed"]
                return IoPort(p["name"], p["type_name"], tuple(int(x) for x in p["shape"]),
                              None if f is None else FixedFormat(**f), int(p["pack"]), p.get("reason", ""))

            return cls(d["project"], d["io_type"], d["backend"], d["part"], float(d["clock_period"]),
                       str(d["clock_uncertainty"]), int(d["maximum_size"]), tuple(port(p) for p in d["inputs"]),
                       tuple(port(p) for p in d["outputs"]), d.get("namespace"), tuple(d.get("extra_args", ())),
                       folder)
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{path}: not a valid interface record ({type(err).__name__}: {err}); convert the "
                              "model again") from None
