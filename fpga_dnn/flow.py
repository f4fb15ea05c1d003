"""The flow: a list of named steps, each handing a typed artifact to the next.

``train -> compress -> convert -> csim -> rtl -> simulate -> estimate -> overlay -> deploy``;
each step is a function in :data:`STEPS`. A flow file (TOML) names the steps and their options; see
``fpga_dnn/configs/demo.toml`` for the documented default.
"""

from __future__ import annotations

import json
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import artifacts, models
from .convert import ConvertOptions, options_from_dict
from .errors import ConfigError, UnknownNameError
from .log import progress
from .report import FlowReport
from .train import TrainConfig

DEFAULT_ZOO = "digits_mlp"
DEFAULT_BOARD = "pynq-z2"
#: Boards estimated when [estimate] boards is not given (the target's comes first).
ESTIMATE_BOARDS = ("pynq-z2", "ultra96")
STEP_ORDER = ("train", "compress", "convert", "csim", "rtl", "simulate", "estimate", "overlay", "deploy")
SECTIONS = {"flow", "model", "quant", "train", "compress", "convert", "csim", "rtl", "simulate", "estimate", "overlay",
            "deploy"}


@dataclass
class EstimateOptions:
    """The ``[estimate]`` table: yosys resource estimates and the fit check per board."""

    boards: list | None = None  # default: the flow's target board first, then the other known boards
    margin: float = 1.0  # fraction of each budget a design may use (0.8 keeps 20% headroom)
    method: str = "split"  # split (pipeline pieces in parallel, fast) | flat (one full run per family)


@dataclass
class OverlayOptions:
    """The ``[overlay]`` table: Vivado scripts for a board (run only when Vivado is named)."""

    board: str | None = None     # default: the flow's target board ([flow] board)
    path: str = "rtl"            # rtl (our Verilog + AXI-Stream shell) or hls (hls4ml's HLS IP)
    vivado: str | None = None    # Vivado binary/folder; default: $FPGA_DNN_VIVADO / $XILINX_VIVADO
    jobs: int = 2
    # optional bitstream encryption (fpga_dnn.overlay.encryption); key paths on the Vivado machine
    encrypt_key: str | None = None        # AES key file (.nky); unset: plaintext bitstream
    encrypt_key_source: str = "bbram"     # bbram | efuse
    rsa_keys: list | None = None          # Ultra96 (ZynqMP): [primary, secondary] secret keys (PEM)


@dataclass
class DeployOptions:
    """The ``[deploy]`` table: the test set through the runtime on a simulated board."""

    backend: str = "emulate"     # emulate (no pynq) here; sim = pynq on the fake board (board env)
    bench_calls: int = 1000


@dataclass
class ModelSpec:
    """Which model: a zoo name (trained by the flow) or a user's saved model file plus data, never
    both. With neither, the zoo model :data:`DEFAULT_ZOO`."""

    zoo: str | None = None
    framework: str = "qkeras"
    file: str | None = None
    data: str | None = None


