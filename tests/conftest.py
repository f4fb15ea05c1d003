"""Shared, session-scoped artifacts: each test model is trained and converted once per run."""

from __future__ import annotations

import os

os.environ.setdefault("FPGA_DNN_QUIET", "1")

import atexit  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import fpga_dnn  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)

# ---------------------------------------------------------------------------------------------
# Tools the tests need: found, provided from what the project already installs, or the run stops
# with one line naming the tool. Nothing is skipped for a missing tool.
# ---------------------------------------------------------------------------------------------

# Python's own Tcl 8.6 (tkinter) run as `tclsh SCRIPT ARGS...` / `tclsh < SCRIPT`. tkinter
# deletes Tcl's `exit` command, so the stand-in defines one that flushes Tcl's channels first.
_TCLSH_STANDIN = """\
import os, sys, tkinter
tcl = tkinter.Tcl()
def _exit(code=0):
    tcl.eval("flush stdout; flush stderr")
    os._exit(int(code))
tcl.createcommand("exit", _exit)
script, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else (None, [])
tcl.call("set", "argv0", script or "tclsh")
tcl.call("set", "argv", tuple(rest))
tcl.call("set", "argc", len(rest))
try:
    tcl.call("source", script) if script else tcl.eval(sys.stdin.read())
except tkinter.TclError:
    tcl.call("puts", "stderr", tcl.getvar("errorInfo"))
    _exit(1)
_exit(0)
"""


def _provide_tclsh() -> str | None:
    """The overlay tests run the generated Vivado scripts under tclsh. Use the system's if there
    is one; else put a `tclsh` backed by this Python's tkinter on PATH (before test modules read
    PATH); else None. ``FPGA_DNN_TEST_TCLSH``: auto (default), tkinter (always the stand-in),
    system (never the stand-in)."""
    choice = os.environ.get("FPGA_DNN_TEST_TCLSH", "auto")
    if choice != "tkinter" and shutil.which("tclsh"):
        return "system"
    if choice == "system":
        return None
    try:
        import tkinter

        tkinter.Tcl().eval("info patchlevel")
    except Exception:  # noqa: BLE001 - no _tkinter in this Python build, or no Tcl library
        return None
    bindir = Path(tempfile.mkdtemp(prefix="fpga_dnn_tclsh_"))
    atexit.register(shutil.rmtree, bindir, True)
    exe = bindir / "tclsh"
    exe.write_text(f"#!{sys.executable}\n{_TCLSH_STANDIN}")
    exe.chmod(0o755)
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    return "python-tkinter"


TCLSH_SOURCE = _provide_tclsh()  # "system", "python-tkinter" or None (then the check below stops the run)

#: tool -> (test files that need it, how to get it)
REQUIRED_TOOLS = {
    "tclsh": (("test_overlay.py", "test_overlay_gates.py"),
              "Tcl 8.6: `apt-get install tcl`, or a Python built with tkinter"),
    "g++": (("test_overlay.py", "test_rtl_trace.py", "test_csim_exact.py", "test_rtl_flow.py"),
            "`apt-get install g++` (hls4ml's C-sim and the ap_fixed checks compile with it)"),
}


