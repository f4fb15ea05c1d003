"""Signed bundles: ECDSA P-256 key pairs, signing a bundle folder, verifying it before use.

The signature is made by ``model-signing`` (sigstore's model-transparency library) in its key
mode, offline: it hashes every file of the bundle folder (SHA-256 per file, no symbolic links)
into a manifest, signs the manifest as a DSSE envelope and writes a sigstore bundle to
``<bundle>/bundle.sig``. Verification recomputes the manifest from the files and compares, so a
changed, added or removed file — a rewritten ``.bit`` with its checksum in ``spec.json`` rewritten
too — fails, and so does a signature from a key the caller does not trust.

``spec.json`` is one of the signed files, so its ``bundle_version`` (set when signing, larger than
the bundle's previous version) is signed too: a board that remembers the version it runs can
refuse an older, validly signed bundle (``min_version``).

Keys are PEM files: the private key (PKCS#8, file mode 0600) stays on the machine that signs;
the public key (SubjectPublicKeyInfo) goes to the boards. model-signing's key mode accepts only
ECDSA P-256/384/521 keys; fpga_dnn makes P-256.

Imports ``cryptography`` and ``model_signing`` only when a function needs them (the runtime stays
importable with numpy alone); both are pinned in requirements/board.lock for the board.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from fpga_dnn.errors import ConfigError

PathLike = Union[str, Path]

#: The signature file inside a bundle folder (the only file the signature does not cover).
SIGNATURE_FILENAME = "bundle.sig"


class SignatureError(ConfigError):
    """A bundle's signature is missing, malformed, from an untrusted key, or does not match its files."""


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise SignatureError("signing needs the 'cryptography' package (pinned in requirements/board.lock and "
                             "toolchain.lock): pip install -r requirements/board.lock") from None
    return serialization, ec


def _model_signing():
    try:
        import model_signing.hashing
        import model_signing.signing
        import model_signing.verifying
    except ImportError as err:
        raise SignatureError(f"signature checks need the 'model-signing' package ({err}); install the pins of "
                             "requirements/board.lock (model-signing, pyOpenSSL)") from None
    return model_signing