@dataclass
class FlowConfig:
    name: str = "flow"
    steps: list = field(default_factory=lambda: list(STEP_ORDER))
    model: ModelSpec = field(default_factory=ModelSpec)
    quant: models.Quant = field(default_factory=models.Quant)
    train: TrainConfig = field(default_factory=TrainConfig)
    compress: object = None      # fpga_dnn.compress.CompressOptions
    csim: object = None          # fpga_dnn.csim.CsimOptions
    convert: ConvertOptions = field(default_factory=ConvertOptions)
    rtl: object = None           # fpga_dnn.rtl.build.RtlOptions
    simulate: object = None      # fpga_dnn.simulate.check.SimOptions
    estimate: EstimateOptions = field(default_factory=EstimateOptions)
    overlay: OverlayOptions = field(default_factory=OverlayOptions)
    deploy: DeployOptions = field(default_factory=DeployOptions)
    csim_require_exact: bool = True
    board: str | None = None     # the one target board; [convert]/[overlay] board may repeat it
    base_dir: Path = field(default_factory=Path.cwd)  # relative paths in the file resolve here

    @classmethod
    def load(cls, path) -> "FlowConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"flow file not found: {path}")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
        return cls.from_dict(raw, base_dir=path.parent, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, base_dir=None, source: str = "flow config") -> "FlowConfig":
        unknown = set(raw) - SECTIONS
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)}; known: {sorted(SECTIONS)}")

        def section(name, klass):
            d = dict(raw.get(name, {}))
            bad = set(d) - set(klass.__dataclass_fields__)
            if bad:
                raise ConfigError(f"{source}: unknown key(s) {sorted(bad)} in [{name}]; "
                                  f"known: {sorted(klass.__dataclass_fields__)}")
            try:
                return klass(**d)
            except TypeError as err:
                raise ConfigError(f"{source}: [{name}]: {err}") from None

        flow = dict(raw.get("flow", {}))
        bad = set(flow) - {"name", "steps", "csim_require_exact", "board"}
        if bad:
            raise ConfigError(f"{source}: unknown key(s) {sorted(bad)} in [flow]; known: board, name, steps, "
                              "csim_require_exact")
        from .compress import compress_options
        from .rtl.build import RtlOptions
        from .simulate.check import SimOptions

        from .csim import CsimOptions

        compress = compress_options(dict(raw.get("compress", {})))
        cfg = cls(
            csim=section("csim", CsimOptions),
            compress=compress,
            rtl=section("rtl", RtlOptions),
            simulate=section("simulate", SimOptions),
            estimate=section("estimate", EstimateOptions),
            overlay=section("overlay", OverlayOptions),
            deploy=section("deploy", DeployOptions),
            name=str(flow.get("name", "flow")),
            steps=list(flow.get("steps", STEP_ORDER)),
            model=section("model", ModelSpec),
            quant=section("quant", models.Quant),
            train=section("train", TrainConfig),
            convert=options_from_dict(dict(raw.get("convert", {}))),
            csim_require_exact=bool(flow.get("csim_require_exact", True)),
            board=flow.get("board"),
            base_dir=Path(base_dir) if base_dir else Path.cwd(),
        )
        return cfg.check()

    def check(self) -> "FlowConfig":
        for s in self.steps:
            if s not in STEPS:
                raise UnknownNameError("step", s, STEPS)
        order = [STEP_ORDER.index(s) for s in self.steps]
        if order != sorted(order) or len(set(order)) != len(order):
            raise ConfigError(f"steps {self.steps} must be distinct and in flow order: {' -> '.join(STEP_ORDER)}")
        m = self.model
        if m.framework not in models.FRAMEWORKS[:2]:
            raise UnknownNameError("framework", m.framework, models.FRAMEWORKS[:2])
        if m.file and m.zoo:
            raise ConfigError(f"[model] names a zoo model ({m.zoo!r}) and a file ({m.file!r}): give one of them")
        if not m.file and not m.zoo:
            m.zoo = DEFAULT_ZOO
        if m.file:
            if "train" in self.steps:
                raise ConfigError("[model] file= is a trained model: drop 'train' from the steps")
            if not m.data:
                raise ConfigError("[model] file= needs data= (a .npz/.npy of test inputs) for conversion and C-sim")
        else:
            models.arch(m.zoo)  # unknown zoo names fail here, with the list
            if "train" not in self.steps and self.steps:
                raise ConfigError("a zoo model must be trained first: add 'train' to the steps or give [model] file=")
        self.quant.check()
        self.convert.check()
        if self.csim is None:
            from .csim import CsimOptions

            self.csim = CsimOptions()
        self.csim.check()
        if self.compress is None:
            from .compress import CompressOptions

            self.compress = CompressOptions()
        self.compress.check()
        if "compress" in self.steps and self.compress.techniques and m.file and not self.compress.train_data:
            raise ConfigError("[compress] on a model file needs train_data= (a .npz with x_train, y_train) for "
                              "fine-tuning")
        if self.rtl is None:
            from .rtl.build import RtlOptions

            self.rtl = RtlOptions()
        if self.simulate is None:
            from .simulate.check import SimOptions

            self.simulate = SimOptions()
        self.rtl.check()
        self.simulate.check()  # before training: a [simulate] table that checks no sample is refused now
        from .boards import load_board

        target = self.target_board()
        for b in self.estimate_boards():
            load_board(b)
        if self.estimate.boards is not None and target not in self.estimate.boards:
            raise ConfigError(f"[estimate] boards {self.estimate.boards} leave out the flow's target board "
                              f"{target!r}: add it (or drop the key to estimate the target first)")
        from .estimate import METHODS

        if self.estimate.method not in METHODS:
            raise UnknownNameError("estimate method", self.estimate.method, METHODS)
        if self.overlay.path not in ("rtl", "hls"):
            raise UnknownNameError("overlay path", self.overlay.path, ("rtl", "hls"))
        if self.deploy.backend not in ("emulate", "sim"):
            raise UnknownNameError("deploy backend", self.deploy.backend, ("emulate", "sim"))
        hw = [s for s in self.steps if STEP_ORDER.index(s) >= STEP_ORDER.index("rtl")]
        if hw and "convert" not in self.steps:
            raise ConfigError(f"steps {hw} need the hls4ml graph: add 'convert' (and 'csim') to the steps")
        needs_rtl = [s for s in ("simulate", "estimate", "deploy") if s in self.steps]
        if needs_rtl and "rtl" not in self.steps:
            raise ConfigError(f"steps {needs_rtl} need the generated RTL: add 'rtl' to the steps")
        if "overlay" in self.steps and self.overlay.path == "rtl" and "rtl" not in self.steps:
            raise ConfigError("the RTL overlay path needs the 'rtl' step (or set [overlay] path = 'hls')")
        if ("simulate" in self.steps or "deploy" in self.steps) and "csim" not in self.steps:
            raise ConfigError("'simulate'/'deploy' compare with C-sim: add 'csim' to the steps")
        return self

    def resolve(self, p) -> Path:
        p = Path(p)
        return p if p.is_absolute() else self.base_dir / p

    def target_board(self) -> str:
        """The one board the flow targets: the hls4ml part, the RTL clock, the compression cost
        model, the overlay and the first estimate all follow it. ``[flow] board``, ``[convert]
        board`` and ``[overlay] board`` may each name it; naming two different boards is an error."""
        from .boards import load_board

        named = {key: b for key, b in (("[flow] board", self.board), ("[convert] board", self.convert.board),
                                       ("[overlay] board", self.overlay.board)) if b}
        if len(set(named.values())) > 1:
            raise ConfigError("one target board per flow, but " + ", ".join(f"{k} = {v!r}" for k, v in named.items())
                              + ": set [flow] board once")
        target = next(iter(named.values()), DEFAULT_BOARD)
        load_board(target)  # unknown names fail here, with the list
        return target

    def estimate_boards(self) -> list:
        """[estimate] boards as given, else the target first and then the other known boards."""
        if self.estimate.boards is not None:
            return list(self.estimate.boards)
        target = self.target_board()
        return [target] + [b for b in ESTIMATE_BOARDS if b != target]

    def convert_options(self) -> ConvertOptions:
        """The [convert] options with the flow's target board (its part unless [convert] part is set)."""
        from dataclasses import replace

        from .boards import load_board

        target = self.target_board()
        return replace(self.convert, board=target, part=self.convert.part or load_board(target).part).check()

    def clock_mhz(self) -> float:
        """The RTL clock: the target board's PL clock."""
        from .boards import load_board

        return load_board(self.target_board()).pl_clock_mhz

    def model_name(self) -> str:
        """The design's name: the zoo name, or the model file's stem (a Verilog identifier);
        ``[rtl] name`` overrides."""
        from .rtl.build import module_name

        if self.rtl is not None and self.rtl.name:
            return module_name(self.rtl.name)
        return module_name(self.model.zoo if not self.model.file else Path(self.model.file).stem)


