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
    g.add_argument("--board", default="pynq-z2", help="target board, from overlays/boards/ (default pynq-z2)")
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

    p = sub.add_parser("convert", help="convert a QAT model to an hls4ml HLS project",
                       description="Convert a zoo model (trained first if needed) or a saved QKeras/HGQ2 "
                                   "model file to an hls4ml project, per-layer precision from its quantizers.")
    _add_model_args(p)
    _add_convert_args(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("csim", help="run hls4ml's bit-accurate C-sim and compare with Keras",
                       description="Convert, compile hls4ml's bit-accurate emulation, run the test set and "
                                   "report accuracy and the fraction of samples bit-exact with Keras; on a "
                                   "mismatch, name the first differing sample and layer.")
    _add_model_args(p)
    _add_convert_args(p)
    p.set_defaults(func=cmd_csim)

    p = sub.add_parser("flow", help="run a flow file (TOML): train -> convert -> csim",
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
