"""Optional bitstream confidentiality and authentication, for users who have Vivado and keys.

The bitstream holds the network's weights. When asked (``generate_overlay(...,
encryption=BitstreamEncryption(...))`` or ``[overlay] encrypt_key = ...`` in a flow file), the
overlay scripts encrypt it; otherwise nothing about encryption appears in them:

* **Zynq-7000 (PYNQ-Z2)**: AES-256 with HMAC authentication, done by Vivado's ``write_bitstream``
  through the ``BITSTREAM.ENCRYPTION.*`` properties (``ENCRYPT YES``, ``ENCRYPTKEYSELECT
  BBRAM|EFUSE``, ``KEYFILE`` = a ``.nky`` file holding ``Key 0``, ``Key StartCBC`` and
  ``Key HMAC``), set by a pre-hook of the implementation run's bitstream step
  (``encrypt_pre_bitstream.tcl``).
* **Zynq UltraScale+ (Ultra96)**: AES-256-GCM encryption and RSA authentication by ``bootgen``
  after the export: a ``.bif`` (``destination_device = pl, encryption = aes, aeskeyfile = ...,
  authentication = rsa`` with the primary/secondary secret keys ``pskfile``/``sskfile``) turns
  the ``.bit`` into ``<design>.bin``, which replaces the plaintext ``.bit`` in the bundle
  (``encrypt_bootgen.tcl``).

Keys never enter the bundle or the generated folder: the scripts hold only the key files' paths on
the Vivado machine (which must lie outside the overlay and bundle folders), the bundle's spec
records only the scheme and the key source (``extra.overlay.encryption``), and the key material
is read by Vivado/bootgen alone. Programming the key into BBRAM or eFUSE, and booting the board
so that the PL accepts an encrypted image, are steps on the board (overlays/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fpga_dnn.errors import ConfigError

#: The PS IP of a board decides its family and scheme.
FAMILIES = {"processing_system7": "zynq7000", "zynq_ultra_ps_e": "zynqmp"}
SCHEMES = {"zynq7000": "aes256-hmac", "zynqmp": "aes256-gcm+rsa"}
#: Where the device reads the AES key: Vivado's ENCRYPTKEYSELECT / bootgen's keysrc_encryption.
KEY_SOURCES = {"zynq7000": {"bbram": "BBRAM", "efuse": "EFUSE"},
               "zynqmp": {"bbram": "bbram_red_key", "efuse": "efuse_red_key"}}
TEMPLATES = {"zynq7000": ("encrypt_bitstream.tcl", "encrypt_pre_bitstream.tcl"),
             "zynqmp": ("encrypt_bitstream.tcl", "encrypt_bootgen.tcl")}


@dataclass(frozen=True)
class BitstreamEncryption:
    """What to encrypt the bitstream with (paths on the machine that runs Vivado).

    key_file: the AES key file (``.nky``; Zynq-7000: ``Key 0``/``Key StartCBC``/``Key HMAC``,
        ZynqMP: bootgen's AES key file).
    key_source: ``'bbram'`` or ``'efuse'``: where the board keeps the AES key.
    rsa_primary_key / rsa_secondary_key: ZynqMP only: the PSK/SSK PEM files bootgen
        authenticates the image with (both required there).
    """

    key_file: Path
    key_source: str = "bbram"
    rsa_primary_key: Optional[Path] = None
    rsa_secondary_key: Optional[Path] = None


def _outside(path: Path, folders, what: str) -> Path:
    path = Path(path).expanduser().resolve()
    for folder in folders:
        folder = Path(folder).resolve()
        if path == folder or folder in path.parents:
            raise ConfigError(f"{what} {path} is inside {folder}: keys must stay outside the overlay and bundle "
                              "folders (they are copied around; the key must not be)")
    return path


def encryption_values(enc: BitstreamEncryption, board, out_dir: Path, bundle_dir: Path) -> dict:
    """config.tcl entries for ``enc`` on ``board`` (key paths only, never key material)."""
    family = FAMILIES.get(board.ps_ip)
    if family is None:
        raise ConfigError(f"board {board.name!r} ({board.ps_ip}): bitstream encryption is known for "
                          f"{', '.join(FAMILIES)} boards only")
    sources = KEY_SOURCES[family]
    if enc.key_source not in sources:
        raise ConfigError(f"encryption key source {enc.key_source!r} is not known; known: {', '.join(sources)}")
    folders = (out_dir, bundle_dir)
    values = {"encrypt_family": family, "encrypt_key_file": _outside(enc.key_file, folders, "key file").as_posix(),
              "encrypt_key_source": sources[enc.key_source]}
    if family == "zynqmp":
        if enc.rsa_primary_key is None or enc.rsa_secondary_key is None:
            raise ConfigError("Zynq UltraScale+ bitstream encryption also authenticates the image: give the RSA "
                              "primary and secondary secret keys (rsa_primary_key, rsa_secondary_key: PEM files)")
        values["encrypt_psk"] = _outside(enc.rsa_primary_key, folders, "RSA primary key").as_posix()
        values["encrypt_ssk"] = _outside(enc.rsa_secondary_key, folders, "RSA secondary key").as_posix()
    elif enc.rsa_primary_key is not None or enc.rsa_secondary_key is not None:
        raise ConfigError("RSA authentication keys are for Zynq UltraScale+ (bootgen); Zynq-7000 bitstreams are "
                          "authenticated with the HMAC key in the .nky file")
    return values


def describe_encryption(values: dict) -> dict:
    """What the bundle's spec records about the encryption: scheme and key source, no key, no path."""
    family = values["encrypt_family"]
    return {"scheme": SCHEMES[family], "key_source": values["encrypt_key_source"]}