@dataclass
class FlowState:
    """What the steps hand to each other (typed artifacts and the loaded model/data)."""

    config: FlowConfig
    build_dir: Path
    model: object = None
    framework: str | None = None
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    train: object = None       # train.TrainResult
    compressed: list = field(default_factory=list)  # one info dict per compression technique
    convert: object = None     # convert.ConvertResult
    csim: object = None        # csim.CsimReport
    rtl: object = None         # rtl.build.RtlBuild
    sim: object = None         # simulate.check.SimReport
    resources: dict = field(default_factory=dict)  # board -> (ResourceReport, FitVerdict)
    overlay: object = None     # overlay.OverlayScripts
    keras_out: np.ndarray | None = None
    report: FlowReport = None
    golden: tuple | None = None  # (GoldenVectors, info) for the bundles: see _golden


def step_train(st: FlowState) -> None:
    from . import train as train_mod
    from .data import load_data_file
    from .modelio import load_model

    c = st.config
    out = st.build_dir / "train"
    inputs = {"model": c.model.zoo, "framework": c.model.framework, "quant": asdict(c.quant),
              "train": asdict(c.train)}
    digest = artifacts.inputs_hash(inputs)
    if artifacts.is_fresh(out, "train", digest):
        meta = artifacts.load_manifest(out)["outputs"]["meta"]
        res = train_mod.TrainResult(out / meta["model_path"], out / meta["data_path"], out / "model.meta.json", meta)
        progress(f"train: inputs unchanged, reusing {res.model_path}")
    else:
        res = train_mod.train(c.model.zoo, c.model.framework, c.quant, c.train, out)
        artifacts.write_manifest(out, "train", digest, inputs, {"meta": res.meta})
    st.train = res
    st.model, st.framework = load_model(res.model_path)
    st.x, st.y = load_data_file(res.data_path)
    _report_widths(st)
    meta = res.meta
    st.report.set(float_accuracy=meta.get("float", {}).get("accuracy"), qat_accuracy=meta["qat"]["accuracy"],
                  weights=meta["weights"], train_s=meta["qat"]["seconds"] + meta.get("float", {}).get("seconds", 0))


