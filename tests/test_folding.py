"""The folding chooser and the folding file (pure Python, no tools): hardware graphs are built
here with the zoo models' layer geometry (zero weights), as fpga_dnn.hw.lower would produce."""

import dataclasses

import numpy as np
import pytest

from fpga_dnn.boards import load_board
from fpga_dnn.hw import folding
from fpga_dnn.hw.folding import FoldingError, TargetUnreachableError
from fpga_dnn.hw.graph import AddNode, Fold, HwGraph, InputNode, MatVecNode, PoolNode, Requant, Window
from fpga_dnn.rtl.precision import HlsType

U8 = HlsType(False, 8, 1)
S8 = HlsType(True, 8, 1)
ACC = HlsType(True, 24, 10)
# each unit ends in its cast to the 8-bit type, as fpga_dnn.hw.lower fuses it (so the streams, and
# the FIFOs on them, are 8 bits an element as in the zoo models)
RELU8, OUT8 = (Requant(0, U8, relu=True),), (Requant(0, S8),)


class Builder:
    """Layer geometry -> HwGraph (Keras 'same'/'valid' padding rules)."""

    def __init__(self, name, shape, in_type=U8):
        self.name, self.nodes = name, [InputNode("input", (), shape, shape, in_type, in_type)]

    @property
    def last(self):
        return self.nodes[-1]

    def conv(self, name, filters, k, s=1, padding="same", src=None):
        src = src or self.last
        h, w, c = src.out_shape
        if padding == "same":
            oh, ow = -(-h // s), -(-w // s)
            ph, pw = max((oh - 1) * s + k - h, 0), max((ow - 1) * s + k - w, 0)
            win = Window(k, k, s, s, ph // 2, pw // 2, ph - ph // 2, pw - pw // 2)
        else:
            win = Window(k, k, s, s)
        oh, ow = win.out_hw(h, w)
        kk = k * k * c
        self.nodes.append(MatVecNode(name, (src.name,), (h, w, c), (oh, ow, filters), src.out_type, U8,
                                     window=win, w=np.zeros((filters, kk), np.int64),
                                     bias=np.zeros(filters, np.int64), acc_width=24, requant=RELU8))
        return self.last

    def dense(self, name, n, src=None):
        src = src or self.last
        kk = int(np.prod(src.out_shape))
        self.nodes.append(MatVecNode(name, (src.name,), src.out_shape, (1, 1, n), src.out_type, S8,
                                     w=np.zeros((n, kk), np.int64), bias=np.zeros(n, np.int64), acc_width=24,
                                     requant=OUT8))
        return self.last

    def pool(self, name, k, mode="max"):
        h, w, c = self.last.out_shape
        win = Window(k, k, k, k)
        oh, ow = win.out_hw(h, w)
        self.nodes.append(PoolNode(name, (self.last.name,), (h, w, c), (oh, ow, c), U8, U8, window=win, mode=mode,
                                   acc_width=8 + (k * k - 1).bit_length(), requant=(Requant(0, U8),)))
        return self.last

    def add(self, name, a, b):
        self.nodes.append(AddNode(name, (a.name, b.name), a.out_shape, a.out_shape, U8, U8, in_type_b=U8,
                                  requant=(Requant(0, U8),)))
        return self.last

    def graph(self):
        return HwGraph(self.name, self.nodes, self.nodes[-1].name)


def rn07():
    b = Builder("rn07", (32, 32, 3))
    for i, (f, k, s) in enumerate([(32, 1, 1), (4, 4, 1), (32, 4, 1), (32, 4, 4), (32, 4, 1)]):
        b.conv(f"conv{i}", f, k, s)
    b.dense("logits", 10)
    return b.graph()


def resnet8():
    b = Builder("resnet8", (32, 32, 3))
    x = b.conv("conv0", 16, 3)
    for s, f in enumerate((16, 32, 64), start=1):
        stride = 1 if s == 1 else 2
        y = b.conv(f"conv{s}b", f, 3, src=b.conv(f"conv{s}a", f, 3, stride, src=x))
        if stride != 1:
            x = b.conv(f"skip{s}", f, 1, stride, src=x)
        x = b.add(f"add{s}", x, y)
    b.pool("pool", 8, "avg")
    b.dense("logits", 10)
    return b.graph()


def ad08():
    b = Builder("ad08", (1, 1, 64), S8)
    for i, n in enumerate((72, 72, 8, 72, 72), start=1):
        b.dense(f"dense{i}", n)
    b.dense("reconstruction", 64)
    return b.graph()


def digits_cnn():
    b = Builder("digits_cnn", (8, 8, 1))
    b.conv("conv0", 8, 3, padding="valid")
    b.pool("pool0", 2)
    b.dense("logits", 10)
    return b.graph()


@pytest.fixture(scope="module")
def pynq():
    return load_board("pynq-z2")


def test_cycle_formula_is_fd_mvus():
    g = rn07()
    conv1, dense = g["conv1"], g["logits"]
    # conv1: K = 4*4*32 = 512, N = 4, 1024 output pixels, one window beat per vector. While the
    # MVU is the slower unit, the generator's window-less steps (35*35 - 1024) overlap its work
    assert folding.mvu_cycles(conv1, Fold(2, 16)) == 1024 * (4 // 2) * (512 // 16)
    # ... but at the row and frame ends the MVU runs out of windows: 46 cycles more. 32,814 is
    # what Verilator measured on the stitched rn07 with this folding (issue 15's note)
    assert folding.mvu_cycles(conv1, Fold(1, 64)) == 32_814
    plan = folding.plan_for(g, {"conv0": Fold(1, 3), "conv1": Fold(1, 64), "conv2": Fold(1, 64),
                                "conv3": Fold(1, 32), "conv4": Fold(1, 32), "logits": Fold(1, 1)}, load_board("pynq-z2"))
    assert plan.cycles_per_frame == 32_814
    # the window generator walks the padded 35x35 image: a floor on the conv's cycles
    assert folding.swg_cycles(conv1) == 35 * 35
    assert folding.node_cycles(conv1, Fold(4, 512)) == 35 * 35
    # the plain test design's c1 (9x9 'same', stride 2, 12 cycles a window): 302, as measured in
    # tests/test_stream_flow.py; the old closed form (+1 per window-less step) said 396
    assert folding.window_schedule_cycles(11, 11, 3, 3, 2, 2, 12) == 302
    # Dense after Flatten: K = 2048 in 64 beats of 32 channels -> at least 64 cycles per vector
    assert folding.mvu_cycles(dense, Fold(10, 2048)) == 64
    assert folding.mvu_cycles(dense, Fold(1, 1)) == 10 * 2048


@pytest.mark.parametrize("make,target,max_cycles", [(rn07, 2431, 41_100), (resnet8, 1000, 100_000),
                                                    (ad08, 533_650, 187)])
def test_chooser_meets_the_issue_targets_on_a_pynq_z2(make, target, max_cycles, pynq):
    g = make()
    plan = folding.choose(g, pynq, target_ips=target)
    assert plan.cycles_per_frame <= max_cycles and plan.inferences_per_s >= target
    assert plan.fits, plan.over_budget()
    r = plan.resources
    assert r.dsp <= 220 and r.bram36 <= 140 and r.lut <= 0.85 * 53_200
    for name, f in plan.folds.items():  # legal and no wasted parallelism: balanced
        node = g[name]
        assert node.n % f.pe == 0 and node.k % f.simd == 0
        assert folding.node_cycles(node, f) <= plan.cycles_per_frame
        cheaper = [(pe, s) for pe in node.legal_pe() for s in folding.legal_simd(node) if pe * s < f.pe * f.simd]
        assert all(folding.mvu_cycles(node, Fold(pe, s)) > plan.cycles_per_frame for pe, s in cheaper)
    # one DSP per multiplier, and the AXI-Stream shell's one (yosys maps its lane offset to a DSP48)
    assert r.dsp == sum(f.pe * f.simd for f in plan.folds.values()) + folding.SHELL_MODEL["dsp"]


def test_digits_cnn_is_tiny_when_folded(pynq):
    plan = folding.choose(digits_cnn(), pynq, target_ips=1_000_000)
    assert plan.fits and plan.cycles_per_frame <= 100
    assert plan.resources.lut < 0.5 * 53_200


def test_faster_target_costs_more(pynq):
    slow = folding.choose(rn07(), pynq, target_ips=500)
    fast = folding.choose(rn07(), pynq, target_ips=2431)
    assert slow.cycles_per_frame > fast.cycles_per_frame
    assert slow.resources.dsp < fast.resources.dsp


def test_impossible_target_names_best_reachable_and_binding_resource(pynq):
    with pytest.raises(TargetUnreachableError) as err:
        folding.choose(rn07(), pynq, target_ips=20_000)
    e = err.value
    assert e.best is not None and e.best.fits and e.best.inferences_per_s < 20_000
    # the DSP48s bind first; with products moved into LUTs, the LUTs do
    assert e.binding == "LUT" and "binding: LUT" in str(e)
    assert f"{e.best.inferences_per_s:,.1f} inf/s" in str(e)
    # the best is the fastest that fits: a target at its throughput is met
    again = folding.choose(rn07(), pynq, target_ips=e.best.inferences_per_s)
    assert again.cycles_per_frame == e.best.cycles_per_frame
    # beyond what the structure allows (the AXI-Stream shell moves one of the 32*32*3 input
    # elements per cycle; the window generators walk 35x35 pixels per frame)
    with pytest.raises(TargetUnreachableError, match=r"binding: layer 'input'.*3,072 cycles/frame"):
        folding.choose(rn07(), pynq, target_ips=200_000)


def test_fastest_that_fits(pynq):
    plan = folding.choose(ad08(), pynq)
    assert plan.fits and plan.cycles_per_frame <= 187


def test_folding_file_round_trip_and_edit(tmp_path, pynq):
    g = rn07()
    plan = folding.choose(g, pynq, target_ips=2431)
    path = folding.write_folding(plan, tmp_path / "rn07.folding.toml")
    text = path.read_text()
    assert "cycles/frame" in text and "DSP" in text and "latency" in text and "[conv3]" in text
    folds = folding.read_folding(path, g)
    assert folds == plan.folds
    again = folding.plan_for(g, folds, pynq)
    assert again.cycles_per_frame == plan.cycles_per_frame and again.resources == plan.resources
    # hand edit: halve conv1's parallelism -> it becomes the bottleneck
    f1 = folds["conv1"]
    edited = text.replace(f"[conv1]\npe = {f1.pe}\nsimd = {f1.simd}", f"[conv1]\npe = {f1.pe}\nsimd = {f1.simd // 2}")
    path.write_text(edited)
    mine = folding.plan_for(g, folding.read_folding(path, g), pynq)
    half = folding.mvu_cycles(g["conv1"], Fold(f1.pe, f1.simd // 2))
    assert mine.bottleneck == "conv1" and mine.cycles_per_frame == half > plan.cycles_per_frame


def test_folding_file_errors_name_the_layer_and_legal_values(tmp_path):
    g = rn07()
    p = tmp_path / "bad.toml"
    p.write_text("[conv1]\npe = 3\nsimd = 16\n")
    with pytest.raises(FoldingError, match=r"layer 'conv1': pe=3 does not divide N=4 \(legal pe: 1, 2, 4\)"):
        folding.read_folding(p, g)
    p.write_text("[conv0]\npe = 1\nsimd = 2\n")
    with pytest.raises(FoldingError, match=r"simd=2 does not divide K=3 \(legal simd: 1, 3\)"):
        folding.read_folding(p, g)
    # a Dense reads 32-element beats: simd and 32 must divide one another
    p.write_text("[logits]\npe = 1\nsimd = 128\n")
    assert folding.read_folding(p, g) == {"logits": Fold(1, 128)}
    p.write_text("[logits]\npe = 1\nsimd = 2048\n")
    folding.read_folding(p, g)
    p.write_text("[nosuch]\npe = 1\n")
    with pytest.raises(FoldingError, match="'nosuch' is not a Conv/Dense layer of rn07; its Conv/Dense layers: conv0"):
        folding.read_folding(p, g)
    p.write_text("[conv1]\npe = 0\n")
    with pytest.raises(FoldingError, match="pe must be a positive integer"):
        folding.read_folding(p, g)
    p.write_text("[conv1]\npe = 1\nreuse = 4\n")
    with pytest.raises(FoldingError, match=r"unknown key\(s\) \['reuse'\]"):
        folding.read_folding(p, g)
    p.write_text("[conv1\n")
    with pytest.raises(FoldingError, match="not valid TOML"):
        folding.read_folding(p, g)


def test_simd_must_match_the_beat_size():
    b = Builder("t", (1, 6, 4))
    b.dense("d", 2)  # K = 24 in beats of 4 elements: simd 3 and 6 neither divide nor are multiples of 4
    node = b.graph()["d"]
    assert folding.legal_simd(node) == [1, 2, 4, 8, 12, 24]
    assert "must divide one another" in folding.fold_error(node, Fold(1, 6))


def test_bram_model():
    assert folding.bram36_for(512, 36) == 0.5
    assert folding.bram36_for(1024, 36) == 1.0
    assert folding.bram36_for(64, 512) == 7.5   # 512 bits / 36 per RAMB18 = 15 RAMB18
    b = Builder("t", (1, 1, 256))
    b.dense("big", 256)
    node = b.graph()["big"]
    r = folding.node_resources(node, Fold(1, 16))  # 4096 words x 128 bits in block RAM
    assert r.bram36 == folding.bram36_for(4096, 128) and r.dsp == 16
    small = folding.node_resources(node, Fold(256, 256))  # 1 word: a LUT ROM
    assert small.bram36 == 0 and small.dsp == 65536


def test_estimate_resource_table_puts_the_prediction_beside_yosys(pynq):
    from fpga_dnn.estimate import ResourceReport, resource_table

    rep = ResourceReport(top="t", family="xc7", lut=26_600, ff=1000, carry=0, dsp=110, bram36=14.5, lutram=0,
                         logic_levels=5)
    plan = folding.choose(rn07(), pynq, target_ips=2431)
    rows = {r["resource"]: r for r in resource_table(rep, pynq, plan.resources.as_dict())}
    assert rows["DSP"] == {"resource": "DSP", "yosys": 110, "budget": 220, "percent": 50.0, "predicted": 197}
    assert rows["BRAM36"]["percent"] == round(100 * 14.5 / 140, 1) and rows["LUT"]["percent"] == 50.0
    assert "predicted" not in resource_table(rep, pynq)[0]


def test_fifo_model_maps_as_yosys_maps_fd_fifo():
    """fd_fifo's three structures, at the sizes the split yosys estimate measured (the comments
    at folding.FIFO_MODEL): registers at depth 2, LUT RAM up to 64 entries (any width) or below
    4096 bits, block RAM beyond."""
    skid = folding.fifo_resources(2, 512)
    assert (skid.lut, skid.ff, skid.bram36, skid.lutram) == (521, 1028, 0, 0)      # measured 521 / 1,028
    assert folding.fifo_resources(113, 32).lutram == 22                              # measured 22 RAM64M
    assert folding.fifo_resources(3, 24).lutram == 4                                 # measured 4 RAM32M
    assert folding.fifo_resources(165, 608).bram36 == 8.5                            # measured 17 RAMB18
    wide = folding.fifo_resources(21, 2816)     # resnet8's conv3b -> add3: was 39.5 BRAM36 by width
    assert (wide.bram36, wide.lutram) == (0, 470)                                    # measured 0 / 470 RAM32M
    assert folding.fifo_resources(65, 2816).lutram == 939 and folding.fifo_resources(66, 2816).bram36 > 0
    # deeper costs more: past the LUT RAM threshold it takes block RAM, and more of it when wider
    small, deep = folding.fifo_resources(40, 64), folding.fifo_resources(200, 64)
    assert small.bram36 == 0 < small.lutram and deep.bram36 > 0
    assert folding.fifo_resources(200, 640).bram36 > deep.bram36


def test_plan_counts_the_fifos_the_stitcher_places_and_the_shell(pynq, tmp_path):
    from fpga_dnn.rtl.stream.stitch import edge_fifos

    g = rn07()
    plan = folding.choose(g, pynq, target_ips=2431)
    fifos = [lp for lp in plan.layers if lp.kind == "fifo"]
    placed = edge_fifos(g.with_folds(plan.folds))
    assert [(lp.name, lp.depth, lp.width) for lp in fifos] == [(f.what, f.depth, f.width) for f in placed]
    shell = [lp for lp in plan.layers if lp.kind == "shell"]
    assert len(shell) == 1 and shell[0].resources.lut > 1000 and shell[0].resources.dsp == 1
    layers_only = sum((lp.resources for lp in plan.layers if lp.kind not in ("fifo", "shell")), folding.Resources())
    # rn07's window FIFOs (113 x 256 bits ahead of conv1, ...) take block RAM on top of the ROMs
    assert plan.resources.bram36 > layers_only.bram36 and plan.resources.ff > layers_only.ff
    rows = folding.report_rows(plan)
    assert any(r["kind"] == "fifo" and r["depth"] == 113 and r["width"] == 256 for r in rows)
    text = folding.write_folding(plan, tmp_path / "f.toml").read_text()
    assert "AXI-Stream shell and the FIFOs" in text and f"{len(fifos)} FIFOs" in text
    assert folding.read_folding(tmp_path / "f.toml", g) == plan.folds      # FIFO rows are comments only


def test_a_deeper_fifo_raises_the_prediction_and_can_bind_the_budget(pynq, monkeypatch):
    """The FIFO terms reach the fit verdict: deeper FIFOs (a larger margin on rn07's window FIFOs)
    cost block RAM, and enough of them make the plan not fit, with BRAM36 named as binding."""
    from fpga_dnn.rtl.stream import stitch

    g = rn07()
    folds = folding.choose(g, pynq, target_ips=2431).folds
    base = folding.plan_for(g, folds, pynq)
    monkeypatch.setattr(stitch, "SKIP_MARGIN", stitch.SKIP_MARGIN + 6000)
    deeper = folding.plan_for(g, folds, pynq)
    assert deeper.resources.bram36 > base.resources.bram36 and deeper.cycles_per_frame == base.cycles_per_frame
    assert not deeper.fits and deeper.over_budget()[0] == "BRAM36"
    with pytest.raises(TargetUnreachableError, match="binding: BRAM36"):
        folding.choose(g, pynq, target_ips=2431)


def test_pool_cost_follows_the_form_fd_pool_takes(pynq):
    """resnet8's 8x8x64 global average pool tiles the image, so fd_pool accumulates it pixel by
    pixel (flat yosys: 1,494 LUT, 1,935 FF; the one-cycle window reduce it replaced was 57,826
    LUT); an overlapping pool keeps fd_swg and the reduce, costed as before. resnet8 fits."""
    g = resnet8()
    pool = g["pool"]
    assert pool.window.tiles
    seq = folding.pool_window_resources(pool)
    assert 1_000 < seq.lut < 2_000 and 1_500 < seq.ff < 2_500 and seq.lutram == 0
    overlapping = dataclasses.replace(pool, window=dataclasses.replace(pool.window, sh=1, sw=1))
    assert not overlapping.window.tiles and folding.pool_window_resources(overlapping).lut > 50_000
    plan = folding.choose(g, pynq, target_ips=1000)
    assert plan.fits and plan.resources.bram36 <= 140


def test_at_target_is_the_folding_over_budget(pynq, monkeypatch):
    """When no folding fits, the error carries the target's folding (what the bench builds so
    yosys shows the overrun)."""
    from fpga_dnn.rtl.stream import stitch

    monkeypatch.setattr(stitch, "SKIP_MARGIN", stitch.SKIP_MARGIN + 6000)
    with pytest.raises(TargetUnreachableError, match="binding: BRAM36") as err:
        folding.choose(rn07(), pynq, target_ips=2431)
    at = err.value.at_target
    assert at is not None and at.cycles_per_frame <= 41_100 and not at.fits


def test_lut_ram_counts_against_the_lut_budget():
    r = folding.Resources(lut=100, lutram=10)
    assert r.lut_total == 100 + folding.LUTS_PER_LUTRAM * 10 and r.as_dict()["LUTRAM"] == 10


def test_unit_costs_follow_the_yosys_measurements():
    """The calibrated terms against what split yosys measured on the bench's designs (xc7):
    resnet8's add requants (27-29 -> 8 bits, RND_CONV, SAT, ReLU: 34.1-38.0 LUT per element),
    its 1,536-word conv3b ROM (12 BRAM36 as 1,024 + 512 words), line buffers as LUT RAM (rn07's
    conv1: 35 x 768 bits, 256 RAM64M = 1,024 LUTs), a pure truncation costs nothing."""
    rq = Requant(13, HlsType(False, 8, 1, "RND_CONV", "SAT"), relu=True)
    for in_w, measured in ((27, 34.1), (28, 36.1), (29, 38.0)):
        assert abs(folding.cast_lut(in_w, True, rq) - measured) <= 0.1 * measured
    assert folding.cast_lut(22, True, Requant(0, HlsType(True, 28, 10))) == 0
    assert folding.bram36_for(1536, 288) == 12 and folding.bram36_for(512, 36) == 0.5
    assert folding._memory(35, 768) == (0, 0.0, 256) and folding._memory(32, 768) == (0, 0.0, 128)
    lut, bram, cells = folding._memory(200, 768)       # deep: block RAM
    assert bram > 0 and cells == 0


def test_dsp_budget_moves_whole_layers_into_lut_multipliers(pynq, tmp_path):
    """resnet8 at 2,000 inf/s needs 259 DSP48s as DSPs: the chooser moves whole layers' products
    into LUTs (narrow operands first) until the DSPs fit, says why per layer, and the folding file
    carries the choice back; at 1,000 inf/s every product stays on a DSP48."""
    g = resnet8()
    assert all(f.mult == "dsp" for f in folding.choose(g, pynq, target_ips=1000).folds.values())
    plan = folding.choose(g, pynq, target_ips=2000)
    lut_layers = [k for k, f in plan.folds.items() if f.mult == "lut"]
    assert plan.fits and lut_layers and plan.resources.dsp <= 220
    dsp_only = folding.plan_for(g, {k: Fold(f.pe, f.simd) for k, f in plan.folds.items()}, pynq)
    assert dsp_only.resources.dsp > 220 and not dsp_only.fits
    assert plan.resources.lut_total > dsp_only.resources.lut_total
    for name in lut_layers:
        assert any(n.startswith(f"{name}: LUT multipliers") and "DSP48s would be" in n for n in plan.notes)
    text = folding.write_folding(plan, tmp_path / "f.toml").read_text()
    assert text.count('mult = "lut"') == len(lut_layers) and "LUT multipliers" in text
    assert folding.read_folding(tmp_path / "f.toml", g) == plan.folds
    (tmp_path / "bad.toml").write_text('[conv0]\npe = 1\nsimd = 9\nmult = "dsp48"\n')
    with pytest.raises(FoldingError, match=r"layer 'conv0': mult must be one of 'dsp', 'lut', got 'dsp48'"):
        folding.read_folding(tmp_path / "bad.toml", g)
