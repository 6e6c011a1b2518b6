"""TLS contexts: one per trusted certificate file, shared by every connection to its server."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from ingest.connect import tls_context
from ingest.model import Profile, Protocol


def test_one_context_per_profile_trust_and_a_new_one_when_the_file_changes(tmp_path: Path) -> None:
    system = Profile("a", Protocol.IMAP, "imap.example", 993)
    assert tls_context(system) is tls_context(Profile("b", Protocol.IMAP, "other.example", 993))
    assert tls_context(system).verify_mode is ssl.CERT_REQUIRED

    cafile = tmp_path / "ca.pem"
    cafile.write_text(_any_ca_pem())
    trusted = Profile("c", Protocol.IMAP, "imap.example", 993, trust_cafile=str(cafile))
    first = tls_context(trusted)
    assert first is tls_context(trusted) and first is not tls_context(system)
    os.utime(cafile, ns=(1, 1))  # the file was replaced: its certificates are read again
    assert tls_context(trusted) is not first


def _any_ca_pem() -> str:
    """One CA certificate from the system's store, as PEM."""
    ctx = ssl.create_default_context()
    der = ctx.get_ca_certs(binary_form=True)[0]
    return ssl.DER_cert_to_PEM_cert(der)