def _training_data(st: FlowState):
    """The dataset compression fine-tunes on: the zoo dataset, or the user's train_data file."""
    from . import data as data_mod

    c = st.config
    if c.model.zoo and not c.model.file:
        return data_mod.load_dataset(models.arch(c.model.zoo).dataset)
    from .errors import DataError

    path = c.resolve(c.compress.train_data)
    try:
        with np.load(path, allow_pickle=False) as z:
            xtr, ytr = z["x_train"], z["y_train"]
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"[compress] train_data {path}: need a .npz with x_train and y_train ({err})") from None
    from .convert import input_format_for

    if st.y is None:
        raise DataError("[compress] needs labelled test data: [model] data must hold y_test too")
    return data_mod.Dataset(name=path.stem, x_train=xtr, y_train=ytr, x_test=st.x, y_test=st.y,
                            input_format=input_format_for(np.concatenate([xtr, st.x]), c.convert.input_precision),
                            n_classes=int(max(ytr.max(), st.y.max()) + 1))


def step_compress(st: FlowState) -> None:
    from . import compress
    from .modelio import load_model

    c = st.config
    opts = c.compress
    if st.model is None:
        _load_user_model(st)
    if not opts.techniques:
        progress("compress: no techniques in [compress]; the model goes on unchanged")
        return
    out = st.build_dir / "compress"
    upstream = artifacts.load_manifest(st.build_dir / "train") or {}
    inputs = {"model": str(st.train.model_path if st.train else c.resolve(c.model.file)),
              "upstream": upstream.get("inputs_hash") or artifacts.file_hash(c.resolve(c.model.file)),
              "compress": {k: v for k, v in asdict(opts).items() if k not in opts.PLACEMENT}}
    digest = artifacts.inputs_hash(inputs)
    if artifacts.is_fresh(out, "compress", digest):
        outputs = artifacts.load_manifest(out)["outputs"]
        st.model, st.framework = load_model(out / outputs["model_path"])
        st.compressed = outputs["infos"]
        progress(f"compress: inputs unchanged, reusing {out / outputs['model_path']}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        ds = _training_data(st)
        teacher = None
        if st.train is not None and (st.train.model_path.parent / "float.h5").is_file():
            teacher = st.train.model_path.parent / "float.h5"
        model, infos = compress.apply(st.model, ds, opts, teacher=teacher, zoo=c.model.zoo, x_calib=st.x,
                                      cost_options=_cost_options(c), store_dir=out / "store")
        from .modelio import framework_of

        path = out / ("model.keras" if framework_of(model) == "hgq2" else "model.h5")
        model.save(path)
        (out / "compress.json").write_text(json.dumps(infos, indent=2, default=str))
        artifacts.write_manifest(out, "compress", digest, inputs, {"model_path": path.name, "infos": infos})
        st.model, st.framework = load_model(path)
        st.compressed = infos
    from .train import accuracy

    acc = accuracy(st.model, st.x, st.y) if st.y is not None else None
    summary = "; ".join(_compress_summary(i) for i in st.compressed)
    progress(f"compress: {summary}; test accuracy {acc}")
    st.report.set(compress=summary, compressed_accuracy=acc)


def _cost_options(c: FlowConfig) -> dict:
    """What the compression cost model needs to price the design this flow builds: the flow's own
    conversion (target part, backend, reuse...), RTL options and clock, the target's yosys family."""
    from .boards import load_board

    return {"convert_options": c.convert_options(), "latency_cutoff": c.rtl.latency_cutoff,
            "softmax": c.rtl.softmax, "clock_period": 1000.0 / c.clock_mhz(),
            "family": load_board(c.target_board()).yosys_family}


def _compress_summary(info: dict) -> str:
    t = info["technique"]
    detail = {"prune": lambda i: f"sparsity {i['sparsity']:.0%}",
              "structured": lambda i: "units " + ",".join(f"{a}->{b}" for a, b in i["units"].values()),
              "lowrank": lambda i: "ranks " + ",".join(str(r[0]) for r in i["ranks"].values()),
              "cluster": lambda i: f"<= {i['clusters']} shared weights/layer",
              "distill": lambda i: f"T={i['temperature']}",
              "bitwidth": lambda i: f"{i['method']} {i['luts']:,.0f} LUT <= {i['budget_luts']:,.0f}"}[t](info)
    return f"{t} ({detail})"


def _report_widths(st: FlowState) -> None:
    """The report's widths come from the model's own quantizers (not from [quant])."""
    from .report import quantizer_widths

    st.report.set(bits=quantizer_widths(st.model) or "float", framework=st.framework)


def _load_user_model(st: FlowState) -> None:
    from .data import load_data_file
    from .modelio import load_model
    from .train import accuracy

    c = st.config
    st.model, st.framework = load_model(c.resolve(c.model.file))
    st.x, st.y = load_data_file(c.resolve(c.model.data))
    _report_widths(st)
    if st.y is not None:
        from .convert import check_input

        st.report.set(qat_accuracy=accuracy(st.model, check_input(st.model, st.x), st.y))


def step_convert(st: FlowState) -> None:
    from .convert import convert

    if st.model is None:
        _load_user_model(st)
    st.convert = convert(st.model, st.x, st.config.convert_options(), output_dir=st.build_dir / "hls",
                         framework=st.framework)
    st.report.set(convert_s=round(st.convert.seconds, 2), input_format=str(st.convert.input_format),
                  backend=st.config.convert.backend, io_type=st.config.convert.io_type)


def step_csim(st: FlowState) -> None:
    from .convert import check_input
    from .csim import describe_mismatch, run_csim, run_probes
    from .errors import MismatchError

    from .train import predict_logits

    c = st.config
    x = check_input(st.model, st.x)
    st.keras_out = predict_logits(st.model, x)
    rep = run_csim(st.convert.hls_model, st.model, x, st.y, keras_out=st.keras_out,
                   traced_twin=st.convert.traced_twin)
    rep.probe = run_probes(st.convert.hls_model, st.model, st.convert.input_format, c.csim.probe_samples,
                           c.csim.probe_seed, traced_twin=st.convert.traced_twin)
    st.csim = rep
    (st.build_dir / "csim").mkdir(parents=True, exist_ok=True)
    np.save(st.build_dir / "csim" / "outputs.npy", rep.outputs)  # the reference later steps match
    st.report.set(csim_accuracy=rep.accuracy, bit_exact=rep.exact_fraction,
                  bit_exact_samples=f"{round(rep.exact_fraction * rep.n_samples)}/{rep.n_samples}",
                  compile_s=rep.compile_seconds, csim_samples_per_s=rep.samples_per_second)
    if rep.compared != "outputs":
        st.report.set(csim_compared=rep.compared)
    probe = rep.probe
    if probe is not None:
        st.report.set(probe_exact=probe.exact_fraction,
                      probe_exact_samples=f"{round(probe.exact_fraction * probe.n_samples)}/{probe.n_samples}")
    _report_unguaranteed(st)
    mismatch = rep.first_mismatch or (probe.first_mismatch if probe is not None else None)
    if mismatch:
        where = "test split" if rep.first_mismatch else "probe set"
        st.report.set(first_mismatch=f"{where}: {describe_mismatch(mismatch)}")
        if c.csim_require_exact:
            st.report.write(st.build_dir)
            raise MismatchError(f"C-sim is not bit-exact with Keras (test split {rep.exact_fraction:.4f}, probe set "
                                f"{probe.exact_fraction if probe is not None else float('nan'):.4f}); first mismatch "
                                f"({where}): {describe_mismatch(mismatch)}")


def _report_unguaranteed(st: FlowState) -> None:
    """Layers whose hls4ml types convert could not prove exact over every input: named in the
    step's output and the report, with the probe set's fraction beside them."""
    notes = getattr(st.convert, "unguaranteed", None) or {}
    if not notes:
        return
    probe = st.csim.probe
    frac = f"probe set exact {probe.exact_fraction:.4f}" if probe is not None else "no probe set"
    text = "; ".join(f"{name}: {why}" for name, why in notes.items())
    progress(f"csim: exactness not guaranteed over the whole input range for {', '.join(notes)} ({frac}): {text}")
    st.report.set(unguaranteed_layers=f"{text} ({frac})")


def step_rtl(st: FlowState) -> None:
    from .rtl.build import build_rtl

    c = st.config
    board = _board(c.target_board())
    st.rtl = build_rtl(st.convert.hls_model, st.build_dir / "rtl", opts=c.rtl, name=c.model_name(),
                       clock_mhz=c.clock_mhz(), board=board.name)
    s = st.rtl.summary()
    if s.get("architecture") == "streaming":
        st.report.set(rtl_architecture="streaming", rtl_predicted_cycles_per_frame=s["predicted_cycles_per_frame"])
    st.report.set(rtl_latency_cycles=s["latency_total"], rtl_core_latency=s["latency_core"],
                  rtl_est_luts=s["estimated_luts"], rtl_s=round(s["trace_s"] + s["write_s"], 2))


def step_simulate(st: FlowState) -> None:
    from .convert import check_input
    from .errors import MismatchError
    from .simulate.check import simulate_rtl

    x = check_input(st.model, st.x)
    if getattr(st.rtl, "architecture", "unrolled") == "streaming":
        return _simulate_stream(st, x)
    probe = st.csim.probe
    rep = simulate_rtl(st.rtl, x, st.csim.outputs, st.keras_out, st.config.simulate, model=st.model,
                       probe_x=probe.x if probe is not None else None,
                       probe_csim=probe.outputs if probe is not None else None)
    st.sim = rep
    st.report.set(rtl_compared_with=rep.compared_with, rtl_exact_csim=rep.emu_exact_csim,
                  **_probe_columns(rep.emu_probe_exact, rep.probe_samples), rtl_exact_keras=rep.emu_exact_keras,
                  emu_samples_per_s=rep.emu_samples_per_s, verilator_build_s=rep.emu_build_s,
                  tb_passed=None if rep.tb is None else ("all" if rep.tb_passed else "FAILED"),
                  tb_exact=f"{rep.tb_exact_samples}/{rep.tb_samples}" if rep.tb_exact_samples is not None else None,
                  latency_measured=rep.latency_measured[0] if rep.latency_measured else None,
                  tb_cycles_per_s=rep.tb_cycles_per_s)
    problems = rep.failures()
    if problems:
        st.report.set(simulate_failures="; ".join(problems)[:500])
        st.report.write(st.build_dir)
        raise MismatchError("RTL simulation failed: " + "; ".join(problems)[:500])


def _probe_columns(exact: float | None, n: int) -> dict:
    """The report's probe-set columns for the RTL (both architectures): fraction and count."""
    if exact is None:
        return {}
    return {"rtl_probe_exact": exact, "rtl_probe_exact_samples": f"{round(exact * n)}/{n}"}


def _simulate_stream(st: FlowState, x) -> None:
    """The streamed design in Verilator against C-sim and Keras (and with backpressure), on the
    test split and the probe set; a departure names its first sample and layer."""
    from .errors import MismatchError
    from .simulate.check import rtl_reference
    from .simulate.stream_emulator import check_stream

    softmax = st.rtl.graph.softmax
    ref, what = rtl_reference(st.model, x, st.csim.outputs, softmax)
    probe = st.csim.probe
    p_ref = rtl_reference(st.model, probe.x, probe.outputs, softmax)[0] if probe is not None else None
    rep = check_stream(st.rtl, x, ref, st.keras_out if softmax is None else None,
                       probe_x=probe.x if probe is not None else None, probe_csim=p_ref, compared_with=what)
    st.sim = rep
    st.report.set(rtl_compared_with=what, rtl_exact_csim=rep.exact_csim, rtl_exact_keras=rep.exact_keras,
                  **_probe_columns(rep.probe_exact, rep.probe_samples),
                  rtl_exact_backpressure=rep.backpressure_exact, emu_samples_per_s=round(rep.samples_per_s, 1),
                  verilator_build_s=rep.build_seconds, cycles_per_frame_measured=rep.cycles_per_frame,
                  cycles_per_frame_predicted=rep.predicted_cycles_per_frame, latency_measured=rep.first_latency,
                  fifo_max_occupancy={k: list(v) for k, v in rep.fifo_max.items()})
    progress(f"simulate: streamed RTL equals the {what} on {rep.exact_csim:.4f} of {rep.n_samples} test samples"
             + (f" and {rep.probe_exact_samples} probe inputs" if rep.probe_exact is not None else "")
             + f"; {rep.cycles_per_frame:g} cycles/frame measured, {rep.predicted_cycles_per_frame} predicted")
    problems = rep.failures()
    if problems:
        st.report.set(simulate_failures="; ".join(problems)[:500])
        st.report.write(st.build_dir)
        raise MismatchError("streamed RTL simulation failed: " + "; ".join(problems)[:500])


def _board(name: str):
    from .boards import load_board

    return load_board(name)


def step_estimate(st: FlowState) -> None:
    from .estimate import fit_check, latency_ns, synthesize_design

    from concurrent.futures import ThreadPoolExecutor

    axis = st.rtl.axis
    opts = st.config.estimate
    names = st.config.estimate_boards()
    boards = [_board(name) for name in names]
    # One yosys process per board family, side by side (each is single-threaded).
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda b: synthesize_design(axis, b.yosys_family, method=opts.method), boards))
    for name, board, res in zip(names, boards, reports):
        verdict = fit_check(res, board, margin=opts.margin)
        st.resources[name] = (res, verdict)
        progress(f"estimate: {name}: {res.lut_total:,} LUT ({res.lut:,} logic, {res.lut_as_memory:,} as memory), {res.ff:,} FF, {res.carry:,} CARRY, {res.dsp} DSP, "
                 f"{res.bram36:g} BRAM36, {res.logic_levels} logic levels; {verdict.message}")
    first = names[0]
    res, verdict = st.resources[first]
    board = _board(first)
    st.report.set(lut=res.lut_total, ff=res.ff, dsp=res.dsp, bram36=res.bram36, logic_levels=res.logic_levels,
                  latency_ns=latency_ns(st.rtl.spec.total_latency, board), yosys_s=res.yosys_seconds,
                  estimate_method=f"{res.method}, {res.pieces} pieces",  # split falls back to flat
                  **{f"fit_{b}": v.message for b, (_, v) in st.resources.items()})


