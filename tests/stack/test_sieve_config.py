"""The local Dovecot's Sieve part: generated configuration and the stack's sendmail (no
services; the rules deployment tests in tests/ops run them)."""

from __future__ import annotations

import pytest

from mailroom.console.stack import dovecot, lmtp_sendmail, sieve
from mailroom.settings import Settings


def test_dovecot_offers_managesieve_lmtp_and_editheader(tmp_path) -> None:
    settings = Settings(state_dir=str(tmp_path), managesieve_port=4444, lmtp_port=5555)
    conf = dovecot.render_config(settings, 999, 999)
    assert "protocols = imap pop3 sieve lmtp" in conf
    assert "port = 4444" in conf and "port = 5555" in conf
    assert "sieve_extensions = +editheader" in conf
    assert f"sendmail_path = {tmp_path}/dovecot/sendmail --lmtp-port 5555" in conf
    assert "master = yes" in conf and f"args = scheme=PLAIN {tmp_path}/dovecot/masters" in conf
    # LMTP's user lookups authenticate nobody: the passwd-file passdb must answer them.
    assert "mechanisms = plain login none" in conf
    # Every port the stack waits for and reports.
    assert {4444, 5555} <= set(dovecot._ports(settings))  # noqa: SLF001


def test_sendmail_reads_dovecots_arguments() -> None:
    assert lmtp_sendmail.parse(["--lmtp-port", "10024", "-i", "-f", "a@x.example", "--",
                                "fwd@corp.example"]) == (10024, "a@x.example",
                                                         ["fwd@corp.example"])
    assert lmtp_sendmail.parse(["--lmtp-port", "1", "-f", "<>", "--", "b"]) == (1, "", ["b"])
    with pytest.raises(ValueError):
        lmtp_sendmail.parse(["-i", "--", "x"])  # no port


def test_sendmail_maps_an_aliased_address_to_its_login(tmp_path) -> None:
    settings = Settings(state_dir=str(tmp_path))
    sieve.add_alias(settings, "CRM-Forward@Acme.example", "demo-crm-forward")
    aliases = sieve.aliases_dir(settings)
    assert lmtp_sendmail.login("crm-forward@acme.example", aliases) == "demo-crm-forward"
    assert lmtp_sendmail.login("bob@acme.example", aliases) == "bob"  # no alias: local part
    assert lmtp_sendmail.login("../crm-forward@acme.example", aliases) == "../crm-forward"
    with pytest.raises(ValueError):
        sieve.add_alias(settings, "../x@acme.example", "x")
