"""A small ManageSieve client (RFC 5804): what deploying forwarding rules needs, nothing more.

Log in (SASL PLAIN, optionally *as* another user: an admin's master user names the user as
authorization identity), list, read, check, upload, activate and delete Sieve scripts. STARTTLS
is required unless the caller says the connection stays on this machine.

Responses are read token by token: quoted strings, literals (``{n}`` then n bytes) and atoms;
a response ends at a line that starts with ``OK``, ``NO`` or ``BYE``. A ``NO`` raises
:class:`SieveRefused` with the server's text (and response code, e.g. ``NONEXISTENT``), so the
caller can say exactly what the server said.
"""

from __future__ import annotations

import base64
import socket
import ssl
from dataclasses import dataclass
from typing import BinaryIO

from mailroom.errors import ConfigError, MailroomError, PermanentError, TransientError

DEFAULT_PORT = 4190
#: Longest line or literal accepted from a server: scripts are small; a runaway server is not.
MAX_RESPONSE_BYTES = 1 << 20


class SieveError(MailroomError):
    """The ManageSieve conversation failed (base of the two below)."""


class SieveUnavailable(SieveError, TransientError):
    """Could not reach the server, or it hung up: worth trying again later."""


class SieveRefused(SieveError, PermanentError):
    """The server answered NO (or BYE): bad credentials, an invalid script, no such script."""

    def __init__(self, command: str, code: str, text: str) -> None:
        self.command, self.code, self.text = command, code, text
        super().__init__(f"{command}: {text or 'refused'}" + (f" ({code})" if code else ""))


Token = str | bytes  # atoms and quoted strings as str; literals as bytes


@dataclass(frozen=True)
class Response:
    lines: list[list[Token]]
    status: str  # OK | NO | BYE
    code: str
    text: str


def quote(value: str) -> str:
    """A ManageSieve quoted string (RFC 5804 §4: no CR or LF inside; \\ and " escaped)."""
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"not allowed in a quoted string: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: str) -> bytes:
    """A non-synchronising literal ``{n+}`` (RFC 5804 requires servers to accept it)."""
    data = value.encode()
    return b"{%d+}\r\n" % len(data) + data