def step_overlay(st: FlowState) -> None:
    from .overlay import generate_overlay

    o = st.config.overlay
    board = st.config.target_board()
    design = st.rtl.axis if o.path == "rtl" else st.convert.output_dir
    out = st.build_dir / "overlay" / f"{board}-{o.path}"
    encryption = None
    if o.encrypt_key:
        from .overlay.encryption import BitstreamEncryption
        psk, ssk = (list(o.rsa_keys) + [None, None])[:2] if o.rsa_keys else (None, None)
        r = st.config.resolve   # relative to the flow file's folder
        encryption = BitstreamEncryption(r(o.encrypt_key), o.encrypt_key_source,
                                         r(psk) if psk else None, r(ssk) if ssk else None)
    st.overlay = generate_overlay(design, board, out, path=o.path, bundle_dir=st.build_dir / "bundle" / board,
                                  vivado=o.vivado, jobs=o.jobs, encryption=encryption,
                                  spec=st.rtl.spec if (o.path == "hls" and st.rtl) else None,
                                  golden=_golden(st) if st.rtl else None)
    progress(f"overlay: {st.overlay.next_step()}")
    st.report.set(overlay=st.overlay.next_step() if not st.overlay.ran else f"bitstream in {st.overlay.bundle_dir}")


def _golden(st: FlowState) -> tuple:
    """The build's golden vectors and their coverage (made once; every bundle carries them):
    test samples, input-grid edges and probes covering saturation and rounding ties, with the
    RTL emulation's outputs, checked equal to C-sim (:mod:`fpga_dnn.verify.golden`)."""
    if st.golden is None:
        from .convert import check_input
        from .verify.golden import golden_for_build

        gv, cov = golden_for_build(st.rtl, st.convert.hls_model, st.model, check_input(st.model, st.x))
        st.golden = (gv, {"coverage": cov.as_dict()})
        progress(f"golden vectors: {len(gv)} (test samples, edges, probes), the RTL emulation's outputs equal to "
                 f"C-sim; they reach {cov.covered} of {cov.reachable} reachable design events "
                 f"({len(cov.names)} in all: saturation and rounding ties per unit and element)")
        st.report.set(golden_vectors=len(gv), golden_events_covered=f"{cov.covered}/{cov.reachable}")
    return st.golden


