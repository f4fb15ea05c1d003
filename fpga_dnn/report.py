"""The flow report: one row of results, printed as a table and written as JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# (key, column title, format). Later steps append their columns here.
COLUMNS = [
    ("model", "model", "{}"),
    ("framework", "framework", "{}"),
    ("bits", "bits", "{}"),
    ("target", "target board", "{}"),
    ("float_accuracy", "float acc", "{:.4f}"),
    ("qat_accuracy", "QAT acc", "{:.4f}"),
    ("compress", "compression", "{}"),
    ("compressed_accuracy", "compressed acc", "{:.4f}"),
    ("csim_accuracy", "C-sim acc", "{:.4f}"),
    ("csim_compared", "C-sim compared on", "{}"),
    ("bit_exact", "bit-exact (Keras = C-sim)", "{:.4f}"),
    ("bit_exact_samples", "exact samples", "{}"),
    ("probe_exact", "probe set exact (Keras = C-sim)", "{:.4f}"),
    ("probe_exact_samples", "probe exact samples", "{}"),
    ("unguaranteed_layers", "exactness not guaranteed", "{}"),
    ("train_s", "train s", "{:.1f}"),
    ("convert_s", "convert s", "{:.1f}"),
    ("compile_s", "compile s", "{:.1f}"),
    ("csim_samples_per_s", "C-sim samples/s", "{:,.0f}"),
    ("rtl_latency_cycles", "RTL latency (cycles, shell incl.)", "{}"),
    ("latency_measured", "latency measured (cocotb)", "{}"),
    ("latency_ns", "latency ns @ board clock", "{:.0f}"),
    ("rtl_compared_with", "RTL compared with", "{}"),
    ("rtl_exact_csim", "bit-exact (RTL emu = C-sim)", "{:.4f}"),
    ("rtl_probe_exact", "probe set exact (RTL emu)", "{:.4f}"),
    ("rtl_probe_exact_samples", "RTL probe exact samples", "{}"),
    ("rtl_exact_keras", "bit-exact (RTL emu = Keras)", "{:.4f}"),
    ("tb_exact", "AXI-Stream tb exact samples", "{}"),
    ("tb_passed", "AXI-Stream tb tests passed", "{}"),
    ("verilator_build_s", "Verilator build s", "{:.1f}"),
    ("emu_samples_per_s", "RTL emu samples/s", "{:,.0f}"),
    ("tb_cycles_per_s", "cocotb cycles/s", "{:,.0f}"),
    ("lut", "LUT (yosys)", "{:,}"),
    ("estimate_method", "yosys method", "{}"),
    ("ff", "FF", "{:,}"),
    ("dsp", "DSP", "{}"),
    ("bram36", "BRAM36", "{:g}"),
    ("logic_levels", "logic levels", "{}"),
    ("fit_pynq-z2", "PYNQ-Z2 fit", "{}"),
    ("fit_ultra96", "Ultra96 fit", "{}"),
    ("runtime_exact_csim", "runtime bit-exact (= C-sim)", "{:.4f}"),
    ("runtime_accuracy", "runtime accuracy", "{:.4f}"),
    ("runtime_host_us", "runtime host us/call (batch 1)", "{:.1f}"),
    ("overlay", "overlay", "{}"),
    ("total_s", "total s", "{:.1f}"),
]


@dataclass
class FlowReport:
    name: str
    values: dict = field(default_factory=dict)
    step_seconds: dict = field(default_factory=dict)

    def set(self, **kv):
        self.values.update({k: v for k, v in kv.items() if v is not None})

    def step_time(self, step: str, seconds: float):
        self.step_seconds[step] = round(seconds, 2)

    def rows(self) -> list[tuple[str, str]]:
        out = []
        for key, title, fmt in COLUMNS:
            if key in self.values:
                v = self.values[key]
                out.append((title, fmt.format(v) if not isinstance(v, str) else v))
        return out

    def table(self) -> str:
        rows = self.rows()
        w = max(len(t) for t, _ in rows)
        lines = [f"fpga_dnn report: {self.name}", "-" * (w + 20)]
        lines += [f"{t:<{w}}  {v}" for t, v in rows]
        if "first_mismatch" in self.values:
            lines.append(f"{'first mismatch':<{w}}  {self.values['first_mismatch']}")
        return "\n".join(lines)

    def markdown(self) -> str:
        rows = self.rows()
        head = "| " + " | ".join(t for t, _ in rows) + " |"
        sep = "|" + "|".join("---" for _ in rows) + "|"
        body = "| " + " | ".join(v for _, v in rows) + " |"
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in self.step_seconds.items())
        text = f"# fpga_dnn report: {self.name}\n\n{head}\n{sep}\n{body}\n\nStep times: {steps}\n"
        if "first_mismatch" in self.values:
            text += f"\nFirst mismatch: {self.values['first_mismatch']}\n"
        return text

    def to_json(self) -> dict:
        return {"name": self.name, **self.values, "step_seconds": self.step_seconds}

    def write(self, folder) -> tuple[Path, Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        j, m = folder / "report.json", folder / "report.md"
        j.write_text(json.dumps(self.to_json(), indent=2))
        m.write_text(self.markdown())
        return j, m


def quantizer_widths(model) -> str | None:
    """``w<bits>/a<bits>`` as the model's own quantizers say (a range ``lo-hi`` where layers
    differ): QKeras kernel quantizers and activation quantizers, HGQ2 weight (``kq``) and input
    (``iq``) quantizers. None when the model has no quantizer at all (a float model)."""
    import numpy as np

    weights, acts = set(), set()

    def bits_of(q):
        b = getattr(q, "bits", None)
        if b is None and hasattr(q, "quantizer"):
            b = getattr(q.quantizer, "bits", None)
        if b is None:
            return None
        b = np.asarray(b, dtype=np.float64)
        return int(b.max()) if b.size else None

    for layer in model.layers:
        for attr, into in (("kernel_quantizer_internal", weights), ("depthwise_quantizer_internal", weights),
                           ("pointwise_quantizer_internal", weights), ("kq", weights), ("iq", acts)):
            q = getattr(layer, attr, None)
            if q is not None and (b := bits_of(q)) is not None:
                into.add(b)
        if type(layer).__name__ == "QActivation" and (b := bits_of(layer.quantizer)) is not None:
            acts.add(b)
        act = getattr(layer, "activation", None)  # QKeras QDense(..., activation=quantized_relu(...))
        if type(layer).__name__ != "QActivation" and act is not None and hasattr(act, "bits"):
            acts.add(int(act.bits))

    def span(values):
        return "?" if not values else (f"{min(values)}" if min(values) == max(values)
                                       else f"{min(values)}-{max(values)}")

    parts = ([f"w{span(weights)}"] if weights else []) + ([f"a{span(acts)}"] if acts else [])
    return "/".join(parts) or None
