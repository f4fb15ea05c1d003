"""The ``fpga-dnn`` command. Each verb runs one step of the flow (with the steps it needs before
it); ``flow`` runs a whole flow file. User errors print one line and exit with status 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import FpgaDnnError

DEFAULT_BUILD = Path("build")


def _add_model_args(p: argparse.ArgumentParser, with_file: bool = True):
    if with_file:
        p.add_argument("model", help="a zoo model name (digits_mlp, digits_cnn, jet_mlp) or a saved "
                                     "QKeras/HGQ2 model file (.h5/.keras)")
        p.add_argument("--data", help="test/calibration inputs for a model file: .npz (x_test[, y_test]) or .npy")
    else:
        p.add_argument("model", help="a zoo model name: digits_mlp, digits_cnn or jet_mlp")
    p.add_argument("--framework", default="qkeras", choices=["qkeras", "hgq2"],
                   help="QAT framework for a zoo model (default: qkeras)")
    p.add_argument("--weight-bits", type=int, default=8, help="zoo model weight width (default 8)")
    p.add_argument("--activation-bits", type=int, default=8, help="zoo model activation width (default 8)")
    p.add_argument("--epochs", type=int, default=None, help="maximum training epochs (early stopping decides)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--build-dir", type=Path, default=None,
                   help="output folder (default: build/<model>_<framework>)")


def _add_convert_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("hls4ml conversion")
    g.add_argument("--backend", default="Vivado", help="Vivado or Vitis (default Vivado)")
    g.add_argument("--io-type", default="io_parallel", choices=["io_parallel", "io_stream"])
    g.add_argument("--reuse-factor", type=int, default=1)
    g.add_argument("--strategy", default="Latency", help="Latency or Resource")
    g.add_argument("--clock-period", type=float, default=10.0, help="ns (default 10 = 100 MHz)")
    g.add_argument("--board", default=None, help="target board, from overlays/boards/ (default pynq-z2)")
    g.add_argument("--part", default=None, help="FPGA part (default: the board's)")
    g.add_argument("--input-precision", default=None,
                   help="input fixed-point type, e.g. 'ufixed<5,1>' (default: inferred from the data)")


def _config_from_args(args, steps: list[str]):
    from .flow import FlowConfig

    is_file = Path(args.model).suffix in (".h5", ".hdf5", ".keras") or Path(args.model).exists()
    raw: dict = {"flow": {"name": f"{Path(args.model).stem}", "steps": steps}}
    if is_file:
        raw["flow"]["steps"] = [s for s in steps if s != "train"]
        raw["model"] = {"file": str(Path(args.model).resolve()), "data": str(Path(args.data).resolve())
                        if getattr(args, "data", None) else None, "framework": args.framework}
    else:
        raw["model"] = {"zoo": args.model, "framework": args.framework}
        raw["quant"] = {"weight_bits": args.weight_bits, "activation_bits": args.activation_bits}
        raw["train"] = {"seed": args.seed, **({"epochs": args.epochs} if args.epochs else {})}
    if hasattr(args, "backend"):
        raw["convert"] = {"backend": args.backend, "io_type": args.io_type, "reuse_factor": args.reuse_factor,
                          "strategy": args.strategy, "clock_period": args.clock_period, "part": args.part, "board": args.board,
                          "input_precision": args.input_precision}
    if is_file and getattr(args, "framework", None):
        raw["model"].pop("framework")  # decided by the file
    cfg = FlowConfig.from_dict(raw, base_dir=Path.cwd(), source="command line")
    build = args.build_dir or DEFAULT_BUILD / (f"{Path(args.model).stem}" if is_file
                                               else f"{args.model}_{args.framework}")
    return cfg, build


def _run(cfg, build) -> int:
    from .flow import run_flow

    rep = run_flow(cfg, build)
    print(rep.table())
    print(f"\nreport: {build / 'report.json'}, {build / 'report.md'}")
    return 0


def cmd_train(args):
    return _run(*_config_from_args(args, ["train"]))


def cmd_convert(args):
    return _run(*_config_from_args(args, ["train", "convert"]))


def cmd_csim(args):
    return _run(*_config_from_args(args, ["train", "convert", "csim"]))


def cmd_compress(args):
    from .compress import compress_options

    cfg, build = _config_from_args(args, ["train", "compress", "convert", "csim"])
    raw = {"techniques": [t.strip() for t in args.techniques.split(",") if t.strip()]}
    for key in ("sparsity", "structured_fraction", "energy", "rank", "bottleneck_bits", "clusters", "temperature",
                "alpha", "teacher", "budget_luts", "search", "cost_model", "train_data", "epochs_finetune",
                "workers", "ray_address"):
        value = getattr(args, key, None)
        if value is not None:
            raw["epochs" if key == "epochs_finetune" else key] = value
    if raw.get("train_data"):
        raw["train_data"] = str(Path(raw["train_data"]).resolve())
    if raw.get("teacher"):
        raw["teacher"] = str(Path(raw["teacher"]).resolve())
    cfg.compress = compress_options(raw)
    return _run(cfg.check(), build)


def cmd_pareto(args):
    from .compress.pareto import run_sweep
    from .train import TrainConfig

    out = args.out or DEFAULT_BUILD / "pareto" / args.model
    train = TrainConfig(float_baseline=False, seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    store = None
    if args.store:
        from .sweep import ResultStore
        store = ResultStore(args.store)
    rep = run_sweep(args.model, out, train=train, yosys=args.yosys, quick=args.quick, workers=args.workers,
                    ray_address=args.ray_address, store=store)
    print(open(out / "pareto.md").read())
    h = rep.headline or {}
    return 0 if h.get("found", True) else 1


def cmd_explore(args):
    from .compress.explore import run_search
    from .train import TrainConfig

    out = args.out or DEFAULT_BUILD / "explore" / args.model
    train = TrainConfig(float_baseline=False, seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    run_search(args.model, out, trials=args.trials, batch=args.batch, workers=args.workers,
               ray_address=args.ray_address, board=args.target_board, train=train, seed=args.seed)
    print(open(out / "explore.md").read())
    return 0


def _hw_config(args, steps):
    cfg, build = _config_from_args(args, steps)
    if getattr(args, "stream_bits", None):
        cfg.rtl.stream_bits = args.stream_bits
    if getattr(args, "latency_cutoff", None):
        cfg.rtl.latency_cutoff = args.latency_cutoff
    if getattr(args, "architecture", None):
        cfg.rtl.architecture = args.architecture
    if getattr(args, "folding", None):
        cfg.rtl.folding = str(Path(args.folding).resolve())
    if getattr(args, "target_inf_per_s", None):
        cfg.rtl.target_inf_per_s = args.target_inf_per_s
    if getattr(args, "no_cocotb", False):
        cfg.simulate.cocotb = False
    if getattr(args, "target_board", None):
        cfg.board = args.target_board  # the one target: part, RTL clock, estimate, overlay
        cfg.estimate.boards = [args.target_board]
    if getattr(args, "path", None):
        cfg.overlay.path = args.path
    if getattr(args, "vivado", None):
        cfg.overlay.vivado = args.vivado
    return cfg.check(), build


def cmd_rtl(args):
    return _run(*_hw_config(args, ["train", "convert", "csim", "rtl"]))


def cmd_sim(args):
    return _run(*_hw_config(args, ["train", "convert", "csim", "rtl", "simulate"]))


def cmd_estimate(args):
    # No C-sim: the estimate needs only the graph and the RTL.
    cfg, build = _hw_config(args, ["train", "convert", "rtl", "estimate"])
    if getattr(args, "exact", False):
        cfg.estimate.method = "flat"  # one full synth_xilinx -flatten run per family
    return _run(cfg, build)


def cmd_overlay(args):
    steps = ["train", "convert", "csim"] + (["rtl"] if args.path == "rtl" else []) + ["overlay"]
    return _run(*_hw_config(args, steps))


def cmd_faults(args):
    from .convert import check_input
    from .errors import ConfigError
    from .flow import execute_flow
    from .rtl.registers import TmrPlan
    from .verify.fault_report import fault_study

    if args.tmr != "auto":
        TmrPlan.parse(args.tmr)  # a bad spec fails before the flow runs
    if args.injections < 1:
        raise ConfigError(f"--injections must be >= 1, got {args.injections}")
    cfg, build = _hw_config(args, ["train", "convert", "csim", "rtl"])
    if cfg.rtl.architecture != "unrolled":
        raise ConfigError(f"fpga-dnn faults injects into the unrolled core; --architecture {cfg.rtl.architecture} "
                          "is not covered yet")
    cfg.rtl.tmr = "none"  # the campaign compares the plain core with its TMR variant
    st = execute_flow(cfg, build)
    out = args.out or build / "faults"
    rep = fault_study(st.rtl.design, check_input(st.model, st.x), out, reference=st.csim.outputs,
                      n_injections=args.injections, seed=args.fault_seed, tmr=args.tmr, yosys=not args.no_yosys, model_name=str(args.model))
    print((out / "faults.md").read_text().split("\n## ")[0])
    print(f"report: {out / 'faults.json'}, {out / 'faults.md'}, {out / 'faults.png'} ({rep['seconds']:.0f} s)")
    return 0


def _sim_options(args) -> tuple[str, dict]:
    """``run``/``verify``: the backend, and with --sim --design the RTL emulation behind it."""
    options = {}
    if args.sim:
        from .simulate.emulator import emulator_model_fn

        # The RTL design is on the build machine, not in the bundle (a bundle names no path outside it).
        if args.design is not None:
            if not (args.design / "rtl_design.json").is_file():
                from .errors import ConfigError

                raise ConfigError(f"--design {args.design}: not an RTL design folder (the rtl step's rtl/core, "
                                  "with rtl_design.json)")
            options["model"] = emulator_model_fn(args.design)
    return ("emulate" if args.sim else "pynq"), options


def cmd_run(args):
    from .runtime.run import run

    backend, options = _sim_options(args)
    run(args.bundle, args.input, backend=backend, labels_path=args.labels, batch=args.batch,
        trusted_keys=args.trusted_key, allow_unsigned=args.allow_unsigned, min_version=args.min_version,
        self_test=not args.no_self_test, **options)
    return 0


def cmd_verify(args):
    from .runtime.golden import verify

    backend, options = _sim_options(args)
    rep = verify(args.bundle, backend=backend, trusted_keys=args.trusted_key, allow_unsigned=args.allow_unsigned,
                 min_version=args.min_version, **options)
    return 0 if rep.status == "passed" else 1


def cmd_model_faults(args):
    from .verify.model_faults import run_model_faults

    cfg, build = _config_from_args(args, ["train", "convert", "csim"])
    paths = run_model_faults(cfg, build, args.out, trials=args.trials, seed=args.seed)
    print(f"model-level fault report: {paths['md']} ({paths['json'].name}, {paths['png'].name})")
    return 0


def cmd_robustness(args):
    from .verify.robustness import run_robustness

    cfg, build = _config_from_args(args, ["train", "convert", "csim"])
    paths = run_robustness(cfg, build, args.out, hsj_samples=args.hsj_samples, seed=args.seed)
    print(f"robustness report: {paths['md']} ({paths['json'].name}, {paths['png'].name})")
    return 0


def cmd_bundle(args):
    from .runtime.bundle import check_bundle

    rep = check_bundle(args.bundle, trusted_keys=args.trusted_key)
    print(rep.format())
    return 0 if rep.ok else 1


def cmd_keygen(args):
    from .runtime.signing import generate_key, key_fingerprint

    private, public = generate_key(args.key, args.public)
    print(f"private key: {private} (mode 0600: keep it on the signing machine, never in a bundle)")
    print(f"public key:  {public} ({key_fingerprint(public)}): copy it to the boards, pass it as trusted_keys")
    return 0


def cmd_sign(args):
    from .runtime.signing import sign_bundle, verify_bundle
    from .runtime.spec import Spec

    sig = sign_bundle(args.bundle, args.key, bundle_version=args.bundle_version)
    version = Spec.load(args.bundle).bundle_version
    line = f"signed {args.bundle} (bundle_version {version}): {sig}"
    public = args.key.with_suffix(".pub")
    if public.is_file():   # check what was written with the pair's public key
        verify_bundle(args.bundle, [public])
        line += f"; verified with {public}"
    print(line)
    return 0


def _add_sim_args(p: argparse.ArgumentParser):
    p.add_argument("--sim", action="store_true", help="no board: the bundle's RTL emulation behind the runtime")
    p.add_argument("--design", type=Path, default=None,
                   help="with --sim: the RTL design to emulate (the rtl step's <build>/rtl/core)")


def _add_trust_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("bundle signature")
    g.add_argument("--trusted-key", action="append", type=Path, default=[], metavar="PUB",
                   help="public key (PEM) whose signature is accepted; repeatable")
    g.add_argument("--allow-unsigned", action="store_true", help="run a bundle without a signature")
    g.add_argument("--min-version", type=int, default=None, help="refuse a bundle whose bundle_version is lower")


def cmd_flow(args):
    from .flow import FlowConfig

    cfg = FlowConfig.load(args.config)
    return _run(cfg, args.build_dir or DEFAULT_BUILD / cfg.name)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="fpga-dnn",
        description="Quantized DNNs to FPGAs, bit-exact at every step: QAT training, hls4ml conversion, "
                    "C-sim against Keras, and (see the README) RTL, simulation and PYNQ deployment.")
    ap.add_argument("--version", action="version", version=f"fpga_dnn {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="QAT-train a zoo model and its float baseline",
                       description="Train a zoo model with quantization-aware training (QKeras or HGQ2) and "
                                   "its float baseline; writes model, test data and metadata JSON.")
    _add_model_args(p, with_file=False)
    p.set_defaults(func=cmd_train)

    def hw(p, board_help="target board for the clock and the estimate/overlay"):
        g = p.add_argument_group("RTL")
        g.add_argument("--stream-bits", type=int, default=None, help="AXI-Stream width (32 or 64; default 64)")
        g.add_argument("--architecture", choices=["unrolled", "streaming", "auto"], default=None,
                       help="unrolled (a sample per clock), streaming (folded, a pixel per beat) or auto")
        g.add_argument("--folding", default=None, help="streaming: a folding file ([layer] pe = .., simd = ..)")
        g.add_argument("--target-inf-per-s", type=float, default=None,
                       help="streaming: the folding chooser's target throughput at the board clock")
        g.add_argument("--latency-cutoff", type=float, default=None,
                       help="ns of logic per pipeline stage (default 5): smaller = more stages")
        g.add_argument("--target-board", default=None, help=board_help + " (pynq-z2 | ultra96)")

    # Verbs that take a model (zoo name or file) and run the flow up to their own step.
    model_verbs = [
        ("convert", cmd_convert, None, "convert a QAT model to an hls4ml HLS project",
         "Convert a zoo model (trained first if needed) or a saved QKeras/HGQ2 model file to an hls4ml "
         "project, per-layer precision from its quantizers."),
        ("csim", cmd_csim, None, "run hls4ml's bit-accurate C-sim and compare with Keras",
         "Convert, compile hls4ml's bit-accurate emulation, run the test set and report accuracy and the "
         "fraction of samples bit-exact with Keras; on a mismatch, name the first differing sample and layer."),
        ("rtl", cmd_rtl, "target board for the clock", "generate Verilog (da4ml, no vendor tool) + the AXI-Stream shell",
         "Trace the hls4ml graph with da4ml, write the pipelined Verilog core, its AXI-Stream wrapper and "
         "spec.json (beat layout, latency, formats)."),
        ("sim", cmd_sim, "target board for the clock", "simulate the RTL: Verilator emulation + cocotb AXI-Stream testbench",
         "Bit-exact fraction of the RTL against C-sim and Keras (bulk Verilator emulation), then the cocotb + "
         "Verilator AXI-Stream testbench: every sample, backpressure, framing, reset, latency in cycles, "
         "simulation speed."),
        ("estimate", cmd_estimate, "only this board", "yosys resource estimate and fit check per board",
         "Synthesise the generated Verilog with yosys (synth_xilinx) and report LUT, FF, CARRY, DSP, BRAM, "
         "logic levels and latency, with a fit verdict per board."),
    ]
    for name, func, board_help, short, long in model_verbs:
        p = sub.add_parser(name, help=short, description=long)
        _add_model_args(p)
        _add_convert_args(p)
        if board_help:
            hw(p, board_help)
        if name == "sim":
            p.add_argument("--no-cocotb", action="store_true", help="bulk emulation only")
        if name == "estimate":
            p.add_argument("--exact", action="store_true",
                           help="one flat synth_xilinx run of the whole design per family (slower; the default "
                                "splits a da4ml pipeline into pieces synthesised in parallel)")
        p.set_defaults(func=func)

    p = sub.add_parser("faults", help="SEU fault injection into the generated RTL, and a TMR mitigation measured",
                       description="Flip one flip-flop for one clock while the test set streams through the "
                                   "Verilated unrolled core, thousands of times (uniform over flip-flop and cycle); "
                                   "classify masked / silent data corruption (class unchanged or changed) / hang; "
                                   "rates with 95% intervals per pipeline register and bit position, a sensitivity "
                                   "ranking, and the same campaign on a TMR variant with its yosys LUT/FF cost. "
                                   "Writes faults.json/.md/.png.")
    _add_model_args(p)
    _add_convert_args(p)
    hw(p)
    p.add_argument("--injections", type=int, default=10_000, help="upsets per campaign (default 10000)")
    p.add_argument("--tmr", default="auto",
                   help="the mitigation measured: auto (the fewest MSB positions holding 90%% of the silent "
                        "corruptions), none, all, msb:N or stages:a,b")
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the injection sample (default 0)")
    p.add_argument("--no-yosys", action="store_true", help="skip the yosys cost of both variants")
    p.add_argument("--out", type=Path, default=None, help="report folder (default <build>/faults)")
    p.set_defaults(func=cmd_faults)

    p = sub.add_parser("compress", help="compress a QAT model (prune, low-rank, cluster, distill, bit widths)",
                       description="Apply compression techniques in order, fine-tuning after each, then convert "
                                   "and check C-sim bit-exact with Keras. Techniques: prune, structured, lowrank, "
                                   "cluster, distill, bitwidth (see the [compress] table in fpga_dnn/configs/demo.toml).")
    _add_model_args(p)
    _add_convert_args(p)
    g = p.add_argument_group("compression")
    g.add_argument("--techniques", required=True, help="comma-separated, applied in order, e.g. prune,cluster")
    g.add_argument("--sparsity", type=float, help="prune: fraction of zero weights per kernel (default 0.5)")
    g.add_argument("--structured-fraction", type=float, help="structured: fraction of neurons removed (default 0.25)")
    g.add_argument("--energy", type=float, help="lowrank: singular-value energy kept (default 0.9)")
    g.add_argument("--rank", type=int, help="lowrank: fixed rank instead of an energy")
    g.add_argument("--bottleneck-bits", type=int, help="lowrank: width of the bus between the factors (default 8)")
    g.add_argument("--clusters", type=int, help="cluster: shared values per kernel (default 16)")
    g.add_argument("--temperature", type=float, help="distill: softmax temperature (default 4)")
    g.add_argument("--alpha", type=float, help="distill: weight of the hard-label loss (default 0.1)")
    g.add_argument("--teacher", help="distill: float teacher model file (default: the float baseline)")
    g.add_argument("--budget-luts", type=float, help="bitwidth: LUT budget")
    g.add_argument("--search", choices=["greedy", "hgq2"], help="bitwidth: method (default greedy)")
    g.add_argument("--cost-model", choices=["da4ml", "yosys"], help="hardware cost model (default da4ml)")
    g.add_argument("--train-data", help="a model file's training data: .npz with x_train, y_train")
    g.add_argument("--epochs-finetune", type=int, help="fine-tuning epochs after each technique (default 40)")
    g.add_argument("--workers", type=int, help="bitwidth: run each round's probes (greedy) or the trainings "
                                               "(hgq2) on a local Ray with N workers (default 1: in process)")
    g.add_argument("--ray-address", help="bitwidth: run them on an existing Ray cluster instead")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("pareto", help="sweep compression techniques: accuracy vs LUTs report (JSON, MD, PNG)",
                       description="Train and compress a zoo model many ways (bit widths, pruning, structured "
                                   "pruning, low-rank, clustering, distillation, bit-width search, HGQ2), check "
                                   "each bit-exact in C-sim, estimate its hardware, and write pareto.json/.md/.png "
                                   "with the Pareto front and the board budgets.")
    p.add_argument("model", help="zoo model: digits_mlp, digits_cnn or jet_mlp")
    p.add_argument("--out", type=Path, default=None, help="output folder (default build/pareto/<model>)")
    p.add_argument("--yosys", default="headline", choices=["none", "headline", "front"],
                   help="yosys synth_xilinx for: no point, the headline pair (default), or the whole front")
    p.add_argument("--quick", action="store_true", help="a few points only (a smoke run)")
    p.add_argument("--epochs", type=int, default=None, help="maximum training epochs per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1,
                   help="points computed at once: 1 = in this process (default); N > 1 = a local Ray with N "
                        "worker processes, started and stopped by the command")
    p.add_argument("--ray-address", default=None,
                   help="run the points on an existing Ray cluster (host:port, or 'auto'); every node needs the "
                        "project's environment and the store's folder at the same path")
    p.add_argument("--store", type=Path, default=None,
                   help="the results store (default <out>/store): finished points are never recomputed")
    p.set_defaults(func=cmd_pareto)

    p = sub.add_parser("explore", help="multi-objective design-space search (Optuna NSGA-II) beside the grid",
                       description="Search weight/activation bits, pruning and hidden width for accuracy vs LUT, "
                                   "DSP and latency under a board's budgets (NSGA-II), each point bit-exact in "
                                   "C-sim; write explore.json/.md/.png with the search's and the grid's fronts.")
    p.add_argument("model", help="zoo model: digits_mlp or jet_mlp")
    p.add_argument("--out", type=Path, default=None, help="output folder (default build/explore/<model>)")
    p.add_argument("--trials", type=int, default=16, help="trials (points) in all (default 16)")
    p.add_argument("--batch", type=int, default=None, help="trials asked at once (default max(workers, 4))")
    p.add_argument("--target-board", default="pynq-z2", help="board whose LUT/DSP budgets constrain the search")
    p.add_argument("--epochs", type=int, default=None, help="maximum training epochs per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="as for pareto: 1 = in process, N = a local Ray")
    p.add_argument("--ray-address", default=None, help="as for pareto: an existing Ray cluster")
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("overlay", help="write the Vivado scripts for a board overlay (runs Vivado if named)",
                       description="Write IP packaging, block design (PS + AXI DMA + accelerator), bitstream and "
                                   "bundle export scripts; without Vivado, print the command to run.")
    _add_model_args(p)
    _add_convert_args(p)
    hw(p, "the overlay's board")
    p.add_argument("--path", default="rtl", choices=["rtl", "hls"], help="rtl (our Verilog) or hls (hls4ml's IP)")
    p.add_argument("--vivado", default=None, help="Vivado binary or install folder (runs the build)")
    p.set_defaults(func=cmd_overlay)

    p = sub.add_parser("run", help="run a bundle: on the board, or --sim on the RTL emulation",
                       description="Predict the inputs of a .npy/.npz on a bundle and print predictions, accuracy "
                                   "and latency/throughput. On a PYNQ board: python -m fpga_dnn.runtime run.")
    p.add_argument("bundle", type=Path, help="bundle folder (spec.json [+ .bit + .hwh])")
    p.add_argument("--input", required=True, type=Path, help="inputs: .npy, or .npz with x_test[, y_test]")
    p.add_argument("--labels", type=Path, default=None, help="labels .npy (default: y_test of the .npz)")
    p.add_argument("--batch", type=int, default=None, help="samples per predict call (default: all)")
    _add_sim_args(p)
    p.add_argument("--no-self-test", action="store_true", help="skip the golden-vector self-test at open")
    _add_trust_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("verify", help="run a bundle's golden vectors (known-answer test): pass/fail table",
                       description="Open the bundle (signature and checksums checked), run every golden vector "
                                   "through the board (or --sim the RTL emulation) and compare the outputs bit for "
                                   "bit; exit 0 when all pass, 1 otherwise. On a PYNQ board: python -m "
                                   "fpga_dnn.runtime verify.")
    p.add_argument("bundle", type=Path, help="bundle folder (spec.json, golden.npz [+ .bit + .hwh])")
    _add_sim_args(p)
    _add_trust_args(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("model-faults", help="bit errors in the quantized weights/activations: accuracy vs BER",
                       description="On the bit-exact fixed-point model (checked equal to C-sim): bit-error rates "
                                   "1e-6..1e-2 and single flips per bit position in every layer's weights and "
                                   "activations; writes model_faults.json/.md/.png (accuracy vs BER per layer).")
    _add_model_args(p)
    p.add_argument("--out", type=Path, default=None, help="report folder (default <build>/faults)")
    p.add_argument("--trials", type=int, default=10, help="draws per BER point (default 10)")
    p.set_defaults(func=cmd_model_faults)

    p = sub.add_parser("robustness", help="noise, occlusion and adversarial robustness: float vs QAT vs hardware",
                       description="Accuracy under Gaussian input noise and random occlusion, FGSM and PGD crafted "
                                   "on the QAT model and transferred, HopSkipJump on the bit-exact hardware model as "
                                   "a black box; writes robustness.json/.md/.png.")
    _add_model_args(p)
    p.add_argument("--out", type=Path, default=None, help="report folder (default <build>/robustness)")
    p.add_argument("--hsj-samples", type=int, default=20, help="samples HopSkipJump attacks (default 20; 0: skip)")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("bundle", help="check a bundle folder (and its signature)",
                       description="Check a deployable bundle: strict layout, signature (with --trusted-key), "
                                   "spec, checksums of .bit/.hwh, DMA and widths.")
    p.add_argument("bundle", type=Path)
    p.add_argument("--trusted-key", action="append", type=Path, default=[], metavar="PUB",
                   help="public key (PEM) whose signature is accepted; repeatable. Without it the signature "
                        "is not checked")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("keygen", help="make an ECDSA P-256 key pair for signing bundles",
                       description="Write a new ECDSA P-256 private key (PEM, mode 0600) and its public key "
                                   "(KEY with suffix .pub). Keep the private key off the boards.")
    p.add_argument("key", type=Path, help="private key file to create, e.g. keys/release.key")
    p.add_argument("--public", type=Path, default=None, help="public key file (default: KEY with suffix .pub)")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("sign", help="sign a bundle folder (model-signing, ECDSA P-256, offline)",
                       description="Check the bundle, set its spec's bundle_version (previous + 1 unless given) "
                                   "and sign every file of the folder into BUNDLE/bundle.sig.")
    p.add_argument("bundle", type=Path)
    p.add_argument("--key", required=True, type=Path, help="private key from fpga-dnn keygen")
    p.add_argument("--bundle-version", type=int, default=None,
                   help="version to record (must exceed the bundle's current one; default: current + 1)")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("flow", help="run a flow file (TOML): train -> convert -> csim -> rtl -> ...",
                       description="Run the steps named in a flow file; writes report.json and report.md "
                                   "under the build folder. See fpga_dnn/configs/demo.toml.")
    p.add_argument("config", type=Path, help="flow file (TOML)")
    p.add_argument("--build-dir", type=Path, default=None, help="output folder (default: build/<flow name>)")
    p.set_defaults(func=cmd_flow)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FpgaDnnError as err:
        print(f"fpga-dnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fpga-dnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