def generate_key(private_path: PathLike, public_path: Optional[PathLike] = None,
                 overwrite: bool = False) -> Tuple[Path, Path]:
    """Write a new ECDSA P-256 key pair; returns ``(private, public)`` paths.

    public_path defaults to the private key's path with suffix ``.pub``. The private key file is
    created with mode 0600. An existing file is never replaced unless ``overwrite``.
    """
    serialization, ec = _crypto()
    private_path = Path(private_path)
    public_path = Path(public_path) if public_path is not None else private_path.with_suffix(".pub")
    if private_path == public_path:
        raise ConfigError(f"the private and public key cannot both be {private_path}")
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise ConfigError(f"{p} exists; choose another name or remove it first (a key is never overwritten)")
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if overwrite else os.O_EXCL)
    fd = os.open(private_path, flags, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def key_fingerprint(public_key: PathLike) -> str:
    """``sha256:<hex>`` of a public key's PEM (what model-signing records as the key hint)."""
    pem = _read_public_pem(Path(public_key))
    return "sha256:" + hashlib.sha256(pem).hexdigest()


def _read_public_pem(path: Path) -> bytes:
    """The public key's canonical PEM; refuses a file that is not an EC P-256/384/521 public key."""
    serialization, ec = _crypto()
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SignatureError(f"cannot read trusted key {path}: {err.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise SignatureError(f"trusted key {path} is not a PEM public key (give the .pub made by "
                             "'fpga-dnn keygen', not the private key)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in ("secp256r1", "secp384r1",
                                                                               "secp521r1"):
        raise SignatureError(f"trusted key {path} is not an ECDSA P-256/384/521 public key")
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _hashing_config(ms):
    """The one hashing configuration signing and verification share: a (file, SHA-256) manifest of
    every file but the signature, no symbolic links, nothing else ignored (not even .git files)."""
    return (ms.hashing.Config()
            .use_file_serialization(hashing_algorithm="sha256", allow_symlinks=False)
            .set_ignored_paths(paths=[SIGNATURE_FILENAME], ignore_git_paths=False))


def sign_bundle(bundle_dir: PathLike, private_key: PathLike, bundle_version: Optional[int] = None) -> Path:
    """Sign a bundle folder in place; returns the signature file (``<bundle>/bundle.sig``).

    Before signing, the folder is read like the runtime reads it (strict names, checksums
    verified: a corrupt bundle is not signed) and ``spec.json``'s ``bundle_version`` is set:
    ``bundle_version`` if given (it must exceed the version the bundle had), else the previous
    version + 1 (1 for a bundle never signed).
    """
    from fpga_dnn.runtime.bundle import Bundle, BundleError  # bundle imports this module
    from fpga_dnn.runtime.spec import SPEC_FILENAME

    ms = _model_signing()
    serialization, ec = _crypto()
    bundle_dir = Path(bundle_dir)
    private_key = Path(private_key)
    try:
        key = serialization.load_pem_private_key(private_key.read_bytes(), None)
    except OSError as err:
        raise SignatureError(f"cannot read private key {private_key}: {err.strerror}") from None
    except (ValueError, TypeError):
        raise SignatureError(f"{private_key} is not an unencrypted PEM private key (make one with "
                             "'fpga-dnn keygen')") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SignatureError(f"{private_key} is not an ECDSA P-256 private key (make one with 'fpga-dnn keygen')")
    (bundle_dir / SIGNATURE_FILENAME).unlink(missing_ok=True)   # an old signature would no longer match
    bundle = Bundle.load(bundle_dir, verify=True)
    previous = bundle.spec.bundle_version or 0
    if bundle_version is None:
        bundle_version = previous + 1
    elif not isinstance(bundle_version, int) or bundle_version <= previous:
        raise BundleError(f"bundle version {bundle_version!r} must be an integer larger than the bundle's "
                          f"current version {previous}")
    bundle.spec.replace(bundle_version=bundle_version).save(bundle_dir / SPEC_FILENAME)
    Bundle.load(bundle_dir, verify=True)   # what is signed is what the runtime will read
    signature = bundle_dir / SIGNATURE_FILENAME
    (ms.signing.Config().use_elliptic_key_signer(private_key=private_key)
     .set_hashing_config(_hashing_config(ms)).sign(bundle_dir, signature))
    return signature


def verify_bundle(bundle_dir: PathLike, trusted_keys: Iterable[PathLike], label: Optional[PathLike] = None) -> Path:
    """Check ``<bundle>/bundle.sig`` against the folder's files; returns the trusted key that signed it.

    Raises :class:`SignatureError` (one line) when the signature is missing or unreadable, when
    no key of ``trusted_keys`` made it, or when a file was changed, added or removed since.
    ``label``: the folder to name in messages (the original when ``bundle_dir`` is a private copy).
    """
    ms = _model_signing()
    bundle_dir = Path(bundle_dir)
    where = f"bundle {label if label is not None else bundle_dir}"
    signature = bundle_dir / SIGNATURE_FILENAME
    keys: List[Path] = [Path(k) for k in trusted_keys]
    if not keys:
        raise SignatureError(f"{where} is signed but no trusted public key was given to check it with")
    if not signature.is_file() or signature.is_symlink():
        raise SignatureError(f"{where} has no signature ({SIGNATURE_FILENAME}); sign it with "
                             "'fpga-dnn sign BUNDLE --key KEY'")
    for k in keys:
        _read_public_pem(k)   # a bad key file is named as such, not taken for a bad signature
    for k in keys:
        config = ms.verifying.Config().use_elliptic_key_verifier(public_key=k).set_hashing_config(_hashing_config(ms))
        try:
            config.verify(bundle_dir, signature)
            return k
        except ValueError as err:
            msg = " ".join(str(err).split())
            if msg.startswith("Key mismatch"):
                continue          # signed by another key: try the next trusted one
            if msg.startswith("Signature mismatch"):
                raise SignatureError(f"{where} does not match its signature; since signing, "
                                     f"{_manifest_diff(msg)}") from None
            raise SignatureError(f"{where}: signature {SIGNATURE_FILENAME} is invalid: "
                                 f"{_short(msg)}") from None
        except Exception as err:  # noqa: BLE001 - a malformed signature file fails in many library layers
            if type(err).__name__ == "InvalidSignature":
                continue          # the key's hint matched but its signature does not: not this key
            raise SignatureError(f"{where}: signature {SIGNATURE_FILENAME} is unreadable or invalid "
                                 f"({type(err).__name__}: {_short(str(err))})") from None
    names = ", ".join(str(k) for k in keys)
    raise SignatureError(f"{where} is not signed by a trusted key (tried {names})")


def _manifest_diff(msg: str) -> str:
    """model-signing's manifest difference as ``changed: a, b; added: c; removed: d`` (its message
    is the repr of a list, so quotes may come escaped)."""
    changed = re.findall(r"Hash mismatch for \\*'([^'\\]+)\\*'", msg)
    parts = [f"changed: {', '.join(sorted(changed))}"] if changed else []
    for kind, word in (("Extra files found", "added"), ("Missing files", "removed")):
        m = re.search(kind + r" in model \\*'[^']*\\*': ([^'\"\\\]]+)", msg)
        if m:
            parts.append(f"{word}: {m.group(1).strip().rstrip(',')}")
    return "; ".join(parts) or _short(msg)


def _short(msg: str, limit: int = 300) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def trusted_key_list(keys: Union[None, PathLike, Sequence[PathLike]]) -> List[Path]:
    """``trusted_keys`` as a list of paths (one path, a list of paths, or None)."""
    if keys is None:
        return []
    if isinstance(keys, (str, Path)):
        return [Path(keys)]
    return [Path(k) for k in keys]
