"""Published figures of other toolflows on an XC7Z020 (PYNQ-Z2, ZedBoard), shown beside ours by the
bench (``python -m fpga_dnn.bench --only stream``) and the README; never measured here.

Each figure carries the place it is written (:class:`Source`: repository and path, or paper and
table, with the line quoted), so that a reader can check it. A figure the sources do not give is
``None``, printed ``n/p`` (not published) with the entry's reason; it is never estimated.

The MLPerf Tiny results repositories hold the EEMBC runner's logs: throughput is its single-stream
median (so latency = 1 / throughput), energy its median per inference. The hls4ml and FINN entries
(Borras et al., "Open-source FPGA-ML codesign for the MLPerf Tiny Benchmark", arXiv:2206.11791)
publish no utilisation there; fpgaConvNet's README does (LUT, FF, DSP, BRAM with % of the device).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from .boards import BUDGET_KEYS, part_budget

# Entry fields that are figures (each non-None one needs a source), and the resource ones among
# them (percent of the entry's device, from the board files: boards.part_budget).
FIGURES = ("inf_per_s", "energy_uj", "accuracy", "clock_mhz", "lut", "ff", "dsp", "bram36")
RESOURCES = dict(zip(("lut", "ff", "dsp", "bram36"), BUDGET_KEYS))
NOT_PUBLISHED = "n/p"

_V07 = "github.com/mlcommons/tiny_results_v0.7"
_V10 = "github.com/mlcommons/tiny_results_v1.0"
_V11 = "github.com/mlcommons/tiny_results_v1.1"
_V07_PYNQ = "open/hls4ml-finn/systems/system_description_pynq.json"
# Why the hls4ml and FINN resource figures are None.
_NO_UTILISATION = ("resources not published: the results repository has no utilisation report (runner logs, "
                   "binary .hdf hand-offs) and the paper's tables (arXiv:2206.11791) were not available to us")


@dataclass(frozen=True)
class Source:
    """Where a figure is written: ``where`` (repository + path, or paper + table) and ``quote``, the line
    as it stands there (the figure in the source's own notation, e.g. ``47K (89%)``)."""

    where: str
    quote: str


@dataclass(frozen=True)
class Entry:
    name: str
    toolflow: str
    board: str                      # as the source names it
    part: str                       # the FPGA device (boards.part_budget), e.g. "xc7z020"
    compares: str | None            # the zoo model whose bench row this entry stands beside
    sources: Mapping[str, Source]   # figure name -> where it is written
    inf_per_s: float | None = None
    energy_uj: float | None = None  # per inference
    accuracy: str | None = None     # the source's metric, on the real data set
    clock_mhz: float | None = None
    lut: int | None = None
    ff: int | None = None
    dsp: int | None = None
    bram36: float | None = None
    not_published: str = ""         # why the None figures are None
    notes: str = ""
    pct: Mapping[str, float | None] = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        budget = part_budget(self.part)
        object.__setattr__(self, "pct", {k: None if getattr(self, k) is None else
                                         round(100.0 * getattr(self, k) / budget[b], 1) for k, b in RESOURCES.items()})

    @property
    def latency_ms(self) -> float | None:
        """MLPerf Tiny's single-stream latency: 1 / median throughput."""
        return None if self.inf_per_s is None else round(1e3 / self.inf_per_s, 4)

    def row(self) -> dict:
        """The entry as a bench row: every figure (None where not published), resources as % of the part."""
        r = {"model": f"{self.name} ({self.toolflow}, published)", "board": self.board, "part": self.part,
             "inf_per_s": self.inf_per_s, "latency_ms": self.latency_ms}
        r.update({k: getattr(self, k) for k in FIGURES if k != "inf_per_s"})
        r.update({f"{k}_pct": v for k, v in self.pct.items()})
        if any(getattr(self, k) is None for k in FIGURES):
            r["not_published"] = self.not_published
        if self.notes:
            r["notes"] = self.notes
        return r


def _pynq_z2(name: str, toolflow: str, compares: str | None, repo: str, base: str, throughput: str,
             energy: str, accuracy: str, notes: str) -> Entry:
    """A PYNQ-Z2 MLPerf Tiny entry from the lines quoted from its results folder ``base``
    (``performance``, ``power``, ``accuracy``; each figure is read from its line, so it is written
    once, as the source writes it) and its system description's accelerator clock (100 MHz)."""
    system = f"{_V10}/open/hls4ml/systems/system_description_pynq.json" if repo == _V10 else f"{_V07}/{_V07_PYNQ}"
    sources = {"inf_per_s": Source(f"{repo}/{base}/performance/results.txt", throughput),
               "energy_uj": Source(f"{repo}/{base}/power/results.txt", energy),
               "accuracy": Source(f"{repo}/{base}/accuracy/results.txt", accuracy),
               "clock_mhz": Source(system, '"Accelerator(s) Frequencies": "100Mhz"')}
    return Entry(name, toolflow, "pynq-z2", "xc7z020", compares, sources,
                 inf_per_s=float(re.fullmatch(r"Median throughput is ([\d.]+) inf\./sec\.", throughput)[1]),
                 energy_uj=float(re.fullmatch(r"Median energy cost is ([\d.]+) uJ/inf\.", energy)[1]),
                 accuracy=accuracy, clock_mhz=100.0, not_published=_NO_UTILISATION, notes=notes)


_FCN = f"{_V11}/closed/fpgaconvnet"
_FCN_README = f"{_FCN}/README.md, 'Hardware Information', ZedBoard table"
_FCN_IC = "| IC   | 47K (89%) | 42K (39%) | 211 (96%) | 93 (66%)  | 143         |"

PUBLISHED: tuple[Entry, ...] = (
    _pynq_z2("RN07", "hls4ml v0.7 MLPerf Tiny", None, _V07, "open/hls4ml-finn/results/pynq-z2/ic/RN07",
             "Median throughput is 36.596 inf./sec.", "Median energy cost is 44190.540 uJ/inf.", "Top-1: 83.5%",
             "io_stream, Resource strategy, ReuseFactor 16384, ap_fixed<12,7>, HLS ClockPeriod 6.67, Vivado HLS "
             "2019.1 (open/hls4ml-finn/code/ic/RN07/inference/pynq-z2/accuracy_power.yml)"),
    _pynq_z2("RN08", "hls4ml v1.0 MLPerf Tiny", "rn07", _V10, "open/hls4ml/results/pynq-z2/ic/RN08",
             "Median throughput is 130.834 inf./sec.", "Median energy cost is 12266.036 uJ/inf.", "Top-1: 83.5%",
             "RN07's topology, per-layer ReuseFactor 512/4096/16384 "
             "(open/hls4ml/code/ic/RN08/inference/pynq-z2/accuracy_power.yml)"),
    _pynq_z2("AD08", "hls4ml v0.7 MLPerf Tiny", "ad08", _V07, "open/hls4ml-finn/results/pynq-z2/ad/AD08",
             "Median throughput is 53365.414 inf./sec.", "Median energy cost is 30.006 uJ/inf.", "AUC: 0.83",
             "io_stream, ReuseFactor 144 (open/hls4ml-finn/code/ad/AD08/inference/hls4ml_config.yml)"),
    _pynq_z2("CNV-W1A1", "FINN v0.7 MLPerf Tiny", None, _V07, "open/hls4ml-finn/results/pynq-z2/ic/CNV-W1A1",
             "Median throughput is 661.473 inf./sec.", "Median energy cost is 2530.450 uJ/inf.", "Top-1: 84.5%",
             "CIFAR-10 CNN, 1-bit weights and activations (no zoo counterpart)"),
    _pynq_z2("KWS-W3A3", "FINN v0.7 MLPerf Tiny", None, _V07, "open/hls4ml-finn/results/pynq-z2/kws/KWS-W3A3",
             "Median throughput is 57268.135 inf./sec.", "Median energy cost is 30.667 uJ/inf.", "Top-1: 82.5%",
             "keyword-spotting MLP (const_QMLP.yaml), 3-bit weights and activations (no zoo counterpart)"),
    Entry("ResNet-8", "fpgaConvNet v1.1 MLPerf Tiny", "ZedBoard", "xc7z020", "resnet8",
          {"inf_per_s": Source(f"{_FCN}/results/zedboard/ic/performance/results.txt",
                               "Median throughput is 2431.435 inf./sec."),
           "accuracy": Source(f"{_FCN}/results/zedboard/ic/accuracy/results.txt", "Top-1: 86.0%"),
           **{k: Source(_FCN_README, _FCN_IC) for k in ("clock_mhz", "lut", "ff", "dsp", "bram36")}},
          inf_per_s=2431.435, accuracy="Top-1: 86.0%", clock_mhz=143.0, lut=47000, ff=42000, dsp=211, bram36=93,
          not_published=f"energy not published: no power run ({_FCN}/results/zedboard/ic has accuracy and performance)",
          notes="INT8 weights, INT9 feature maps, 24-bit accumulators; closed-source HDL backend; LUT/FF given in "
                "thousands (47K, 42K); device XC7Z020 per systems/zedboard.json"),
)


def published_beside(model: str) -> dict:
    """The published figures the zoo ``model``'s bench row stands beside, as ``published_*`` columns
    (None where not published; empty when no entry compares to it)."""
    for e in PUBLISHED:
        if e.compares == model:
            r = e.row()
            keys = ("inf_per_s", "latency_ms", *RESOURCES, *(f"{k}_pct" for k in RESOURCES))
            return {"published": r["model"], **{f"published_{k}": r[k] for k in keys}}
    return {}


def cell(value, pct: float | None = None, missing: str = NOT_PUBLISHED) -> str:
    """A figure for a Markdown table: ``missing`` (``n/p``, not published) when None, thousands
    separated, with the percentage of the part when given."""
    if value is None:
        return missing
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    else:
        text = f"{value:,}" if isinstance(value, (int, float)) else str(value)
    return f"{text} ({pct:g}%)" if pct is not None else text


def markdown_beside(rows: list[dict]) -> str:
    """Our streaming bench rows (``bench_stream``'s, keys ``measured_inf_per_s``, ``yosys_*``) beside
    the published entries, one line per entry (ours where a zoo model compares to it), resources as
    % of the XC7Z020; then why the n/p figures are n/p, and every figure's source."""
    ours = {r.get("model"): r for r in rows}
    head = ("| published | board | inf/s | LUT | FF | DSP | BRAM36 | ours (zoo model) | inf/s | LUT | FF | DSP | BRAM36 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = list(head)
    for e in PUBLISHED:
        pub = [cell(e.inf_per_s)] + [cell(getattr(e, k), e.pct[k]) for k in RESOURCES]
        o = ours.get(e.compares, {}) if e.compares else {}
        mine = ([cell(o.get("measured_inf_per_s"), missing="not measured")]
                + [cell(o.get(f"yosys_{k}"), o.get(f"yosys_{k}_pct"), "not measured") for k in RESOURCES]) if o else [""] * 5
        lines.append("| " + " | ".join([f"{e.name} ({e.toolflow})", e.board, *pub, e.compares or "", *mine]) + " |")
    lines.append("")
    reasons: dict[str, list[str]] = {}
    for e in PUBLISHED:
        if e.not_published:
            reasons.setdefault(e.not_published, []).append(e.name)
    lines += [f"- n/p for {', '.join(names)}: {why}" for why, names in reasons.items()]
    for e in PUBLISHED:
        cited: dict[Source, list[str]] = {}
        for k, src in e.sources.items():
            cited.setdefault(src, []).append(k)
        lines += [f"- {e.name} {', '.join(ks)}: {src.where}: `{src.quote}`" for src, ks in cited.items()]
    return "\n".join(lines) + "\n"
