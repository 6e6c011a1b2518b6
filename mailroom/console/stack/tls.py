"""The local stack's self-signed certificate, generated once with ``openssl``.

It names ``localhost`` and ``127.0.0.1`` and is its own CA, so a client trusts it by loading
:func:`cert_file` as the CA (``ssl.create_default_context(cafile=...)``) — TLS paths are then
tested with full verification, never with verification switched off.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mailroom.console.stack import process
from mailroom.console.stack.process import StackError
from mailroom.settings import Settings


def home(settings: Settings) -> Path:
    return settings.state_path / "tls"


def cert_file(settings: Settings) -> Path:
    """The certificate (PEM): the server certificate and the CA a client should trust."""
    return home(settings) / "localhost.crt"


def key_file(settings: Settings) -> Path:
    return home(settings) / "localhost.key"


def ensure_certificate(settings: Settings) -> tuple[Path, Path]:
    """Create the key and certificate if they do not exist yet; return (cert, key)."""
    cert, key = cert_file(settings), key_file(settings)
    if cert.exists() and key.exists():
        return cert, key
    if shutil.which("openssl") is None:
        raise StackError("openssl not found: run deploy/install-system-packages.sh")
    home(settings).mkdir(parents=True, exist_ok=True)
    tmp_cert, tmp_key = cert.with_suffix(".crt.tmp"), key.with_suffix(".key.tmp")
    process.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-days", "3650", "-subj", "/CN=localhost/O=Mailroom local stack",
         "-keyout", str(tmp_key), "-out", str(tmp_cert),
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
         "-addext", "extendedKeyUsage=serverAuth"],
        "generating the self-signed certificate",
    )
    os.chmod(tmp_key, 0o600)  # read by Dovecot's master process, which runs as root
    tmp_key.rename(key)
    tmp_cert.rename(cert)
    return cert, key
