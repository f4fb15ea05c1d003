"""The Pareto report: front and headline logic on known points, the files it writes, and a small
real sweep (two recipes) whose points are bit-exact in C-sim."""

from __future__ import annotations

import json

import pytest


def _p(name, acc, luts, exact=1.0):
    from fpga_dnn.compress.pareto import Point

    return Point(name, "t", name, accuracy=acc, luts=luts, dsp=0, latency_cycles=5, bit_exact=exact, weights=10,
                 sparsity=0.0)


def test_front_and_headline_logic():
    from fpga_dnn.compress.pareto import headline, pareto_front

    pts = [_p("qat_w8", 0.97, 40000), _p("a", 0.975, 20000), _p("b", 0.96, 10000), _p("c", 0.95, 30000),
           _p("d", 0.975, 25000), _p("e", 0.99, 50000), _p("f", 0.972, 9000, exact=0.99)]
    # b is beaten by f (fewer LUTs, more accuracy); d by a (same accuracy, more LUTs); c, qat_w8 by a
    assert [p.name for p in pareto_front(pts)] == ["f", "a", "e"]
    h = headline(pts, float_accuracy=0.975, reference="qat_w8")
    # within 1 point of 0.975 and < 40k LUT: a (20k), d (25k); f is smaller but not bit-exact
    assert h["found"] and h["point"] == "a" and h["lut_saving"] == pytest.approx(0.5)
    assert not headline(pts, float_accuracy=0.999, reference="qat_w8")["found"]


def test_report_files(tmp_path):
    from fpga_dnn.compress.pareto import ParetoReport, headline, pareto_front, write_report

    pts = [_p("qat_w8", 0.965, 40000), _p("prune75", 0.968, 12000), _p("w4", 0.9, 8000)]
    for p in pareto_front(pts):
        p.on_front = True
    rep = ParetoReport("digits_mlp", "digits", 0.972, "da4ml", pts, headline(pts, 0.972, "qat_w8"),
                       {"pynq-z2": 53200, "ultra96": 70560})
    files = write_report(rep, tmp_path)
    data = json.loads(files["json"].read_text())
    assert data["headline"]["point"] == "prune75" and [p["on_front"] for p in data["points"]] == [False, True, True]
    md = files["md"].read_text()
    assert "**Headline:** `prune75`" in md and "| prune75 |" in md and "pynq-z2 53,200" in md
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files["png"].stat().st_size > 10000


@pytest.mark.slow
def test_small_real_sweep(pareto_quick):
    from fpga_dnn.compress.pareto import default_recipes, run_sweep
    from fpga_dnn.train import TrainConfig

    tmp_path, epochs = pareto_quick
    # two of the quick sweep's recipes, trained as `fpga-dnn pareto --quick --epochs 25` trains them
    recipes = [r for r in default_recipes(quick=True) if r.name in ("qat_w8", "prune75")]
    train = TrainConfig(epochs=epochs, float_baseline=False, seed=0)
    rep = run_sweep("digits_mlp", tmp_path, recipes=recipes, yosys="none", train=train)
    w8, pr = rep.points
    assert w8.bit_exact == 1.0 and pr.bit_exact == 1.0
    assert pr.sparsity >= 0.74 and pr.luts < 0.5 * w8.luts
    assert min(w8.accuracy, pr.accuracy) > 0.9 and rep.float_accuracy > 0.9
    assert (tmp_path / "pareto.json").is_file() and (tmp_path / "pareto.png").is_file()
    again = run_sweep("digits_mlp", tmp_path, recipes=recipes, yosys="none", train=train)
    assert [p.luts for p in again.points] == [w8.luts, pr.luts]  # cached points, same numbers


@pytest.mark.slow
def test_hardware_columns_yosys_and_rtl_emulation(tmp_path):
    """The columns the report adds for the points it checks in hardware terms: yosys counts and
    the generated Verilog run in the Verilator emulation (= Keras on the whole test set). On one
    4-bit eighth-width reference (64-4-4-10) to keep yosys and Verilator cheap (two 8-bit
    quarter-width points took 400 s on a loaded machine); the headline's own columns go through
    the same code and appear in headline() (test_front_and_headline_logic)."""
    import json

    from fpga_dnn.compress.pareto import Recipe, run_sweep
    from fpga_dnn.train import TrainConfig

    recipes = [Recipe("qat_w8", "qat", "4-bit, eighth width (the reference by name)", 4, 4, hidden=0.125)]
    rep = run_sweep("digits_mlp", tmp_path, recipes=recipes, yosys="headline",
                    train=TrainConfig(epochs=15, float_baseline=False))
    # the headline mode checks the reference and the headline point (if one was found)
    checked = {"qat_w8"} | ({rep.headline["point"]} if rep.headline.get("found") else set())
    for p in rep.points:
        if p.name in checked:
            assert p.yosys_luts > 0 and p.yosys_dsp == 0 and p.rtl_exact == 1.0, p
            # the da4ml estimate (the sweep's cost model) and yosys agree to within a factor of three
            # (a few hundred LUTs here, where fixed overheads weigh more)
            assert 1 / 3 < p.yosys_luts / p.luts < 3.0, (p.yosys_luts, p.luts)
        else:
            assert p.yosys_luts is None and p.rtl_exact is None
    if rep.headline.get("found"):
        assert rep.headline["rtl_exact"] == 1.0 and rep.headline["reference_yosys_luts"] > 0
    saved = {d["name"]: d for d in json.loads((tmp_path / "pareto.json").read_text())["points"]}
    md = (tmp_path / "pareto.md").read_text()
    for p in (p for p in rep.points if p.name in checked):
        assert saved[p.name]["yosys_luts"] == p.yosys_luts and saved[p.name]["rtl_exact"] == 1.0
        row = next(line for line in md.splitlines() if line.startswith(f"| {p.name} |"))
        assert f"{p.yosys_luts:,}" in row and "1.0000" in row, row
