"""A real dovecot IMAP server for the inbox tests: ``with running_dovecot() as server: ...``.

Debian's ``dovecot-imapd`` (``apt-get install dovecot-imapd``; ``.ci/run`` installs it) started in
the foreground with a configuration of its own in a temporary directory: IMAP on a free port of
127.0.0.1 (and IMAP over TLS on another with ``tls=True``), plain-text login allowed (loopback
only), one user from a passwd-file, whose mail is
the Maildir ``server.maildir``. The test writes messages into that Maildir (``sandbox.mailroom``)
and reads them back over IMAP, as the sandbox and a mailbox provider would in production.

Dovecot never gives mail access to UID 0, so as root the mailbox belongs to ``nobody`` (the
directories are created here and owned by it; root's deliveries into them stay readable); as
another user, dovecot runs unprivileged and everything is that user's.
"""

from __future__ import annotations

import contextlib
import datetime
import grp
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_HINT = "dovecot is not installed: apt-get install dovecot-imapd"
USER, PASSWORD = "optout", "imap-test-secret"

CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
instance_name = test-{port}
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = {uid}
first_valid_gid = {gid}
{unprivileged}
mail_location = maildir:{maildir}:LAYOUT=fs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


@dataclass
class Dovecot:
    port: int
    maildir: Path
    imaps_port: int = 0  # with tls=True: IMAP over TLS there, with the certificate ``certificate``
    certificate: Path | None = None
    user: str = USER
    password: str = PASSWORD
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"imap://{self.user}:{self.password}@{self.host}:{self.port}/INBOX"

    @property
    def imaps_url(self) -> str:
        return f"imaps://{self.user}:{self.password}@{self.host}:{self.imaps_port}/INBOX"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files in ``folder``), valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def dovecot_binary() -> str:
    found = shutil.which("dovecot") or next(
        (path for path in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(path, os.X_OK)), None
    )
    if not found:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mail_owner() -> tuple[int, int, str]:
    """(uid, gid, extra config): ``nobody`` when root, else the current user running dovecot unprivileged."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        return nobody.pw_uid, nobody.pw_gid, ""
    name = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    extra = f"default_login_user = {name}\ndefault_internal_user = {name}\ndefault_internal_group = {group}"
    return os.getuid(), os.getgid(), extra


def greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(64).startswith(b"* OK")
    except OSError:
        return False


def _start(binary: str, base: Path, maildir: Path, timeout: float, tls: bool) -> tuple[subprocess.Popen, int, int]:
    """Dovecot on free ports: (process, IMAP port, imaps port); ports 0 when it did not start."""
    uid, gid, unprivileged = mail_owner()
    port, imaps_port = free_port(), (free_port() if tls else 0)
    ssl = f"ssl = yes\nssl_cert = <{base}/cert.pem\nssl_key = <{base}/key.pem" if tls else "ssl = no"
    config = base / "dovecot.conf"
    config.write_text(
        CONFIG.format(
            base=base,
            port=port,
            imaps_port=imaps_port,
            ssl=ssl,
            uid=uid,
            gid=gid,
            unprivileged=unprivileged,
            maildir=maildir,
        )
    )
    process = subprocess.Popen(
        [binary, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return process, 0, 0
        if greets(port):
            return process, port, imaps_port
        time.sleep(0.05)
    _stop(process)
    return process, 0, 0


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # the master stops its children
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()


def _log_tail(base: Path, process: subprocess.Popen) -> str:
    lines = []
    log = base / "dovecot.log"
    if log.exists():
        lines = log.read_text(errors="replace").splitlines()[-5:]
    if process.stderr and not process.stderr.closed and process.poll() is not None:
        lines += process.stderr.read().decode(errors="replace").splitlines()[-5:]
    return " | ".join(lines) or "no output"


@contextlib.contextmanager
def running_dovecot(timeout: float = 20, tls: bool = False):
    """Start dovecot; yields a ``Dovecot`` (its port, Maildir and user); stops it and removes its files.
    ``tls``: also IMAP over TLS (imaps) with a self-signed certificate."""
    binary = dovecot_binary()
    # not pytest's tmp_path: that is private to root (0700) and dovecot's sockets need a short path
    base = Path(tempfile.mkdtemp(prefix="dovecot-test-"))
    process = None
    try:
        base.chmod(0o755)  # the mail user traverses it
        uid, gid, _ = mail_owner()
        maildir = base / "Maildir"
        for sub in ("", "new", "cur", "tmp"):
            (maildir / sub).mkdir(mode=0o700, exist_ok=True)
            os.chown(maildir / sub, uid, gid)
        certificate = self_signed_certificate(base)[0] if tls else None
        (base / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{base}::\n")
        for _attempt in range(3):  # another process may take the free port before dovecot binds it
            process, port, imaps_port = _start(binary, base, maildir, timeout, tls)
            if port:
                break
            reason = _log_tail(base, process)
            _stop(process)
            if "in use" not in reason:
                pytest.fail(f"dovecot did not start: {reason}", pytrace=False)
        else:
            pytest.fail("dovecot did not start: no free port after 3 tries", pytrace=False)
        yield Dovecot(port=port, maildir=maildir, imaps_port=imaps_port, certificate=certificate)
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)
