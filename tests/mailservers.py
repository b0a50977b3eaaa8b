"""Real mail servers for tests: aiosmtpd (SMTP) and Dovecot (IMAP), on free loopback ports.

Dovecot runs once per test session in a temp folder (recipe: shared/TESTING.md); tests that
need it skip, with the reason, only when the ``dovecot`` binary is absent.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from imap_tools import MailBoxUnencrypted


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Envelope:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.data)  # type: ignore[return-value]


@dataclass
class SmtpSink:
    """An aiosmtpd handler that keeps every envelope; ``refuse`` answers chosen RCPTs 550."""

    envelopes: list[Envelope] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    host: str = "127.0.0.1"
    port: int = 0
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self, hostname=self.host, port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def restart(self) -> None:
        """The server goes away (dropping open connections) and comes back on its port."""
        self.stop()
        self.start()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(
            Envelope(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        )
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [e.message for e in self.envelopes if address in e.recipients]


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@dataclass
class Dovecot:
    host: str
    port: int
    user: str = "bot"
    password: str = "secret"
    command: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    def stop(self) -> None:
        """SIGTERM to the server and every process it started: open IMAP sessions are cut
        (Dovecot's own imap processes would otherwise serve them on through a restart)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def start(self, timeout: float = 10) -> None:
        """(Re)start the server on its port with its mail; returns once it accepts connections."""
        self.proc = subprocess.Popen(self.command, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not start: {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def mailbox(self) -> MailBoxUnencrypted:
        box = MailBoxUnencrypted(self.host, self.port, timeout=10)
        box.login(self.user, self.password)
        return box

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        with self.mailbox() as box:
            box.append(raw, folder, dt=None, flag_set=())

    def count(self, folder: str) -> int:
        with self.mailbox() as box:
            box.folder.set(folder)
            return len(box.uids("ALL"))

    def clear(self) -> None:
        with self.mailbox() as box:
            for folder in ("INBOX", "Processed", "Failed"):
                if box.folder.exists(folder):
                    box.folder.set(folder)
                    uids = box.uids("ALL")
                    if uids:
                        box.delete(uids)


_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/run
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:{d}/mail/%u
default_internal_user = {iu}
default_internal_group = {ig}
default_login_user = {lu}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Processed {{
    auto = create
  }}
  mailbox Failed {{
    auto = create
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot]:
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )
    if binary is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd); IMAP tests skipped")
    # Not under pytest's basetemp: that is mode 0700, and Dovecot's own users must get in.
    d = Path(tempfile.mkdtemp(prefix="lyra-dovecot-"))
    os.chmod(d, 0o755)
    for sub in ("run", "mail", "home/bot"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        iu, ig, lu = "dovecot", "dovecot", "dovenull"
        uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
        for path in (d / "mail", d / "home", d / "home/bot"):
            os.chown(path, uid, gid)
    else:
        iu = lu = pwd.getpwuid(os.getuid()).pw_name
        ig = grp.getgrgid(os.getgid()).gr_name
        uid, gid = os.getuid(), os.getgid()
    port = free_port()
    (d / "passwd").write_text(f"bot:{{PLAIN}}secret:{uid}:{gid}::{d}/home/bot::\n")
    conf = d / "dovecot.conf"
    conf.write_text(_CONF.format(d=d, iu=iu, ig=ig, lu=lu, port=port))
    server = Dovecot("127.0.0.1", port, command=[binary, "-F", "-c", str(conf)])
    try:
        try:
            server.start()
        except RuntimeError as exc:
            log = (d / "dovecot.log").read_text() if (d / "dovecot.log").exists() else ""
            pytest.fail(f"{exc} {log}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Dovecot:
    dovecot_server.clear()
    return dovecot_server
