"""Signed bundles on the board runtime (real pynq, fake board): every tampering is refused with one
line before anything reaches ``pynq.Overlay``; the untouched signed bundle runs bit-exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fpga_dnn.errors import FpgaDnnError
from fpga_dnn.runtime.accelerator import Accelerator
from fpga_dnn.runtime.fake.hwh import write_sim_bundle
from fpga_dnn.runtime.fake.models import reference_fn
from fpga_dnn.runtime.signing import SIGNATURE_FILENAME, generate_key, sign_bundle, verify_bundle
from fpga_dnn.runtime.spec import Spec, file_checksum

REPO = Path(__file__).resolve().parents[2]
FILES = ("spec.json", "digits_mlp.bit", "digits_mlp.hwh", SIGNATURE_FILENAME)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return {"dev": generate_key(d / "dev.key"), "other": generate_key(d / "other.key")}


@pytest.fixture
def signed(tmp_path, keys, digits_spec):
    bundle = write_sim_bundle(digits_spec, tmp_path / "bundle")
    sign_bundle(bundle, keys["dev"][0])
    return bundle


@pytest.fixture
def overlay_calls(monkeypatch):
    """Every bitstream handed to pynq.Overlay (the real class still does the work)."""
    import pynq
    calls = []
    real = pynq.Overlay

    def spy(bitfile, *args, **kwargs):
        calls.append(str(bitfile))
        return real(bitfile, *args, **kwargs)

    monkeypatch.setattr(pynq, "Overlay", spy)
    return calls


def refused(bundle, overlay_calls, match, **kw) -> str:
    with pytest.raises(FpgaDnnError) as err:
        Accelerator.open(bundle, backend="sim", **kw)
    msg = str(err.value)
    assert "\n" not in msg and match in msg, msg
    assert overlay_calls == [], "a refused bundle reached pynq.Overlay"
    return msg


def test_untouched_signed_bundle_opens_and_predicts_bit_exactly(signed, keys, digits_spec, overlay_calls):
    rng = np.random.default_rng(1)
    q = rng.integers(0, 32, size=(300, 64))
    with Accelerator.open(signed, backend="sim", trusted_keys=[keys["dev"][1]], min_version=1) as acc:
        out = acc.predict_fixed(q)
        private = acc.bundle.directory
        assert private != signed and acc.bundle.source == signed
        assert oct(private.stat().st_mode & 0o777) == "0o700"
        assert overlay_calls == [str(private / "digits_mlp.bit")]   # the verified copy, nothing else
        assert acc.spec.bundle_version == 1
    assert np.array_equal(out, reference_fn(digits_spec)(q))   # 300/300 samples exact
    assert not private.exists()                                   # the copy is removed on close


@pytest.mark.parametrize("name", FILES)
def test_a_flipped_byte_in_any_file_is_refused(signed, keys, overlay_calls, name):
    path = signed / name
    data = bytearray(path.read_bytes())
    i = len(data) // 2
    data[i] ^= 0x01
    path.write_bytes(bytes(data))
    refused(signed, overlay_calls, "bundle", trusted_keys=[keys["dev"][1]])


def test_bitstream_and_checksum_both_rewritten_is_refused(signed, keys, overlay_calls, digits_spec):
    from fpga_dnn.runtime.fake.hwh import OverlayDesign
    # a well-formed replacement bitstream (valid header) with a matching checksum in spec.json
    other = signed.parent / "other"
    OverlayDesign.for_spec(digits_spec, board="pynq-z2").write(other, "evil")
    (signed / "digits_mlp.bit").write_bytes((other / "evil.bit").read_bytes() + b"\0" * 4)
    spec = Spec.load(signed)
    spec = spec.replace(checksums={**spec.checksums, "digits_mlp.bit": file_checksum(signed / "digits_mlp.bit")})
    spec.save(signed)
    Spec.load(signed).verify_checksums(signed)      # the checksums alone would pass
    msg = refused(signed, overlay_calls, "does not match its signature", trusted_keys=[keys["dev"][1]])
    assert "digits_mlp.bit" in msg and "spec.json" in msg


def test_a_signature_from_another_key_is_refused(signed, keys, overlay_calls):
    sign_bundle(signed, keys["other"][0])          # re-signed by someone else's key
    refused(signed, overlay_calls, "not signed by a trusted key", trusted_keys=[keys["dev"][1]])
    with Accelerator.open(signed, backend="sim", trusted_keys=[keys["dev"][1], keys["other"][1]]) as acc:
        assert acc.spec.bundle_version == 2


def test_an_older_signed_bundle_is_refused_with_min_version(signed, keys, overlay_calls):
    refused(signed, overlay_calls, "older than the minimum 2", trusted_keys=[keys["dev"][1]], min_version=2)
    sign_bundle(signed, keys["dev"][0], bundle_version=7)
    with Accelerator.open(signed, backend="sim", trusted_keys=[keys["dev"][1]], min_version=7) as acc:
        assert acc.spec.bundle_version == 7
    with pytest.raises(FpgaDnnError, match="must be an integer larger than the bundle's current version 7"):
        sign_bundle(signed, keys["dev"][0], bundle_version=3)   # the signer cannot go back either


def test_a_missing_signature_is_refused_without_allow_unsigned(signed, keys, overlay_calls):
    (signed / SIGNATURE_FILENAME).unlink()
    refused(signed, overlay_calls, "is not signed", trusted_keys=[keys["dev"][1]])
    refused(signed, overlay_calls, "allow_unsigned=True")
    with Accelerator.open(signed, backend="sim", allow_unsigned=True) as acc:   # the explicit opt-out
        assert acc.spec.name == "digits_mlp"


def test_a_signed_bundle_without_a_trusted_key_is_refused(signed, overlay_calls):
    refused(signed, overlay_calls, "no trusted public key was given")


def _sign_raw(bundle: Path, key: Path) -> None:
    """Sign the folder as it is, without fpga_dnn's checks (what a careless or hostile signer does)."""
    import model_signing
    from fpga_dnn.runtime.signing import _hashing_config
    (model_signing.signing.Config().use_elliptic_key_signer(private_key=key)
     .set_hashing_config(_hashing_config(model_signing)).sign(bundle, bundle / SIGNATURE_FILENAME))


