"""The flow: a list of named steps, each handing a typed artifact to the next.

``train -> convert -> csim`` today; later steps (rtl, simulate, estimate, overlay, deploy) plug
into :data:`STEPS` the same way. A flow file (TOML) names the steps and their options; see
``fpga_dnn/configs/demo.toml`` for the documented default.
"""

from __future__ import annotations

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

STEP_ORDER = ("train", "convert", "csim")
SECTIONS = {"flow", "model", "quant", "train", "convert", "csim"}


@dataclass
class ModelSpec:
    """Which model: a zoo name (trained by the flow) or a user's saved model file plus data."""

    zoo: str | None = "digits_mlp"
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
    convert: ConvertOptions = field(default_factory=ConvertOptions)
    csim_require_exact: bool = True
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
        bad = set(flow) - {"name", "steps", "csim_require_exact"}
        if bad:
            raise ConfigError(f"{source}: unknown key(s) {sorted(bad)} in [flow]; known: name, steps, csim_require_exact")
        cfg = cls(
            name=str(flow.get("name", "flow")),
            steps=list(flow.get("steps", STEP_ORDER)),
            model=section("model", ModelSpec),
            quant=section("quant", models.Quant),
            train=section("train", TrainConfig),
            convert=options_from_dict(dict(raw.get("convert", {}))),
            csim_require_exact=bool(flow.get("csim_require_exact", True)),
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
        return self

    def resolve(self, p) -> Path:
        p = Path(p)
        return p if p.is_absolute() else self.base_dir / p


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
    convert: object = None     # convert.ConvertResult
    csim: object = None        # csim.CsimReport
    report: FlowReport = None


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
    meta = res.meta
    st.report.set(float_accuracy=meta.get("float", {}).get("accuracy"), qat_accuracy=meta["qat"]["accuracy"],
                  weights=meta["weights"], train_s=meta["qat"]["seconds"] + meta.get("float", {}).get("seconds", 0))


def _load_user_model(st: FlowState) -> None:
    from .data import load_data_file
    from .modelio import load_model
    from .train import accuracy

    c = st.config
    st.model, st.framework = load_model(c.resolve(c.model.file))
    st.x, st.y = load_data_file(c.resolve(c.model.data))
    if st.y is not None:
        from .convert import check_input

        st.report.set(qat_accuracy=accuracy(st.model, check_input(st.model, st.x), st.y))


def step_convert(st: FlowState) -> None:
    from .convert import convert

    if st.model is None:
        _load_user_model(st)
    st.convert = convert(st.model, st.x, st.config.convert, output_dir=st.build_dir / "hls",
                         framework=st.framework)
    st.report.set(convert_s=round(st.convert.seconds, 2), input_format=str(st.convert.input_format),
                  backend=st.config.convert.backend, io_type=st.config.convert.io_type)


def step_csim(st: FlowState) -> None:
    from .convert import check_input
    from .csim import describe_mismatch, run_csim
    from .errors import MismatchError

    x = check_input(st.model, st.x)
    rep = run_csim(st.convert.hls_model, st.model, x, st.y, traced_twin=st.convert.traced_twin)
    st.csim = rep
    st.report.set(csim_accuracy=rep.accuracy, bit_exact=rep.exact_fraction,
                  bit_exact_samples=f"{round(rep.exact_fraction * rep.n_samples)}/{rep.n_samples}",
                  compile_s=rep.compile_seconds, csim_samples_per_s=rep.samples_per_second)
    if rep.first_mismatch:
        st.report.set(first_mismatch=describe_mismatch(rep.first_mismatch))
        if st.config.csim_require_exact:
            st.report.write(st.build_dir)
            raise MismatchError(f"C-sim is not bit-exact with Keras ({rep.exact_fraction:.4f}); first mismatch: "
                                f"{describe_mismatch(rep.first_mismatch)}")


STEPS = {"train": step_train, "convert": step_convert, "csim": step_csim}


def run_flow(config: FlowConfig, build_dir) -> FlowReport:
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    c = config
    st = FlowState(config=c, build_dir=build_dir, report=FlowReport(name=c.name))
    st.report.set(model=c.model.zoo if not c.model.file else Path(c.model.file).name,
                  framework=c.model.framework, bits=f"w{c.quant.weight_bits}/a{c.quant.activation_bits}")
    t_start = time.perf_counter()
    for name in c.steps:
        progress(f"flow '{c.name}': step {name}")
        t0 = time.perf_counter()
        STEPS[name](st)
        st.report.step_time(name, time.perf_counter() - t0)
    st.report.set(total_s=round(time.perf_counter() - t_start, 2))
    st.report.write(build_dir)
    return st.report