#: The slowest test files, slowest first (measured: `--durations`). `make test` hands files to its
#: two workers in collection order (`--dist loadfile --no-loadscope-reorder`), so starting these
#: first leaves the quick files to fill the end, instead of one long file running alone at the end.
SLOW_FILES_FIRST = ("test_rtl_flow.py", "test_compress.py", "test_flow.py", "test_cli.py", "test_user_models.py",
                    "test_rtl_trace.py", "test_pareto.py", "test_hls4ml_corpus.py", "test_stream_flow.py",
                    "test_csim_exact.py", "test_axis_shell.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))   # stable: order kept within
    files = {Path(str(item.fspath)).name for item in items}
    for tool, (needed_by, how) in REQUIRED_TOOLS.items():
        users = sorted(files.intersection(needed_by))
        if users and shutil.which(tool) is None:
            pytest.exit(f"the tests need {tool} (for {', '.join(users)}), not found on PATH: {how}", returncode=2)


# ---------------------------------------------------------------------------------------------
# The tests' build cache: never make demo's build/cache (a warm demo would hide the cold cost)
# ---------------------------------------------------------------------------------------------

#: Set to a folder to keep Verilator/yosys builds between test runs; default: a fresh cache per run.
TEST_CACHE_ENV = "FPGA_DNN_TEST_CACHE"


def _shared_dir(tmp_path_factory) -> Path:
    """A folder of this test run that every pytest-xdist worker sees: the workers' own base
    folders' parent (``pytest-N/``; with one process, its base folder). A fresh one per run."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Hold an exclusive lock on ``lock_path`` (the other workers wait for it)."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session", autouse=True)
def test_build_cache(tmp_path_factory):
    from fpga_dnn.simulate.verilator import CACHE_ENV

    cache = Path(os.environ.get(TEST_CACHE_ENV) or _shared_dir(tmp_path_factory) / "build_cache").resolve()
    cache.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="session")
def build_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fpga_dnn")


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory):
    """The session's trained test models, shared by the pytest-xdist workers: the first worker
    that needs one trains it, the others wait for it and load it (training twice would cost
    minutes). Nothing else is written there."""
    return _shared_dir(tmp_path_factory) / "trained"


def _trained(trained_root, name, framework, epochs, float_baseline=False, **quant):
    from fpga_dnn import models, train
    from fpga_dnn.modelio import load_model

    cfg = train.TrainConfig(epochs=epochs, float_baseline=float_baseline)
    out = trained_root / f"{name}_{framework}"
    with _exclusive(trained_root / f"{name}_{framework}.lock"):
        meta_path = out / "model.meta.json"   # written last by train.train: there means done
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            res = train.TrainResult(out / meta["model_path"], out / meta["data_path"], meta_path, meta)
        else:
            res = train.train(name, framework, models.Quant(**quant), cfg, out)
    model, fw = load_model(res.model_path)
    return res, model


@pytest.fixture(scope="session")
def digits_mlp_qkeras(trained_root):
    """8-bit QKeras digits_mlp, fully trained (its accuracy is asserted)."""
    return _trained(trained_root, "digits_mlp", "qkeras", epochs=120, float_baseline=True)


@pytest.fixture(scope="session")
def digits_cnn_qkeras(trained_root):
    """With its float twin: the CNN's accuracy floor is that twin's, minus a tolerance."""
    return _trained(trained_root, "digits_cnn", "qkeras", epochs=25, float_baseline=True)


@pytest.fixture(scope="session")
def digits_mlp_hgq2(trained_root):
    return _trained(trained_root, "digits_mlp", "hgq2", epochs=25)


@pytest.fixture(scope="session")
def digits():
    from fpga_dnn import data

    return data.digits()


@pytest.fixture(scope="session")
def digits_images():
    from fpga_dnn import data

    return data.digits(images=True)


def _hardware(build_root, trained, dataset, tag):
    """Convert, C-sim, and generate RTL for a trained test model (once per session)."""
    from fpga_dnn import convert, csim
    from fpga_dnn.rtl.build import build_rtl

    _, model = trained
    x = convert.check_input(model, dataset.x_test)
    conv = convert.convert(model, x, output_dir=build_root / f"{tag}_hls")
    rep = csim.run_csim(conv.hls_model, model, x, dataset.y_test)
    rep.probe = csim.run_probes(conv.hls_model, model, conv.input_format)  # 2,000 on-grid inputs
    rtl = build_rtl(conv.hls_model, build_root / f"{tag}_rtl", name=tag)
    return {"model": model, "x": x, "y": dataset.y_test, "csim": rep, "rtl": rtl,
            "keras": model.predict(x, verbose=0), "hls": conv.hls_model}


@pytest.fixture(scope="session")
def hw_digits_mlp(build_root, digits_mlp_qkeras, digits):
    return _hardware(build_root, digits_mlp_qkeras, digits, "digits_mlp")


@pytest.fixture(scope="session")
def hw_digits_cnn(build_root, digits_cnn_qkeras, digits_images):
    return _hardware(build_root, digits_cnn_qkeras, digits_images, "digits_cnn")


@pytest.fixture(scope="session")
def hw_digits_mlp_hgq2(build_root, digits_mlp_hgq2, digits):
    return _hardware(build_root, digits_mlp_hgq2, digits, "digits_mlp_hgq2")


@pytest.fixture(scope="session")
def pareto_quick(build_root):
    """(folder, epochs) of the quick digits_mlp sweep: `fpga-dnn pareto --quick --epochs 25`
    (tests/test_cli.py) and tests/test_pareto.py's two-recipe sweep use the same recipes and
    training settings in one folder, so whichever runs second reuses the other's cached points."""
    return build_root / "pareto_quick", 25


@pytest.fixture(scope="session")
def tiny_model_files(build_root):
    """A tiny QKeras model with signed inputs (8 x fixed<6,2> -> 6 -> 3), saved as a user's model
    file with its data file (x_test/y_test and x_train/y_train): the cheap subject of the
    end-to-end CLI and flow-gate tests. Returns (model.h5, data.npz)."""
    import numpy as np

    from fpga_dnn.kerasenv import qkeras, tf_keras

    qk, k = qkeras(), tf_keras()
    k.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(-32, 32, size=(600, 8)) / 16.0  # on the fixed<6,2> grid, both signs
    y = (x @ rng.normal(size=(8, 3))).argmax(1)
    q = dict(kernel_quantizer=qk.quantized_bits(6, 0, alpha=1), bias_quantizer=qk.quantized_bits(6, 0, alpha=1))
    inp = k.Input((8,), name="x_in")
    h = qk.QActivation(qk.quantized_relu(6), name="relu1")(qk.QDense(6, name="dense1", **q)(inp))
    model = k.Model(inp, qk.QDense(3, name="logits", **q)(h))
    model.compile("adam", k.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:400], y[:400], epochs=30, verbose=0)
    folder = build_root / "tiny_user_model"
    folder.mkdir()
    model.save(folder / "tiny.h5")
    np.savez(folder / "tiny.npz", x_test=x[400:], y_test=y[400:], x_train=x[:400], y_train=y[:400])
    return folder / "tiny.h5", folder / "tiny.npz"