class ManageSieve:
    """One session. Use as a context manager: ``LOGOUT`` and close on the way out."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, *, starttls: bool = True,
                 cafile: str = "", timeout: float = 30.0) -> None:
        self.host, self.port = host, port
        try:
            self._sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise SieveUnavailable(f"cannot reach ManageSieve at {host}:{port}: {exc}") from exc
        try:
            self._start(starttls, cafile)
        except BaseException:
            self._sock.close()
            raise

    def _start(self, starttls: bool, cafile: str) -> None:
        self._file: BinaryIO = self._sock.makefile("rb")
        self.capabilities = self._capabilities(self._read("greeting"))
        if starttls:
            if "STARTTLS" not in self.capabilities:
                raise SieveRefused("STARTTLS", "",
                                   f"{self.host}:{self.port} does not offer STARTTLS")
            self._command("STARTTLS")
            try:
                context = ssl.create_default_context(cafile=cafile or None)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"CA file {cafile!r}: {exc}") from exc
            try:
                self._sock = context.wrap_socket(self._sock, server_hostname=self.host)
            except ssl.SSLCertVerificationError as exc:
                raise SieveRefused("STARTTLS", "", f"the certificate of {self.host} is not "
                                   f"trusted ({exc.verify_message}): give its CA file") from exc
            except (OSError, ssl.SSLError) as exc:
                raise SieveUnavailable(f"TLS with {self.host}:{self.port}: {exc}") from exc
            self._file = self._sock.makefile("rb")
            # RFC 5804 §2.2: the server sends its capabilities again after the handshake.
            self.capabilities = self._capabilities(self._read("STARTTLS"))

    def __enter__(self) -> ManageSieve:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._sock.sendall(b"LOGOUT\r\n")
            self._read("LOGOUT")
        except (OSError, SieveError):
            pass  # leaving anyway
        finally:
            self._sock.close()

    # --- commands -------------------------------------------------------------------------

    def login(self, user: str, password: str, *, as_user: str = "") -> None:
        """SASL PLAIN: ``user`` authenticates; ``as_user`` (a master user's target) is whom
        the session acts for."""
        if "PLAIN" not in self.capabilities.get("SASL", "").upper().split():
            raise SieveRefused("AUTHENTICATE", "", f"{self.host} does not offer SASL PLAIN")
        blob = base64.b64encode(f"{as_user}\0{user}\0{password}".encode()).decode()
        self._command(f'AUTHENTICATE "PLAIN" {quote(blob)}', "AUTHENTICATE")

    def list_scripts(self) -> list[tuple[str, bool]]:
        """(name, active) of every script of the user."""
        out = []
        for line in self._command("LISTSCRIPTS").lines:
            name = _text(line[0])
            active = len(line) > 1 and isinstance(line[1], str) and line[1].upper() == "ACTIVE"
            out.append((name, active))
        return out

    def active_script(self) -> str:
        return next((name for name, active in self.list_scripts() if active), "")

    def get_script(self, name: str) -> str:
        lines = self._command(f"GETSCRIPT {quote(name)}").lines
        return _text(lines[0][0]) if lines and lines[0] else ""

    def check_script(self, text: str) -> None:
        """The server compiles the script without storing it; a bad script raises."""
        self._command(b"CHECKSCRIPT " + literal(text), "CHECKSCRIPT")

    def put_script(self, name: str, text: str) -> None:
        """Store (or replace) a script; the server compiles it first and refuses a bad one."""
        self._command(f"PUTSCRIPT {quote(name)} ".encode() + literal(text), "PUTSCRIPT")

    def set_active(self, name: str) -> None:
        """Make ``name`` the active script; ``""`` deactivates every script."""
        self._command(f"SETACTIVE {quote(name)}")

    def delete_script(self, name: str) -> None:
        self._command(f"DELETESCRIPT {quote(name)}")

    # --- protocol -------------------------------------------------------------------------

    def _command(self, command: str | bytes, name: str = "") -> Response:
        """Send one command; ``name`` is how errors call it (never the credentials)."""
        data = command if isinstance(command, bytes) else command.encode()
        name = name or (command.split(" ", 1)[0] if isinstance(command, str) else "command")
        try:
            self._sock.sendall(data + b"\r\n")
        except OSError as exc:
            raise SieveUnavailable(f"{name}: connection lost: {exc}") from exc
        return self._read(name)

    def _read(self, command: str) -> Response:
        lines: list[list[Token]] = []
        while True:
            tokens = self._read_tokens()
            head = tokens[0].upper() if tokens and isinstance(tokens[0], str) else ""
            if head in ("OK", "NO", "BYE"):
                code, text = "", ""
                rest = tokens[1:]
                if rest and isinstance(rest[0], str) and rest[0].startswith("("):
                    code = rest[0].strip("()")
                    rest = rest[1:]
                if rest:
                    text = _text(rest[-1])
                if head != "OK":
                    raise SieveRefused(command, code, text)
                return Response(lines, head, code, text)
            lines.append(tokens)

    def _read_line(self) -> bytes:
        try:
            line = self._file.readline(MAX_RESPONSE_BYTES)
        except OSError as exc:
            raise SieveUnavailable(f"connection lost: {exc}") from exc
        if not line:
            raise SieveUnavailable(f"{self.host}:{self.port} closed the connection")
        if not line.endswith(b"\n"):
            raise SieveUnavailable(f"{self.host}:{self.port} sent an overlong line")
        return line.rstrip(b"\r\n")

    def _read_tokens(self) -> list[Token]:
        """One response line as tokens; a literal continues the line after its bytes."""
        tokens: list[Token] = []
        line, i = self._read_line(), 0
        while i < len(line):
            c = line[i:i + 1]
            if c == b" ":
                i += 1
            elif c == b'"':
                i, value = _quoted(line, i)
                tokens.append(value)
            elif c == b"{" and line.endswith(b"}"):
                size = int(line[i + 1:-1].rstrip(b"+"))
                if size > MAX_RESPONSE_BYTES:
                    raise SieveUnavailable(f"a literal of {size} bytes is too large")
                tokens.append(self._file.read(size))
                line, i = self._read_line(), 0
            elif c == b"(":
                end = line.index(b")", i)
                tokens.append(line[i:end + 1].decode())
                i = end + 1
            else:
                end = line.find(b" ", i)
                end = len(line) if end < 0 else end
                tokens.append(line[i:end].decode())
                i = end
        return tokens

    @staticmethod
    def _capabilities(response: Response) -> dict[str, str]:
        caps = {}
        for line in response.lines:
            if line:
                caps[_text(line[0]).upper()] = _text(line[1]) if len(line) > 1 else ""
        return caps


def _quoted(line: bytes, start: int) -> tuple[int, str]:
    out = bytearray()
    i = start + 1
    while i < len(line):
        c = line[i]
        if c == 0x5C and i + 1 < len(line):  # backslash
            out.append(line[i + 1])
            i += 2
        elif c == 0x22:  # closing quote
            return i + 1, out.decode()
        else:
            out.append(c)
            i += 1
    raise SieveUnavailable("unterminated quoted string in a ManageSieve response")


def _text(token: Token) -> str:
    return token.decode() if isinstance(token, bytes) else token