def test_a_spec_naming_a_file_outside_the_bundle_is_refused(signed, keys, overlay_calls, tmp_path):
    (tmp_path / "x.bit").write_bytes((signed / "digits_mlp.bit").read_bytes())
    d = json.loads((signed / "spec.json").read_text())
    d["checksums"]["../x.bit"] = d["checksums"].pop("digits_mlp.bit")
    (signed / "spec.json").write_text(json.dumps(d))
    (signed / "digits_mlp.bit").unlink()
    _sign_raw(signed, keys["dev"][0])
    verify_bundle(signed, [keys["dev"][1]])          # validly signed, yet:
    refused(signed, overlay_calls, "'../x.bit' is not a plain file name", trusted_keys=[keys["dev"][1]])
    (signed / SIGNATURE_FILENAME).unlink()
    refused(signed, overlay_calls, "'../x.bit' is not a plain file name", allow_unsigned=True)


@pytest.mark.parametrize("case", ["symlink", "subfolder", "absolute", "unknown_key", "oversized", "nan"])
def test_the_strict_reader_refuses(signed, keys, overlay_calls, tmp_path, case):
    d = json.loads((signed / "spec.json").read_text())
    if case == "symlink":
        os.symlink(tmp_path / "elsewhere.hwh", signed / "extra.hwh")
        match = "is a symbolic link"
    elif case == "subfolder":
        (signed / "sub").mkdir()
        match = "is a folder"
    else:
        if case == "absolute":
            d["extra"]["overlay"] = {"bitstream": "/lib/firmware/x.bit"}
            match = "'/lib/firmware/x.bit' is not a plain file name"
        elif case == "unknown_key":
            d["loader"] = "pickle"
            match = "unknown key(s) loader"
        elif case == "oversized":
            d["extra"]["note"] = "x" * 5000
            match = "a string of 5000 characters"
        else:
            d["clock_mhz"] = float("nan")
            match = "NaN is not JSON"
        (signed / "spec.json").write_text(json.dumps(d))
        _sign_raw(signed, keys["dev"][0])
    refused(signed, overlay_calls, match, trusted_keys=[keys["dev"][1]])


def test_the_board_command_verifies(signed, keys, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 64)))
    base = [sys.executable, "-m", "fpga_dnn.runtime", "run", str(signed), "--input", str(tmp_path / "x.npy"),
            "--sim", "--bench-samples", "0"]
    ok = subprocess.run(base + ["--trusted-key", str(keys["dev"][1]), "--min-version", "1"],
                        capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(base + ["--trusted-key", str(keys["other"][1])], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not signed by a trusted key" in bad.stderr
    check = subprocess.run([sys.executable, "-m", "fpga_dnn.runtime", "check", str(signed), "--trusted-key",
                            str(keys["dev"][1])], capture_output=True, text=True, cwd=REPO)
    assert check.returncode == 0 and "signature: valid" in check.stdout, check.stdout