def step_deploy(st: FlowState) -> None:
    from .convert import check_input
    from .simulate.emulator import emulator_model_fn
    from .runtime.accelerator import Accelerator
    from .runtime.fake.hwh import write_sim_bundle
    from .runtime.signing import generate_key, sign_bundle
    from .simulate.check import rows_equal

    golden, golden_info = _golden(st)
    bundle = write_sim_bundle(st.rtl.spec, st.build_dir / "bundle" / "sim", board=st.config.target_board(),
                              golden=golden, golden_info=golden_info)
    # Signed like a real bundle, with a throwaway key made for this build folder (a deployment
    # signs with its own: fpga-dnn keygen / fpga-dnn sign); the runtime verifies it before use.
    key = st.build_dir / "keys" / "throwaway.key"
    if not key.is_file():
        generate_key(key, overwrite=True)
    sign_bundle(bundle, key)
    x = check_input(st.model, st.x)
    model_fn = emulator_model_fn(st.rtl.design.out_dir)
    with Accelerator.open(bundle, backend=st.config.deploy.backend, model=model_fn,
                          trusted_keys=[key.with_suffix(".pub")]) as acc:
        self_test = acc.self_test_report   # the golden vectors ran at open: the bundle is refused otherwise
        out = acc.predict(x.reshape((len(x),) + st.rtl.spec.input.shape))
        bench = acc.benchmark(n=st.config.deploy.bench_calls, batch=1, x=x[:64].reshape((-1,) + st.rtl.spec.input.shape))
    from .simulate.check import rtl_reference

    ref, what = rtl_reference(st.model, x, st.csim.outputs, st.rtl.traced.softmax)
    exact = rows_equal(out, ref)
    acc_ = float((out.reshape(len(out), -1).argmax(1) == st.y).mean()) if st.y is not None else None
    progress(f"deploy: runtime ({st.config.deploy.backend} backend, RTL emulation behind the DMA): "
             f"{int(exact.sum())}/{len(x)} samples equal the {what}, accuracy {acc_}, host overhead "
             f"{bench.get('host_us_per_call')} us per batch-1 call; bundle {bundle}")
    st.report.set(runtime_self_test=self_test.status, runtime_exact_csim=float(exact.mean()), runtime_accuracy=acc_,
                  runtime_host_us=bench.get("host_us_per_call"), bundle=str(bundle))


