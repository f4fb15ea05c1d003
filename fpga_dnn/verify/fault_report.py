"""``fpga-dnn faults``: an SEU campaign on the unprotected core, the TMR variant the ranking names
measured by the same campaign, their yosys costs side by side; ``faults.json``/``.md``/``.png``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..log import progress
from ..rtl.registers import TmrPlan, register_module
from ..rtl.verilog import RtlDesign
from ..simulate.verilator import DEFAULT_OPT
from .rtl_faults import Campaign, run_campaign, suggest_tmr


def fault_study(design: RtlDesign, x, out_dir, *, reference=None, n_injections: int = 10_000, seed: int = 0,
                tmr: str = "auto", yosys: bool = True, model_name: str = "", opt: str = DEFAULT_OPT) -> dict:
    """The campaign on ``design`` as built (no TMR expected), then on ``tmr`` ('auto': the
    :func:`suggest_tmr` of the first campaign), with the yosys cost of both; writes the report.
    ``opt``: the C++ optimisation of the fault-port builds."""
    from ..errors import ConfigError

    if design.tmr != "none":
        raise ConfigError(f"fpga-dnn faults compares a design without TMR against its TMR variant; this design "
                          f"was generated with tmr = {design.tmr!r}: set [rtl] tmr = 'none'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    progress(f"faults: {n_injections:,} single-bit upsets into {design.top} ({design.layout.total_bits:,} "
             f"register bits, {design.register_depth} registers deep)")
    base = run_campaign(design, x, reference=reference, n_injections=n_injections, seed=seed, plan="none",
                        opt=opt)
    _say(base)
    plan = suggest_tmr(base) if tmr == "auto" else TmrPlan.parse(tmr)
    campaigns = {"unprotected": base}
    if plan.enabled:
        progress(f"faults: the same campaign on TMR {plan.spec}" + (" (named by the ranking)" if tmr == "auto" else ""))
        prot = run_campaign(design, x, reference=reference, n_injections=n_injections, seed=seed, plan=plan,
                            opt=opt)
        _say(prot)
        campaigns[f"tmr {plan.spec}"] = prot
    costs = yosys_costs(design, campaigns, out_dir) if yosys else {}
    report = _report(design, model_name, campaigns, costs, time.perf_counter() - t0)
    write_report(report, out_dir)
    return report


def yosys_costs(design: RtlDesign, campaigns: dict, out_dir: Path) -> dict:
    """LUT/FF per variant: the unprotected design by :func:`fpga_dnn.estimate.synthesize` (the
    default split method), a TMR variant as that plus the difference between its register module
    and the plain one, each synthesised with da4ml's stage modules as black boxes. The stage logic
    is identical in both, and a flat run of the 8-bit digits MLP took over 10 minutes here."""
    from ..estimate import synthesize, synthesize_module

    progress(f"faults: yosys cost of {', '.join(campaigns)}")
    full = synthesize(design.sources, design.top, "xc7", data_files=design.memfiles, pipeline=design.pipeline,
                      source_info=design.source_info)
    stages = [Path(s) for s in design.sources if Path(s).name.startswith(f"{design.core}_stage")]
    statics = [Path(s) for s in design.sources if Path(s).parent.name == "static"]

    def registers(plan: TmrPlan):
        d = out_dir / "register_module" / plan.spec.replace(":", "_").replace(",", "-")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{design.core}.v").write_text(register_module(design.layout, plan))
        return synthesize_module([d / f"{design.core}.v"], design.core, blackbox_files=stages + statics,
                                 source_info=design.source_info)

    plain = registers(TmrPlan())
    costs = {}
    for label, camp in campaigns.items():
        row = {"lut": full.lut, "ff": full.ff, "carry": full.carry, "method": f"yosys {full.method}"}
        if camp.tmr != "none":
            regs = registers(TmrPlan.parse(camp.tmr))
            row.update(lut=full.lut + regs.lut - plain.lut, ff=full.ff + regs.ff - plain.ff,
                       method=f"unprotected ({full.method}) + register module difference",
                       register_module_lut=regs.lut, register_module_ff=regs.ff)
        else:
            row.update(register_module_lut=plain.lut, register_module_ff=plain.ff)
        costs[label] = row
    return costs


def _say(c: Campaign) -> None:
    o = c.overall
    progress(f"faults: tmr {c.tmr}: {c.injections:,} injections in {c.seconds:.1f} s "
             f"({c.injections_per_s:,.0f}/s); SDC {o['sdc_rate']:.2%} [{o['sdc_ci95'][0]:.2%}, "
             f"{o['sdc_ci95'][1]:.2%}], misclassified {o['misclass_rate']:.2%}, hangs {o['hang']}")


def _report(design, model_name, campaigns: dict, costs: dict, seconds: float) -> dict:
    base = campaigns["unprotected"]
    variants = []
    for label, c in campaigns.items():
        o = c.overall
        # Upsets strike every flip-flop at the same rate, so a design's corruptions per unit time
        # scale with (SDC per upset) x (flip-flops): TMR adds targets, most of them masked.
        per_time = o["sdc_rate"] * c.flip_flops / (base.overall["sdc_rate"] * base.flip_flops or 1)
        mis_time = o["misclass_rate"] * c.flip_flops / (base.overall["misclass_rate"] * base.flip_flops or 1)
        variants.append({"variant": label, "tmr": c.tmr, "flip_flops": c.flip_flops, **{k: o[k] for k in (
            "injections", "masked", "sdc_class_unchanged", "sdc_class_changed", "hang", "sdc_rate", "sdc_ci95",
            "misclass_rate", "misclass_ci95")}, "sdc_per_time_vs_unprotected": per_time,
            "misclass_per_time_vs_unprotected": mis_time,
            "yosys": costs.get(label)})
    return {"model": model_name, "design": design.top, "register_depth": design.register_depth,
            "register_bits": design.layout.total_bits, "samples": base.samples, "seed": base.seed,
            "golden_exact": base.golden_exact, "seconds": round(seconds, 1),
            "method": "one flip-flop flipped for one clock at rising edge c, uniform over (flip-flop, cycle) "
                      "of the looping test stream; each injection simulated in its own window (latency + "
                      "warm-up before, latency + drain after) and compared with the golden run; 95% Wilson "
                      "intervals",
            "variants": variants, "campaigns": {k: c.to_dict() for k, c in campaigns.items()}}


def _pct(v) -> str:
    return f"{100 * v:.2f}%"


def _ci(ci) -> str:
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def write_report(report: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    (out_dir / "faults.json").write_text(json.dumps(report, indent=2))
    (out_dir / "faults.md").write_text(markdown(report))
    plot(report, out_dir / "faults.png")


def markdown(report: dict) -> str:
    lines = [f"# Single-event upsets in the RTL of {report['model'] or report['design']}", "",
             f"{report['design']}: {report['register_bits']:,} register bits in {report['register_depth']} pipeline "
             f"registers; {report['samples']} test samples streaming; golden run equal to the reference on "
             f"{_pct(report['golden_exact'])} of them. Method: {report['method']}.", "",
             "| variant | flip-flops (model) | injections | masked | SDC, class unchanged | SDC, class changed | hang "
             "| SDC rate (95% CI) | misclassification (95% CI) | SDC / misclassification per unit time vs unprotected "
             "| LUT | FF (yosys) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in report["variants"]:
        y = v["yosys"]
        cost = f"{y['lut']:,} | {y['ff']:,}" if y else "- | -"
        lines.append(f"| {v['variant']} | {v['flip_flops']:,} | {v['injections']:,} | {v['masked']:,} | "
                     f"{v['sdc_class_unchanged']:,} | {v['sdc_class_changed']:,} | {v['hang']} | "
                     f"{_pct(v['sdc_rate'])} {_ci(v['sdc_ci95'])} | {_pct(v['misclass_rate'])} "
                     f"{_ci(v['misclass_ci95'])} | {v['sdc_per_time_vs_unprotected']:.3f} / "
                     f"{v['misclass_per_time_vs_unprotected']:.3f} | {cost} |")
    lines += ["", "Per unit time: upsets strike every flip-flop alike, so a variant's rate per unit time is its rate "
              "per upset times its flip-flops (the model's count, replicas included), relative to the unprotected "
              "core.", "", "Hangs: the unrolled core has no control state and presents an output every clock, so the "
              "watchdog (every in-flight sample's output within latency + drain clocks) cannot fire here.", ""]
    for label, c in report["campaigns"].items():
        lines += [f"## {label}: per pipeline register", "",
                  "| register | flip-flops | injections | SDC rate (95% CI) | misclassification (95% CI) |",
                  "|---|---|---|---|---|"]
        for r in c["per_register"]:
            lines.append(f"| {r['register']} {r['name']} | {r['flip_flops']:,} | {r['injections']:,} | "
                         f"{_pct(r['sdc_rate'])} {_ci(r['sdc_ci95'])} | {_pct(r['misclass_rate'])} "
                         f"{_ci(r['misclass_ci95'])} |")
        lines += ["", f"## {label}: per bit position (0 = the element's MSB)", "",
                  "| bit from MSB | injections | SDC rate (95% CI) | misclassification (95% CI) |", "|---|---|---|---|"]
        for r in c["per_bit_from_msb"]:
            lines.append(f"| {r['bit_from_msb']} | {r['injections']:,} | {_pct(r['sdc_rate'])} {_ci(r['sdc_ci95'])} "
                         f"| {_pct(r['misclass_rate'])} {_ci(r['misclass_ci95'])} |")
        lines += ["", f"## {label}: sensitivity ranking (register, bit from MSB; most misclassifications first)",
                  "", "| rank | register | bit from MSB | injections | class changed | misclassification (95% CI) | SDC "
                  "rate (95% CI) |", "|---|---|---|---|---|---|---|"]
        for k, r in enumerate(c["ranking"][:15], 1):
            lines.append(f"| {k} | {r['register']} {r['name']} | {r['bit_from_msb']} | {r['injections']:,} | "
                         f"{r['sdc_class_changed']:,} | {_pct(r['misclass_rate'])} {_ci(r['misclass_ci95'])} | "
                         f"{_pct(r['sdc_rate'])} {_ci(r['sdc_ci95'])} |")
        lines += ["", f"{c['injections']:,} injections in {c['seconds']:.1f} s on {c['threads']} threads "
                  f"({c['injections_per_s']:,.0f}/s); fault-port build {c['build_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    camps = report["campaigns"]
    width = 0.8 / max(1, len(camps))
    for key, ax, xlab in (("per_register", axes[0], "pipeline register (0 = input, last = output)"),
                          ("per_bit_from_msb", axes[1], "bit position from the element's MSB")):
        for k, (label, c) in enumerate(camps.items()):
            rows = c[key]
            xs = np.arange(len(rows)) + k * width
            rate = np.array([r["sdc_rate"] for r in rows])
            lo = rate - np.array([r["sdc_ci95"][0] for r in rows])
            hi = np.array([r["sdc_ci95"][1] for r in rows]) - rate
            ax.bar(xs, 100 * rate, width, yerr=100 * np.vstack([lo, hi]), capsize=2, label=label)
        rows = next(iter(camps.values()))[key]
        ax.set_xticks(np.arange(len(rows)) + width * (len(camps) - 1) / 2)
        ax.set_xticklabels([str(r.get("register", r.get("bit_from_msb"))) for r in rows])
        ax.set_xlabel(xlab)
        ax.set_ylabel("silent data corruption per upset (%)")
        ax.legend()
    fig.suptitle(f"SEU campaign on {report['design']} (95% Wilson intervals)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
