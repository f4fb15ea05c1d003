"""Published figures beside the bench's (fpga_dnn/published.py): every figure cited, n/p where a
source gives none, the right entry beside each zoo model, resources as % of the entry's device
(boards.part_budget). No training, no builds: seconds."""

import re

import pytest

from fpga_dnn import bench, boards
from fpga_dnn.errors import ConfigError, UnknownNameError
from fpga_dnn.models import ZOO
from fpga_dnn.published import FIGURES, NOT_PUBLISHED, PUBLISHED, RESOURCES, Entry, Source, cell, markdown_beside, \
    published_beside


def _forms(value) -> set[str]:
    """How a source may write ``value``: 36.596, 44190.540, 211, 47K."""
    if isinstance(value, str):
        return {value}
    forms = {f"{value:g}", f"{value:.3f}", str(value)}
    if value >= 1000 and value % 1000 == 0:
        forms.add(f"{value / 1000:g}K")
    return forms


@pytest.mark.parametrize("entry", PUBLISHED, ids=lambda e: e.name)
def test_every_published_figure_is_cited_and_in_its_quote(entry):
    for key in FIGURES:
        value = getattr(entry, key)
        if value is None:
            assert key not in entry.sources, f"{entry.name}: a source for {key} but no figure"
            continue
        src = entry.sources.get(key)
        assert isinstance(src, Source), f"{entry.name}: {key} = {value} has no source"
        assert re.search(r"github\.com/[\w.-]+/[\w.-]+/\S+|arXiv:\d{4}\.\d{4,5}", src.where), src.where
        # the figure is written in the line quoted (an edit of one without the other fails here)
        assert any(f in src.quote for f in _forms(value)), f"{entry.name} {key}: {value} not in {src.quote!r}"
    missing = [k for k in FIGURES if getattr(entry, k) is None]
    assert bool(missing) == bool(entry.not_published), f"{entry.name}: None figures {missing} need a reason"
    assert entry.compares is None or entry.compares in ZOO


def test_unpublished_figures_print_as_np_with_the_reason():
    rn08 = next(e for e in PUBLISHED if e.name == "RN08")
    row = rn08.row()
    assert row["lut"] is None and row["lut_pct"] is None    # JSON: null, never a guess
    assert "not published" in row["not_published"]
    md = markdown_beside([])
    line = next(ln for ln in md.splitlines() if ln.startswith("| RN08"))
    assert line.split(" | ")[3:7] == [NOT_PUBLISHED] * 4     # LUT FF DSP BRAM36
    assert f"n/p for RN07, RN08, AD08, CNV-W1A1, KWS-W3A3: {rn08.not_published}" in md
    # the generic bench table: a published None is n/p, one of our missing measurements stays None
    table = bench.to_markdown({"machine": "m", "started": "t", "benches": {"stream": [
        {"model": "rn07", "measured_inf_per_s": None, **published_beside("rn07")}, row]}})
    ours = next(ln for ln in table.splitlines() if ln.startswith("| rn07"))
    cols = next(ln for ln in table.splitlines() if ln.startswith("| model")).strip("| ").split(" | ")
    cells = ours.strip("| ").split(" | ")
    assert cells[cols.index("measured_inf_per_s")] == "None"
    assert cells[cols.index("published_lut")] == NOT_PUBLISHED
    assert cells[cols.index("published_inf_per_s")] == "130.834"
    assert cell(None) == NOT_PUBLISHED and cell(None, missing="not measured") == "not measured"
    assert cell(47000, 88.3) == "47,000 (88.3%)" and cell(53365.414) == "53,365" and cell(36.596) == "36.6"


def test_published_beside_names_the_entry_for_each_zoo_model():
    expect = {"rn07": "RN08 (hls4ml v1.0", "ad08": "AD08 (hls4ml v0.7", "resnet8": "ResNet-8 (fpgaConvNet"}
    for model in ZOO:
        cols = published_beside(model)
        if model not in expect:
            assert cols == {}, model
            continue
        assert cols["published"].startswith(expect[model]), (model, cols["published"])
    rn07 = published_beside("rn07")
    assert rn07["published_inf_per_s"] == 130.834 and rn07["published_latency_ms"] == pytest.approx(7.643, abs=1e-3)
    fcn = published_beside("resnet8")
    assert (fcn["published_lut"], fcn["published_dsp"], fcn["published_bram36"]) == (47000, 211, 93)
    # one entry per zoo model at most: otherwise published_beside would silently pick the first
    compares = [e.compares for e in PUBLISHED if e.compares]
    assert len(compares) == len(set(compares))


def test_percent_of_the_part_matches_the_published_percentages():
    """fpgaConvNet's ZedBoard row prints its own % of the XC7Z020 ('47K (89%)', ...): ours, from the
    PYNQ-Z2 board file's budget (same device), agree within the rounding of '47K'."""
    fcn = next(e for e in PUBLISHED if e.name == "ResNet-8")
    quoted = [int(p) for p in re.findall(r"\((\d+)%\)", fcn.sources["lut"].quote)]
    assert len(quoted) == 4
    for (key, budget_key), pct in zip(RESOURCES.items(), quoted):
        assert fcn.pct[key] == pytest.approx(100.0 * getattr(fcn, key) / boards.load_board("pynq-z2").budget[budget_key],
                                             abs=0.05)
        assert abs(fcn.pct[key] - pct) <= 1.0, (key, fcn.pct[key], pct)


def test_part_budget_by_device_not_package():
    z2 = boards.load_board("pynq-z2").budget
    for part in ("xc7z020clg400-1", "xc7z020clg484-1", "XC7Z020-1CLG400C", "xc7z020"):   # ZedBoard = clg484
        assert boards.part_budget(part) == z2, part
    assert boards.part_budget("xczu3eg-sbva484-1-e") == boards.load_board("ultra96").budget
    assert boards.device_of("xczu3eg-sbva484-1-i") == "xczu3eg"
    with pytest.raises(UnknownNameError, match=r"unknown FPGA device .*'xc7a100t'; known: xc7z020, xczu3eg"):
        boards.part_budget("xc7a100tcsg324-1")
    with pytest.raises(ConfigError, match="not a Xilinx part name"):
        boards.part_budget("zynq-7020")


def test_an_entry_on_an_unknown_device_is_refused():
    with pytest.raises(UnknownNameError, match="FPGA device"):
        Entry("x", "y", "arty", "xc7a100t", None, {})