STEPS = {"train": step_train, "compress": step_compress, "convert": step_convert, "csim": step_csim, "rtl": step_rtl,
         "simulate": step_simulate, "estimate": step_estimate, "overlay": step_overlay, "deploy": step_deploy}


def run_flow(config: FlowConfig, build_dir) -> FlowReport:
    return execute_flow(config, build_dir).report


def execute_flow(config: FlowConfig, build_dir) -> FlowState:
    """:func:`run_flow`, returning every step's artifacts (for tools built on the flow's results,
    e.g. :mod:`fpga_dnn.verify`)."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    c = config
    st = FlowState(config=c, build_dir=build_dir, report=FlowReport(name=c.name))
    st.report.set(model=c.model.zoo if not c.model.file else Path(c.model.file).name,
                  framework=c.model.framework if not c.model.file else None, target=c.target_board())
    t_start = time.perf_counter()
    for name in c.steps:
        progress(f"flow '{c.name}': step {name}")
        t0 = time.perf_counter()
        try:
            STEPS[name](st)
        except Exception as err:
            # report.json still holds what the earlier steps measured, and says where it stopped.
            st.report.step_time(name, time.perf_counter() - t0)
            st.report.set(failed_step=name, error=f"{type(err).__name__}: {str(err).strip()}"[:500],
                          total_s=round(time.perf_counter() - t_start, 2))
            st.report.write(build_dir)
            raise
        st.report.step_time(name, time.perf_counter() - t0)
    st.report.set(total_s=round(time.perf_counter() - t_start, 2))
    st.report.write(build_dir)
    return st
