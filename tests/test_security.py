"""Security of deployed models, toolchain side: model files that cannot run code, signing verbs,
encrypted-bitstream scripts under the Tcl stand-in. (The runtime's refusals of tampered bundles
run in the board environment: tests/board/test_signing.py.)"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fpga_dnn.cli import main as cli_main
from fpga_dnn.errors import ConfigError, ModelFileError, UnsupportedLayerError
from fpga_dnn.modelio import check_model_config, load_model
from fpga_dnn.runtime.bundle import check_bundle
from fpga_dnn.runtime.fake.hwh import write_sim_bundle
from fpga_dnn.runtime.spec import Spec

REPO = Path(__file__).resolve().parents[1]


def payload(marker: Path):
    """A function that writes ``marker`` when called with FD_ARMED set (so building the model in this
    test writes nothing): what a hostile model file would run while it is loaded."""
    return eval(f"lambda t: (__import__('os').environ.get('FD_ARMED') and open({str(marker)!r}, 'w').write('ran'), "
                "t)[1]")  # noqa: S307 - the test's own payload


def tiny_qkeras(with_lambda: Path = None):
    from fpga_dnn import kerasenv
    tk = kerasenv.tf_keras()
    import qkeras
    inp = tk.Input((8,), name="x")
    h = inp if with_lambda is None else tk.layers.Lambda(payload(with_lambda), name="evil")(inp)
    h = qkeras.QDense(4, kernel_quantizer=qkeras.quantized_bits(6, 0, alpha=1),
                      bias_quantizer=qkeras.quantized_bits(6, 0, alpha=1), name="dense")(h)
    out = qkeras.QActivation("quantized_relu(6)", name="relu")(h)
    return tk.Model(inp, out)


def tiny_keras3(with_lambda: Path):
    from fpga_dnn import kerasenv
    k3 = kerasenv.keras3()
    inp = k3.Input((8,))
    h = k3.layers.Lambda(payload(with_lambda), name="evil")(inp)
    return k3.Model(inp, k3.layers.Dense(4, name="dense")(h))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "data.npz"
    x = rng.integers(0, 16, size=(40, 8)).astype(np.float64) / 16
    np.savez(path, x_test=x, y_test=rng.integers(0, 4, size=40))
    return path


def csim(model_path, data, build, capsys):
    rc = cli_main(["csim", str(model_path), "--data", str(data), "--build-dir", str(build)])
    return rc, capsys.readouterr().err.strip()


# ---------------------------------------------------------------------------------- model files

@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_a_lambda_model_is_refused_by_csim_and_its_code_never_runs(tmp_path, data, capsys, monkeypatch, fmt):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / f"evil.{fmt}"
    (tiny_qkeras(marker) if fmt == "h5" else tiny_keras3(marker)).save(path)
    monkeypatch.setenv("FD_ARMED", "1")
    assert not marker.exists()
    rc, err = csim(path, data, tmp_path / "build", capsys)
    assert rc == 2 and "\n" not in err, err
    assert "layer 'evil' (Lambda) is not supported" in err and "checked before Keras reads it" in err
    assert not marker.exists(), "the model file's code ran"
    # control: the same file does run its code when Keras loads it without the check
    from fpga_dnn import kerasenv
    if fmt == "h5":
        kerasenv.tf_keras().models.load_model(path, custom_objects=kerasenv.qkeras_custom_objects(), compile=False)
    else:
        kerasenv.keras3().models.load_model(path, compile=False, safe_mode=False)
    assert marker.read_text() == "ran"


def test_an_allowed_model_still_converts_bit_exactly(tmp_path, data, capsys):
    path = tmp_path / "ok.h5"
    tiny_qkeras().save(path)
    rc, err = csim(path, data, tmp_path / "build", capsys)
    assert rc == 0, err
    report = json.loads((tmp_path / "build" / "report.json").read_text())
    assert report["bit_exact"] == 1.0 and report["bit_exact_samples"] == "40/40"


def _model(*layers, cls="Functional"):
    return {"class_name": cls, "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"name": "in"}}, *layers]}}


@pytest.mark.parametrize("config, error, match", [
    (_model({"module": "keras.layers", "class_name": "TFSMLayer", "config": {"name": "sm", "filepath": "/x"}}),
     UnsupportedLayerError, "layer 'sm' (TFSMLayer)"),
    (_model({"class_name": "MyCustomLayer", "config": {"name": "mine"}}), UnsupportedLayerError,
     "layer 'mine' (MyCustomLayer)"),
    (_model({"module": "os", "class_name": "Dense", "config": {"name": "d"}}), ModelFileError,
     "comes from module 'os'"),
    (_model({"class_name": "Dense", "config": {"name": "d", "kernel_initializer": {
        "module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization"}}}),
     ModelFileError, "serialised function 'enable_unsafe_deserialization'"),
    (_model({"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
        "class_name": "Lambda", "config": {"name": "inner", "function": ["..."]}}}}),
     UnsupportedLayerError, "layer 'inner' (Lambda)"),
    (_model(_model({"class_name": "Lambda", "config": {"name": "deep"}}) | {"name": "sub"}),
     UnsupportedLayerError, "layer 'deep' (Lambda)"),
    (_model({"class_name": "QDense", "config": {"name": "q", "kernel_quantizer":
        "__import__('os').system('id')"}}), ModelFileError, "is not a quantizer or activation name"),
    ({"class_name": "Lambda", "config": {}}, ModelFileError, "not a Keras model"),
])
def test_configs_that_could_run_code_are_refused(config, error, match):
    with pytest.raises(error, match=match.replace("(", r"\(").replace(")", r"\)")) as err:
        check_model_config(config, "qkeras", Path("m.h5"))
    assert "\n" not in str(err.value)


def test_allowed_keras3_file_loads_with_safe_mode(tmp_path):
    from fpga_dnn import kerasenv
    k3 = kerasenv.keras3()
    kerasenv.hgq()
    import hgq.layers
    inp = k3.Input((4,))
    k3.Model(inp, hgq.layers.QDense(3, name="qd")(inp)).save(tmp_path / "ok.keras")
    model, framework = load_model(tmp_path / "ok.keras")
    assert framework == "hgq2" and [l.name for l in model.layers][-1] == "qd"


# ---------------------------------------------------------------------------------- signing verbs

def fpga_dnn(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fpga_dnn", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, **kw)


def test_keygen_sign_and_bundle_check(tmp_path):
    spec = Spec.create("digits_mlp", (64,), "ufixed<5,5>", (10,), "fixed<16,6>", 3, stream_bits=64)
    bundle = write_sim_bundle(spec, tmp_path / "bundle")
    r = fpga_dnn("keygen", tmp_path / "keys" / "release.key")
    assert r.returncode == 0, r.stderr
    key, pub = tmp_path / "keys" / "release.key", tmp_path / "keys" / "release.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and b"PUBLIC KEY" in pub.read_bytes()
    again = fpga_dnn("keygen", key)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "a key is never overwritten" in again.stderr

    unsigned = fpga_dnn("bundle", bundle)
    assert unsigned.returncode == 0 and "warning: not signed" in unsigned.stdout
    assert fpga_dnn("bundle", bundle, "--trusted-key", pub).returncode == 1   # a key given: a signature is required

    r = fpga_dnn("sign", bundle, "--key", key)
    assert r.returncode == 0 and "bundle_version 1" in r.stdout and "verified with" in r.stdout, r.stderr
    assert Spec.load(bundle).bundle_version == 1 and (bundle / "bundle.sig").is_file()
    ok = fpga_dnn("bundle", bundle, "--trusted-key", pub)
    assert ok.returncode == 0 and "signature: valid" in ok.stdout and "bundle_version: 1" in ok.stdout

    assert fpga_dnn("sign", bundle, "--key", key).returncode == 0
    assert Spec.load(bundle).bundle_version == 2                 # each signing raises the version

    fpga_dnn("keygen", tmp_path / "keys" / "other.key")
    other = fpga_dnn("bundle", bundle, "--trusted-key", tmp_path / "keys" / "other.pub")
    assert other.returncode == 1 and "not signed by a trusted key" in other.stdout
    hwh = bundle / "digits_mlp.hwh"
    hwh.write_bytes(hwh.read_bytes().replace(b"axi_dma", b"axi_dmb", 1))
    bad = fpga_dnn("bundle", bundle, "--trusted-key", pub)
    assert bad.returncode == 1 and "changed: digits_mlp.hwh" in bad.stdout
    refuse = fpga_dnn("sign", bundle, "--key", key)      # a corrupt bundle is not signed
    assert refuse.returncode == 2 and "does not match its checksum" in refuse.stderr
    assert fpga_dnn("sign", bundle, "--key", pub).returncode == 2


def test_the_runtime_stays_import_light():
    code = ("import sys, fpga_dnn.runtime.accelerator, fpga_dnn.runtime.bundle, fpga_dnn.runtime.signing\n"
            "print([m for m in ('tensorflow', 'keras', 'hls4ml', 'da4ml', 'pynq', 'model_signing') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------- encrypted bitstreams

import test_overlay as ov   # noqa: E402 - the Tcl stand-in of Vivado and its helpers (a module, so its tests are not collected twice)

FAKE_BOOTGEN = """#!/usr/bin/env bash
# fake bootgen: records its arguments, writes the -o file
echo "$@" >> "$FD_BOOTGEN_LOG"
out=""; while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done
printf 'ENCRYPTED-IMAGE' > "$out"
"""


@pytest.fixture
def keyfiles(tmp_path):
    d = tmp_path / "secrets"
    d.mkdir()
    keys = {"nky": d / "aes.nky", "psk": d / "psk.pem", "ssk": d / "ssk.pem"}
    keys["nky"].write_text("Device xc7z020;\nKey 0 " + "a1" * 32 + ";\nKey StartCBC " + "b2" * 16 +
                           ";\nKey HMAC " + "c3" * 32 + ";\n")
    keys["psk"].write_text("-----BEGIN RSA PRIVATE KEY-----\nPSKSECRET\n-----END RSA PRIVATE KEY-----\n")
    keys["ssk"].write_text("-----BEGIN RSA PRIVATE KEY-----\nSSKSECRET\n-----END RSA PRIVATE KEY-----\n")
    return keys


def _encryption(board, keys, source="bbram"):
    from fpga_dnn.overlay.encryption import BitstreamEncryption
    if board == "pynq-z2":
        return BitstreamEncryption(keys["nky"], source)
    return BitstreamEncryption(keys["nky"], source, keys["psk"], keys["ssk"])


def _generated_text(out: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix in
                     (".tcl", ".sh", ".py", ".json"))


@pytest.mark.parametrize("board", ov.BOARDS)
def test_plain_overlay_scripts_mention_no_encryption(tmp_path, board):
    scripts = ov.generate_overlay(ov.dummy_design(tmp_path), board, tmp_path / "o")
    tcl = "\n".join(p.read_text() for p in scripts.out_dir.rglob("*") if p.suffix in (".tcl", ".sh"))
    assert "encrypt_" not in (scripts.out_dir / "config.tcl").read_text()
    assert "BITSTREAM.ENCRYPTION" not in tcl and "bootgen" not in tcl
    assert not list(scripts.out_dir.glob("encrypt_*.tcl"))
    assert "encryption" not in Spec.load(scripts.spec_path).extra["overlay"]


@pytest.mark.parametrize("board", ov.BOARDS)
def test_encrypted_bitstream_scripts_under_the_stand_in(tmp_path, board, keyfiles, stub_tcl, monkeypatch):
    design = ov.dummy_design(tmp_path)
    scripts = ov.generate_overlay(design, board, tmp_path / "o", encryption=_encryption(board, keyfiles))
    config = (scripts.out_dir / "config.tcl").read_text()
    assert str(keyfiles["nky"].resolve()) in config
    secrets = ["a1" * 32, "b2" * 16, "c3" * 32, "PSKSECRET", "SSKSECRET"]
    assert not any(s in _generated_text(scripts.out_dir) for s in secrets)   # paths only, never key material
    bootgen_log = tmp_path / "bootgen.log"
    if board == "ultra96":
        fake = tmp_path / "bootgen"
        fake.write_text(FAKE_BOOTGEN)
        fake.chmod(0o755)
        monkeypatch.setenv("FPGA_DNN_BOOTGEN", str(fake))
        monkeypatch.setenv("FD_BOOTGEN_LOG", str(bootgen_log))
    rc, out, runs = ov.run_stub(stub_tcl, scripts.files["build_overlay"], bytes_m_axis=4)
    assert rc == 0, out
    calls = runs["build_overlay.tcl"]
    props = ov.calls_of(calls, "set_property")
    bundle = scripts.bundle_dir
    if board == "pynq-z2":
        hook = str(scripts.out_dir.resolve() / "encrypt_pre_bitstream.tcl")
        assert ["STEPS.WRITE_BITSTREAM.TCL.PRE", hook, "impl_1"] in props
        rc, out, runs = ov.run_stub(stub_tcl, Path(hook))   # what the implementation run sources
        assert rc == 0, out
        hook_props = ov.calls_of(runs["encrypt_pre_bitstream.tcl"], "set_property")
        assert ["BITSTREAM.ENCRYPTION.ENCRYPT", "YES", ""] in hook_props
        assert ["BITSTREAM.ENCRYPTION.ENCRYPTKEYSELECT", "BBRAM", ""] in hook_props
        assert ["BITSTREAM.ENCRYPTION.KEYFILE", str(keyfiles["nky"].resolve()), ""] in hook_props
        assert (bundle / "dummy.bit").is_file()
    else:
        assert not any(p[0].startswith("STEPS.WRITE_BITSTREAM") for p in props)
        args = bootgen_log.read_text().split()
        assert args[:2] == ["-arch", "zynqmp"] and args[args.index("-o") + 1] == str(bundle.resolve() / "dummy.bin")
        bif = Path(args[args.index("-image") + 1]).read_text()
        assert "[keysrc_encryption] bbram_red_key" in bif
        assert f"[pskfile] {keyfiles['psk'].resolve()}" in bif and f"[sskfile] {keyfiles['ssk'].resolve()}" in bif
        assert (f"[destination_device = pl, encryption = aes, aeskeyfile = {keyfiles['nky'].resolve()}, "
                "authentication = rsa]") in bif
        assert (bundle / "dummy.bin").read_text() == "ENCRYPTED-IMAGE" and not (bundle / "dummy.bit").exists()
        assert bundle not in Path(args[args.index("-image") + 1]).parents
    # the bundle: checksums of what is there, the scheme recorded, no key and no key path anywhere
    proc = subprocess.run([sys.executable, str(scripts.files["finalize_bundle"]), str(bundle)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    spec = Spec.load(bundle)
    bitstream = "dummy.bit" if board == "pynq-z2" else "dummy.bin"
    assert set(spec.checksums) == {bitstream, "dummy.hwh"}
    assert spec.extra["overlay"]["encryption"] == {
        "scheme": "aes256-hmac" if board == "pynq-z2" else "aes256-gcm+rsa",
        "key_source": "BBRAM" if board == "pynq-z2" else "bbram_red_key"}
    for f in bundle.iterdir():
        data = f.read_bytes()
        assert f.suffix not in (".nky", ".pem", ".bif")
        assert not any(s.encode() in data for s in secrets + [str(keyfiles["nky"].parent)]), f.name


def test_encryption_keys_must_stay_outside_and_exist(tmp_path, keyfiles, stub_tcl):
    from fpga_dnn.overlay.encryption import BitstreamEncryption
    design = ov.dummy_design(tmp_path)
    inside = tmp_path / "o" / "bundle" / "aes.nky"
    inside.parent.mkdir(parents=True)
    inside.write_text("key")
    with pytest.raises(ConfigError, match="keys must stay outside the overlay and bundle folders"):
        ov.generate_overlay(design, "pynq-z2", tmp_path / "o", encryption=BitstreamEncryption(inside))
    with pytest.raises(ConfigError, match="give the RSA primary and secondary secret keys"):
        ov.generate_overlay(design, "ultra96", tmp_path / "u", encryption=BitstreamEncryption(keyfiles["nky"]))
    with pytest.raises(ConfigError, match="key source 'tpm' is not known; known: bbram, efuse"):
        ov.generate_overlay(design, "pynq-z2", tmp_path / "p", encryption=BitstreamEncryption(keyfiles["nky"], "tpm"))
    scripts = ov.generate_overlay(design, "pynq-z2", tmp_path / "q",
                                  encryption=BitstreamEncryption(keyfiles["nky"], "efuse"))
    keyfiles["nky"].unlink()        # not on this (Vivado) machine
    rc, out, runs = ov.run_stub(stub_tcl, scripts.files["build_overlay"], bytes_m_axis=4)
    assert rc == 1 and "ERROR: [fpga_dnn] AES key file" in out and "not found" in out
    assert not ov.calls_of(runs["build_overlay.tcl"], "launch_runs")


def test_an_encrypted_zynqmp_bundle_reads_as_a_bundle(tmp_path):
    spec = Spec.create("digits_mlp", (64,), "ufixed<5,5>", (10,), "fixed<16,6>", 3, stream_bits=64)
    bundle = write_sim_bundle(spec, tmp_path / "b", board="ultra96")
    (bundle / "digits_mlp.bit").rename(bundle / "digits_mlp.bin")       # what bootgen leaves
    Spec.load(bundle).replace(checksums={}).with_checksums(bundle, ["digits_mlp.bin", "digits_mlp.hwh"]).save(bundle)
    rep = check_bundle(bundle)
    assert rep.ok, rep.format()
    assert rep.facts["bitstream"] == "digits_mlp.bin" and "bootgen image" in rep.facts["bitstream_format"]


@pytest.fixture(scope="module")
def stub_tcl(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stub") / "vivado_stub.tcl"
    path.write_text(ov.STUB_TCL)
    return path
