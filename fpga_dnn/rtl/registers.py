"""The unrolled core's register module: da4ml's pipeline registers, optionally triplicated (TMR)
and optionally with a fault-injection port.

da4ml writes the core ``<core>.v`` as a chain ``stage0_inp <= model_inp; stage{k}_inp <=
stage{k-1}_out; model_out <= stage{N-1}_out`` around its combinational stage modules. We write
that module ourselves from the register layout (:class:`RegisterLayout`, taken from da4ml's
``Pipeline`` when the core is generated and kept in the Design), so that

* ``tmr`` (:class:`TmrPlan`) can triplicate any subset of register bits with a majority voter
  behind them (single-event-upset mitigation; the two replicas sit in their own
  ``keep_hierarchy``/``DONT_TOUCH`` module, since yosys' ``opt_merge`` merged replicas marked only
  ``(* keep *)``: 63 -> 79 flip-flops instead of ~190 on a tiny core), and
* the fault-injection build (:mod:`fpga_dnn.verify.rtl_faults`) gets an input ``fi_mask`` with one
  bit per flip-flop (replicas included) that is XOR-ed into that flip-flop's next value: a mask
  bit set during rising edge ``c`` makes the flip-flop hold the flipped value for one clock, the
  effect of an upset right after edge ``c``. With the mask at zero the module equals da4ml's.

The combinational stage modules are da4ml's, unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

#: Register names in pipeline order: ``stage{k}_inp`` for each stage, then ``model_out``.
OUTPUT_REGISTER = "model_out"


@dataclass(frozen=True)
class RegisterLayout:
    """The pipeline registers of an unrolled core, in order, each as its packed elements.

    ``elements[r]`` lists (k, i, f) per element of register ``r`` (da4ml's minimal formats, in bus
    order from bit 0 up; an element of width k+i+f = 0 takes no bits). Register ``r`` holds the
    sample that was on ``model_inp`` ``r`` edges earlier: register 0 is the input register, the
    last is ``model_out``.
    """

    core: str
    elements: tuple[tuple[tuple[int, int, int], ...], ...]

    @classmethod
    def from_pipeline(cls, pipe, core: str) -> "RegisterLayout":
        from da4ml.types import minimal_kif

        regs = [sol.inp_qint for sol in pipe.solutions] + [pipe.out_qint]
        return cls(core, tuple(tuple(tuple(int(v) for v in minimal_kif(q)) for q in qs) for qs in regs))

    @classmethod
    def from_dict(cls, d: dict) -> "RegisterLayout":
        return cls(d["core"], tuple(tuple(tuple(e) for e in reg) for reg in d["elements"]))

    def to_dict(self) -> dict:
        return {"core": self.core, "elements": [[list(e) for e in reg] for reg in self.elements]}

    @property
    def n_stages(self) -> int:
        return len(self.elements) - 1

    @property
    def depth(self) -> int:
        """Registers from input to output (= the core's register depth)."""
        return len(self.elements)

    def name(self, r: int) -> str:
        return OUTPUT_REGISTER if r == self.n_stages else f"stage{r}_inp"

    def width(self, r: int) -> int:
        return sum(sum(e) for e in self.elements[r])

    @property
    def total_bits(self) -> int:
        return sum(self.width(r) for r in range(self.depth))

    def bits(self, r: int):
        """Per bit of register ``r`` (from bit 0): (element index, bit index from the element's MSB,
        width of the element)."""
        out = []
        for e, kif in enumerate(self.elements[r]):
            w = sum(kif)
            out += [(e, w - 1 - j, w) for j in range(w)]
        return out


# ------------------------------------------------------------------ which bits are triplicated

@dataclass(frozen=True)
class TmrPlan:
    """Which register bits are triplicated. ``spec`` is what the user wrote:

    * ``"none"`` - no protection (da4ml's registers);
    * ``"all"`` - every pipeline register bit;
    * ``"msb:N"`` - the N most significant bits of every element of every register (a fault
      campaign ranks bit positions from the MSB; the top ones carry most silent corruptions);
    * ``"stages:a,b"`` - every bit of the named registers (0 = input register, last = output).
    """

    spec: str = "none"

    KINDS = ("none", "all", "msb:N", "stages:a,b,...")

    @classmethod
    def parse(cls, spec) -> "TmrPlan":
        text = "none" if spec in (None, False, "") else ("all" if spec is True else str(spec).strip().lower())
        ok = (text in ("none", "all") or re.fullmatch(r"msb:[1-9]\d*", text)
              or re.fullmatch(r"stages:\d+(,\d+)*", text))
        if not ok:
            raise ConfigError(f"tmr {spec!r} is not understood; accepted: none, all, msb:N (N >= 1) or "
                              "stages:a,b (register indices, 0 = input register)")
        return cls(text)

    @property
    def enabled(self) -> bool:
        return self.spec != "none"

    def protected(self, layout: RegisterLayout, r: int) -> list[bool]:
        """Per bit of register ``r``: triplicated or not."""
        bits = layout.bits(r)
        if self.spec == "none":
            return [False] * len(bits)
        if self.spec == "all":
            return [True] * len(bits)
        kind, arg = self.spec.split(":")
        if kind == "msb":
            n = int(arg)
            return [from_msb < n for _, from_msb, _ in bits]
        wanted = {int(s) for s in arg.split(",")}
        bad = sorted(s for s in wanted if s >= layout.depth)
        if bad:
            raise ConfigError(f"tmr {self.spec!r}: the core has registers 0..{layout.depth - 1}, not {bad}")
        return [r in wanted] * len(bits)

    def flip_flops(self, layout: RegisterLayout) -> int:
        """Flip-flops of the register module under this plan (replicas included)."""
        return sum(layout.width(r) + 2 * sum(self.protected(layout, r)) for r in range(layout.depth))


def _ranges(flags: list[bool]) -> list[tuple[int, int]]:
    """Maximal runs of True as (lo, hi) bit ranges, hi inclusive."""
    out, start = [], None
    for j, f in enumerate(flags + [False]):
        if f and start is None:
            start = j
        elif not f and start is not None:
            out.append((start, j - 1))
            start = None
    return out


def _cat(name: str, ranges: list[tuple[int, int]]) -> str:
    """``{name[hi:lo], ...}`` of the ranges, most significant range first."""
    return "{" + ", ".join(f"{name}[{hi}:{lo}]" for lo, hi in reversed(ranges)) + "}"


def register_module(layout: RegisterLayout, plan: TmrPlan | None = None, fault_port: bool = False) -> str:
    """Verilog of the core module ``layout.core``: the registers (triplicated per ``plan``, with
    voters), da4ml's stage instances, and with ``fault_port`` an input ``fi_mask`` of
    :func:`fault_bits` bits (see :func:`flip_flop_map` for which bit is which flip-flop)."""
    plan = plan or TmrPlan()
    core, n = layout.core, layout.n_stages
    ffs = plan.flip_flops(layout)
    ports = ["    input clk,", f"    input [{layout.width(0) - 1}:0] model_inp,"]
    if fault_port:
        ports.append(f"    input [{ffs - 1}:0] fi_mask,")
    ports.append(f"    output [{layout.width(n) - 1}:0] model_out")
    decl, body, seq = [], [], []
    fi = 0  # next fault-mask bit
    for r in range(layout.depth):
        name, w = layout.name(r), layout.width(r)
        d_in = "model_inp" if r == 0 else f"stage{r - 1}_out"
        q = name if r < n else "model_out"
        flags = plan.protected(layout, r)
        ranges = _ranges(flags)
        p = sum(flags)
        a = f"{name}_a" if (p or r == n) else name  # the first copy; model_out is a voted/assigned wire
        decl.append(f"    reg [{w - 1}:0] {a};")
        mask = (lambda lo, width: f" ^ fi_mask[{lo + width - 1}:{lo}]") if fault_port else (lambda lo, width: "")
        seq.append(f"        {a} <= {d_in}{mask(fi, w)};")
        fi += w
        if p:
            sel = _cat(d_in, ranges)
            for copy in ("b", "c"):
                decl.append(f"    wire [{p - 1}:0] {name}_{copy};")
                body.append(f"    {core}_tmr_copy #({p}) {name}_{copy}_r (.clk(clk), .d({sel}{mask(fi, p)}), "
                            f".q({name}_{copy}));")
                fi += p
            if r < n:
                decl.append(f"    wire [{w - 1}:0] {q};")
            # majority of the three copies on the protected bits, the first copy elsewhere
            body.append(f"    wire [{p - 1}:0] {name}_v = ({_cat(a, ranges)} & {name}_b) | "
                        f"({_cat(a, ranges)} & {name}_c) | ({name}_b & {name}_c);")
            off = 0
            for lo, hi in _ranges([not f for f in flags]):
                body.append(f"    assign {q}[{hi}:{lo}] = {a}[{hi}:{lo}];")
            for lo, hi in ranges:
                body.append(f"    assign {q}[{hi}:{lo}] = {name}_v[{off + hi - lo}:{off}];")
                off += hi - lo + 1
        elif r == n:
            body.append(f"    assign model_out = {a};")
    wires = [f"    wire [{layout.width(k + 1) - 1}:0] stage{k}_out;" for k in range(n)]
    inst = [f"    {core}_stage{k} stage{k} (.model_inp(stage{k}_inp), .model_out(stage{k}_out));" for k in range(n)]
    what = f"TMR {plan.spec}" if plan.enabled else "no TMR"
    copy_module = [
        "// A replica register in its own hierarchy: synthesis would merge flip-flops with the same",
        "// input (yosys opt_merge ignores (* keep *) on a reg; Vivado's equivalent-register removal),",
        "// which would undo the triplication.",
        "(* keep_hierarchy = \"yes\", DONT_TOUCH = \"yes\" *)",
        f"module {core}_tmr_copy #(parameter W = 1) (input clk, input [W-1:0] d, output reg [W-1:0] q);",
        "    always @(posedge clk) q <= d;", "endmodule", ""] if plan.enabled else []
    return "\n".join([
        "`timescale 1 ns / 1 ps", "",
        f"// Generated by fpga_dnn.rtl.registers: da4ml's pipeline registers of {core} ({what}"
        f"{', fault-injection port' if fault_port else ''}; {ffs} flip-flops).",
        f"module {core} (", *ports, ");", *decl, *wires, "", *body, "", *inst, "",
        "    always @(posedge clk) begin", *seq, "    end", "endmodule", "", *copy_module])


def fault_bits(layout: RegisterLayout, plan: TmrPlan | None = None) -> int:
    """Width of ``fi_mask``: one bit per flip-flop."""
    return (plan or TmrPlan()).flip_flops(layout)


def flip_flop_map(layout: RegisterLayout, plan: TmrPlan | None = None) -> list[tuple[int, int, int]]:
    """Per ``fi_mask`` bit: (register index, bit of the register, copy 0/1/2), in the order
    :func:`register_module` assigns them."""
    plan = plan or TmrPlan()
    out = []
    for r in range(layout.depth):
        w = layout.width(r)
        out += [(r, j, 0) for j in range(w)]
        prot = [j for j, f in enumerate(plan.protected(layout, r)) if f]
        for copy in (1, 2):
            out += [(r, j, copy) for j in prot]
    return out
