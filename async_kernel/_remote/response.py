"""Sending the connection info to the provisioner's response address, encrypted.

The payload is what gateway_provisioners' `ResponseManager` decodes (launcher payload
version 1): the connection info as JSON, AES-encrypted (ECB, PKCS#7 padding) with a fresh
16-byte key; that key RSA-encrypted (PKCS#1 v1.5) with the provisioner's public key; both,
base64-encoded, in a JSON object `{"version": 1, "key": ..., "conn_info": ...}` that is itself
base64-encoded and sent on one TCP connection, closed to mark its end.

The cryptography comes from pycryptodomex (`Cryptodome`, what gateway_provisioners uses),
imported only here and only when a launch needs it (`pip install 'async-kernel[remote]'`).

Synchronous, for the launcher's main thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
from typing import TYPE_CHECKING, Any

from .errors import BAD_INPUT, FAILED, LaunchError

if TYPE_CHECKING:
    from Cryptodome.PublicKey.RSA import RsaKey

__all__ = [
    "LAUNCHER_VERSION",
    "SEND_TIMEOUT",
    "encrypt_connection_info",
    "load_public_key",
    "send_connection_info",
]

LAUNCHER_VERSION = 1
"""The payload version ResponseManager expects from a current launcher."""

SEND_TIMEOUT = 30.0
"""Seconds connecting to the response address and sending the payload may take."""

_MISSING = (
    "The remote launcher needs pycryptodomex to encrypt the connection info: "
    "pip install 'async-kernel[remote]' (or pip install pycryptodomex)."
)


def load_public_key(text: str) -> RsaKey:
    """Parse the provisioner's public key: base64 DER without PEM armour (what
    `ResponseManager.public_key` gives), or a whole PEM block.

    Raises:
        LaunchError: pycryptodomex is missing (`FAILED`), or the key is not an RSA public key
            (`BAD_INPUT`).
    """
    try:
        from Cryptodome.PublicKey import RSA
    except ImportError:
        raise LaunchError(_MISSING, FAILED) from None
    try:
        if "-----BEGIN" in text:
            key = RSA.import_key(text)
        else:
            key = RSA.import_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, IndexError, TypeError, binascii.Error) as e:
        raise LaunchError(
            f"Bad public key: not a base64 RSA public key ({e}). Pass the provisioner's "
            "{public_key} unchanged.",
            BAD_INPUT,
        ) from None
    if key.size_in_bits() < 512:
        raise LaunchError("Bad public key: an RSA key of at least 512 bits is needed.", BAD_INPUT)
    return key


def encrypt_connection_info(info: dict[str, Any], public_key: RsaKey) -> bytes:
    """The payload that carries `info` to ResponseManager (see the module doc)."""
    try:
        from Cryptodome.Cipher import AES, PKCS1_v1_5
        from Cryptodome.Random import get_random_bytes
        from Cryptodome.Util.Padding import pad
    except ImportError:
        raise LaunchError(_MISSING, FAILED) from None
    aes_key = get_random_bytes(16)
    encrypted_info = AES.new(aes_key, AES.MODE_ECB).encrypt(
        pad(json.dumps(info).encode("utf-8"), 16)
    )
    encrypted_key = PKCS1_v1_5.new(public_key).encrypt(aes_key)
    payload = {
        "version": LAUNCHER_VERSION,
        "key": base64.b64encode(encrypted_key).decode("ascii"),
        "conn_info": base64.b64encode(encrypted_info).decode("ascii"),
    }
    return base64.b64encode(json.dumps(payload).encode("utf-8"))


def send_connection_info(
    host: str, port: int, payload: bytes, timeout: float = SEND_TIMEOUT
) -> None:
    """Send `payload` to `host:port` on one connection, then close it (its end of data).

    Raises:
        LaunchError: the address cannot be reached or the connection fails (`FAILED`).
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise LaunchError(
            f"Cannot send the connection info to the response address {host}:{port}: "
            f"{reason}. Is the provisioner's response address reachable from here?",
            FAILED,
        ) from None
