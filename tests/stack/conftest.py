"""Fixtures for the local stack's tests: the running stack and a fresh Dovecot user per test."""

from __future__ import annotations

import ssl
import uuid

import pytest

from mailroom.console.stack import commands, tls
from mailroom.console.stack import dovecot as dovecot_service
from mailroom.settings import Settings


@pytest.fixture(scope="session")
def stack(base_settings: Settings) -> Settings:
    """The settings of a running local stack; fails (not skips) when it is not up."""
    down = [s.status(base_settings) for s in commands.SERVICES]
    down = [f"{st.name}: {st.state}" for st in down if not st.running]
    if down:
        pytest.fail(f"the local stack is not running ({'; '.join(down)}): mailroom stack up")
    return base_settings


@pytest.fixture
def mail_user(stack: Settings) -> tuple[str, str]:
    """A Dovecot user of this test alone (name, password), so tests never share a mailbox."""
    name = "s" + uuid.uuid4().hex[:10]
    password = "pw-" + uuid.uuid4().hex[:8]
    dovecot_service.add_user(stack, name, password)
    return name, password


@pytest.fixture
def trusting(stack: Settings) -> ssl.SSLContext:
    """A client TLS context that trusts exactly the local stack's self-signed certificate."""
    return ssl.create_default_context(cafile=str(tls.cert_file(stack)))
