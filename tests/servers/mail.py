"""Real mail servers on loopback for the connection check (pytest plugin, see `tests/conftest.py`).

`mail_servers` (session) makes a test CA and leaf certificates with the `cryptography` package,
then starts from Debian's binaries, each in a temp directory on free high ports:

- Dovecot "good" (IMAP 993/143 and POP3 995/110 alike) on 127.0.0.2 *and* 127.0.0.1. Dovecot
  treats 127.0.0.1 -> 127.0.0.1 as a secure connection and then offers plaintext login, so the
  check connects to 127.0.0.2 to see what a remote client sees. Its auth service also listens on
  TCP for Postfix's SASL.
- Dovecot "bad": `disable_plaintext_auth = no` (plaintext login offered before STARTTLS).
- Postfix: good SMTP 25/587 (STARTTLS) and 465 (implicit TLS), plus one service per deliberate
  fault: expired, expiring soon, wrong hostname, self-signed certificates; no STARTTLS; AUTH
  before TLS; a legacy port (TLS 1.0, a cipher without forward secrecy, a 1024-bit RSA key).

Without the binaries (or, for Postfix, without root) the tests are skipped, except under
`CI=true`, where that is a failure. `running_mail_servers` is the same set-up as a context
manager, for `benchmarks/check.py`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.message
import email.policy
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bot.knowledge.models import Endpoint, Server
from tests.support import free_port, wait_until

HOST = "mail.lotse.test"  # the name every good certificate is for (SNI and hostname check)
REMOTE = "127.0.0.2"  # where Dovecot behaves as for a remote client
LOCAL = "127.0.0.1"
DH_PARAMS = Path("/usr/share/dovecot/dh.pem")


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing server is a failure)", pytrace=False)
    pytest.skip(reason)


def missing_reason() -> str | None:
    """Why the mail servers cannot run here, or None when they can."""
    for binary in ("dovecot", "postfix"):
        if shutil.which(binary, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return (
                f"{binary} not found; apt-get install --no-install-recommends "
                "dovecot-imapd dovecot-pop3d postfix"
            )
    for login in ("imap-login", "pop3-login"):
        if not (Path("/usr/lib/dovecot") / login).exists():
            return f"/usr/lib/dovecot/{login} missing; apt-get install dovecot-imapd dovecot-pop3d"
    if not DH_PARAMS.exists():
        return f"{DH_PARAMS} missing (dovecot-core)"
    if os.geteuid() != 0:
        return "Postfix must be started as root (`postfix -c DIR start`)"
    return None


def _sbin(binary: str) -> str:
    found = shutil.which(binary, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    assert found is not None
    return found


# --- certificates ------------------------------------------------------------------------

UTC = dt.UTC


@dataclass(frozen=True)
class Pki:
    """PEM files: the test CA and one chain (leaf + key) per kind of certificate."""

    ca: Path
    good: Path
    expired: Path
    expires_soon: Path
    wrong_host: Path
    self_signed: Path
    weak_key: Path
    localhost: Path  # for "localhost", where mail to the helpdesk mailbox goes


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lotse Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _leaf(
    ca_cert: x509.Certificate | None,
    ca_key: ec.EllipticCurvePrivateKey | None,
    host: str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """A server certificate for `host` signed by the CA (self-signed without one): PEM key+cert."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    issuer_name = ca_cert.subject if ca_cert is not None else _name(host)
    signing_key = ca_key if ca_key is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    cert = builder.sign(signing_key, hashes.SHA256())
    # Key first: Postfix's smtpd_tls_chain_files wants it so (Dovecot does not care).
    return _pem_key(key) + cert.public_bytes(serialization.Encoding.PEM)


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def make_pki(directory: Path) -> Pki:
    """Make the CA and every leaf; EC P-256 keys (fast) except the deliberately weak one."""
    now = dt.datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Lotse Test CA"))
        .issuer_name(_name("Lotse Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    year = dt.timedelta(days=365)
    leaves = {
        "good": _leaf(ca_cert, ca_key, HOST, not_before=now - year, not_after=now + year),
        # Valid dates in the past: OpenSSL's `x509 -req` cannot do this, CertificateBuilder can.
        "expired": _leaf(
            ca_cert, ca_key, HOST, not_before=now - 2 * year, not_after=now - dt.timedelta(days=3)
        ),
        "expires_soon": _leaf(
            ca_cert, ca_key, HOST, not_before=now - year, not_after=now + dt.timedelta(days=5)
        ),
        "wrong_host": _leaf(
            ca_cert, ca_key, "other.lotse.test", not_before=now - year, not_after=now + year
        ),
        "self_signed": _leaf(None, None, HOST, not_before=now - year, not_after=now + year),
        "localhost": _leaf(
            ca_cert, ca_key, "localhost", not_before=now - year, not_after=now + year
        ),
        "weak_key": _leaf(
            ca_cert,
            ca_key,
            HOST,
            not_before=now - year,
            not_after=now + year,
            key=rsa.generate_private_key(public_exponent=65537, key_size=1024),
        ),
    }
    paths: dict[str, Path] = {}
    for name, pem in leaves.items():
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(pem)
        paths[name].chmod(0o644)  # login processes run unprivileged; test keys are no secret
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return Pki(ca=ca_path, **paths)


# --- Dovecot -----------------------------------------------------------------------------

_DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap pop3
listen = {listen}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
ssl = {ssl}
ssl_cert = <{cert}
ssl_key = <{cert}
ssl_dh = <{dh}
disable_plaintext_auth = {disable_plaintext_auth}
auth_mechanisms = plain login
mail_location = maildir:{dir}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/users
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={dir}/mail/%u
}}
service anvil {{
  chroot =
}}
# Login processes serve many clients and are started ahead (Dovecot's "high-performance mode"):
# one fork per connection made a parallel check CPU-bound on 2 cores (0.45 s instead of 0.09 s).
service imap-login {{
  chroot =
  service_count = 0
  process_min_avail = 2
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  chroot =
  service_count = 0
  process_min_avail = 2
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {auth}
  }}
}}
"""


@dataclass(frozen=True)
class DovecotPorts:
    imap: int
    imaps: int
    pop3: int
    pop3s: int
    auth: int


def _dovecot_users() -> tuple[str, str, str]:
    """(internal user, its group, login user): Debian's own users as root, else ourselves."""
    if os.geteuid() == 0:
        return "dovecot", "dovecot", "dovenull"
    import grp
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    return user, grp.getgrgid(os.getgid()).gr_name, user


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes] | None
    directory: Path
    stop_command: list[str] | None = None


def start_dovecot(
    directory: Path,
    cert: Path,
    *,
    disable_plaintext_auth: bool = True,
    auth_port: int | None = None,
) -> tuple[Process, DovecotPorts]:
    directory.mkdir(parents=True)
    directory.chmod(0o755)
    ports = DovecotPorts(
        imap=free_port(),
        imaps=free_port(),
        pop3=free_port(),
        pop3s=free_port(),
        auth=auth_port or free_port(),
    )
    user, group, login_user = _dovecot_users()
    (directory / "users").write_text("anna:{PLAIN}geheim\n")
    conf = directory / "dovecot.conf"
    conf.write_text(
        _DOVECOT_CONF.format(
            dir=directory,
            listen=f"{REMOTE}, {LOCAL}",
            user=user,
            group=group,
            login_user=login_user,
            ssl="yes",
            cert=cert,
            dh=DH_PARAMS,
            disable_plaintext_auth="yes" if disable_plaintext_auth else "no",
            imap=ports.imap,
            imaps=ports.imaps,
            pop3=ports.pop3,
            pop3s=ports.pop3s,
            auth=ports.auth,
        )
    )
    popen = subprocess.Popen(
        [_sbin("dovecot"), "-F", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "stderr.log").open("wb"),
    )
    process = Process("dovecot", popen, directory)
    try:
        for port in (ports.imap, ports.pop3):
            _wait_for_greeting(REMOTE, port, b"* OK" if port == ports.imap else b"+OK", process)
    except Exception:
        stop(process)
        raise
    return process, ports


# --- Postfix -----------------------------------------------------------------------------

# What both Postfix instances (the checked server, the helpdesk mailbox) have in common.
_COMMON_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/postfix.log
maillog_file_prefixes = {dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {host}
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
smtpd_banner = $myhostname ESMTP
smtpd_tls_chain_files = {cert}
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_auth_only = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth}
smtpd_sasl_auth_enable = yes
"""

_MAIN_CF = (
    _COMMON_MAIN_CF
    + """\
smtpd_tls_security_level = may
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_loglevel = 1
"""
)

# A service per line: port, then its `-o` overrides. Commas and spaces need Postfix's braces.
_MASTER_CF_BASE = """\
anvil     unix  -       -       n       -       1       anvil
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
proxymap  unix  -       -       n       -       -       proxymap
rewrite   unix  -       -       n       -       -       trivial-rewrite
"""


@dataclass(frozen=True)
class PostfixPorts:
    submission: int  # 587-like: STARTTLS, encryption required
    smtp: int  # 25-like: STARTTLS offered
    smtps: int  # 465-like: TLS from the first byte
    expired: int
    expires_soon: int
    wrong_host: int
    self_signed: int
    no_starttls: int
    auth_before_tls: int
    legacy: int
    tls10_only: int


def start_postfix(directory: Path, pki: Pki, sasl_port: int) -> tuple[Process, PostfixPorts]:
    directory.mkdir(parents=True)
    directory.chmod(0o755)
    ports = PostfixPorts(*(free_port() for _ in range(11)))
    wrapper = "-o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt"
    services = {
        ports.submission: "-o smtpd_tls_security_level=encrypt",
        ports.smtp: "",
        ports.smtps: wrapper,
        ports.expired: f"{wrapper} -o smtpd_tls_chain_files={pki.expired}",
        ports.expires_soon: f"{wrapper} -o smtpd_tls_chain_files={pki.expires_soon}",
        ports.wrong_host: f"{wrapper} -o smtpd_tls_chain_files={pki.wrong_host}",
        ports.self_signed: f"{wrapper} -o smtpd_tls_chain_files={pki.self_signed}",
        ports.no_starttls: "-o smtpd_tls_security_level=none",
        ports.auth_before_tls: "-o smtpd_tls_auth_only=no",
        # TLS 1.0 up to 1.2 only, one cipher without forward secrecy, a 1024-bit RSA key:
        # OpenSSL 3 needs security level 0 for all of that.
        ports.legacy: (
            f"{wrapper} -o smtpd_tls_chain_files={pki.weak_key}"
            " -o { smtpd_tls_mandatory_protocols = >=TLSv1, <=TLSv1.2 }"
            " -o smtpd_tls_mandatory_ciphers=medium"
            " -o tls_medium_cipherlist=AES128-SHA:@SECLEVEL=0"
        ),
        # Nothing newer than TLS 1.0: current clients cannot connect at all.
        ports.tls10_only: (
            f"{wrapper} -o {{ smtpd_tls_mandatory_protocols = >=TLSv1, <=TLSv1 }}"
            " -o smtpd_tls_mandatory_ciphers=medium"
            " -o tls_medium_cipherlist=DEFAULT:@SECLEVEL=0"
        ),
    }
    master = _MASTER_CF_BASE + "".join(
        f"127.0.0.1:{port} inet n - n - - smtpd {options}\n" for port, options in services.items()
    )
    (directory / "main.cf").write_text(
        _MAIN_CF.format(dir=directory, host=HOST, cert=pki.good, auth=sasl_port)
    )
    (directory / "master.cf").write_text(master)
    _make_queue(directory)
    postfix = _sbin("postfix")
    process = Process(
        "postfix", None, directory, stop_command=[postfix, "-c", str(directory), "stop"]
    )
    # `postfix start` spends about 2 s in checks (`master -t` alone 1.8 s); start the master
    # directly. `-w` waits until it runs, then returns.
    _run([_postfix_master(), "-c", str(directory), "-w"])
    try:
        _wait_for_greeting(LOCAL, ports.submission, b"220 ", process)
    except Exception:
        stop(process)
        raise
    return process, ports


def _postfix_master() -> str:
    daemon_directory = subprocess.run(
        [_sbin("postconf"), "-dh", "daemon_directory"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(daemon_directory) / "master")


def _make_queue(directory: Path) -> None:
    """The queue as Debian's postfix-files lays it out, plus `quick-start`, which tells
    `postfix start` to skip its integrity checks (`set-permissions` took 3 s)."""
    queue = directory / "queue"
    (queue / "pid").mkdir(parents=True)
    for name in ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
                 "incoming", "private", "saved", "trace"):  # fmt: skip
        (queue / name).mkdir(mode=0o700)
        shutil.chown(queue / name, "postfix")
    for name, mode in (("maildrop", 0o1730), ("public", 0o2710)):
        (queue / name).mkdir()
        (queue / name).chmod(mode)
        shutil.chown(queue / name, "postfix", "postdrop")
    (directory / "data").mkdir(mode=0o700)
    shutil.chown(directory / "data", "postfix")
    (queue / "quick-start").touch()


# --- processes ---------------------------------------------------------------------------


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _logs(process: Process) -> str:
    texts = []
    for log in sorted(process.directory.glob("*.log")):
        texts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
    return "\n".join(texts)


def _wait_for_greeting(host: str, port: int, greeting: bytes, process: Process) -> None:
    """Ready means greeting, not just an open port (the listener is up before the login
    process is)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.popen is not None and process.popen.poll() is not None:
            break
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                if sock.recv(256).startswith(greeting):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{process.name} did not greet on {host}:{port}\n{_logs(process)}")


def stop(process: Process) -> None:
    if process.stop_command is not None:
        subprocess.run(process.stop_command, capture_output=True, timeout=30)
    if process.popen is not None and process.popen.poll() is None:
        process.popen.send_signal(signal.SIGTERM)
        try:
            process.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()


# --- the whole set -----------------------------------------------------------------------


@dataclass(frozen=True)
class MailServers:
    pki: Pki
    dovecot: DovecotPorts
    dovecot_bad: DovecotPorts
    postfix: PostfixPorts
    start_seconds: float

    def good_server(self) -> Server:
        """Every endpoint of production's server.yaml, served well (no EAS here)."""
        d, p = self.dovecot, self.postfix
        return Server(
            name=HOST,
            host=HOST,
            address=REMOTE,
            endpoints=[
                Endpoint(protocol="imap", port=d.imaps, security="tls"),
                Endpoint(protocol="imap", port=d.imap, security="starttls"),
                Endpoint(protocol="pop3", port=d.pop3s, security="tls"),
                Endpoint(protocol="pop3", port=d.pop3, security="starttls"),
                Endpoint(protocol="smtp", port=p.smtps, security="tls", address=LOCAL),
                Endpoint(protocol="smtp", port=p.submission, security="starttls", address=LOCAL),
                Endpoint(protocol="smtp", port=p.smtp, security="starttls", address=LOCAL),
            ],
        )

    def server(self, *endpoints: tuple[str, int, str, str]) -> Server:
        """A server with these (protocol, port, security, address) endpoints."""
        return Server(
            name=HOST,
            host=HOST,
            endpoints=[
                Endpoint.model_validate(
                    {"protocol": protocol, "port": port, "security": security, "address": address}
                )
                for protocol, port, security, address in endpoints
            ],
        )


@contextlib.contextmanager
def running_mail_servers(base: Path | None = None) -> Iterator[MailServers]:
    """Start the whole set (about 2 s), yield its ports, stop everything afterwards.

    The three servers start and stop in parallel threads: each mostly waits on its own
    process (Postfix's first greeting takes longest)."""
    reason = missing_reason()
    if reason is not None:
        raise RuntimeError(reason)
    base = base or Path(tempfile.mkdtemp(prefix="lotse-mail-"))
    base.chmod(0o755)
    started = time.monotonic()
    processes: list[Process] = []
    try:
        pki = make_pki(base / "pki")
        sasl_port = free_port()  # Dovecot's auth listener, for Postfix's SASL
        with ThreadPoolExecutor(max_workers=3) as pool:
            good = pool.submit(start_dovecot, base / "dovecot", pki.good, auth_port=sasl_port)
            bad = pool.submit(
                start_dovecot, base / "dovecot-bad", pki.good, disable_plaintext_auth=False
            )
            postfix = pool.submit(start_postfix, base / "postfix", pki, sasl_port)
            for future in (good, bad, postfix):
                with contextlib.suppress(Exception):  # re-raised below, after collecting
                    processes.append(future.result()[0])
            (_, good_ports), (_, bad_ports), (_, postfix_ports) = (
                good.result(),
                bad.result(),
                postfix.result(),
            )
        yield MailServers(pki, good_ports, bad_ports, postfix_ports, time.monotonic() - started)
    finally:
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(stop, processes))
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mail_servers() -> Iterator[MailServers]:
    reason = missing_reason()
    if reason is not None:
        _missing(reason)
    with running_mail_servers() as servers:
        yield servers


# --- a helpdesk mailbox: Postfix that accepts mail and delivers it to a maildir -----------

HELPDESK_DOMAIN = "helpdesk.lotse.test"
HELPDESK_ADDRESS = f"servicedesk@{HELPDESK_DOMAIN}"
# Addresses the mailbox refuses at RCPT: for good (550), and for now (450).
REFUSED_ADDRESS = f"gibt-es-nicht@{HELPDESK_DOMAIN}"
BUSY_ADDRESS = f"voll@{HELPDESK_DOMAIN}"

_MAILBOX_MAIN_CF = (
    _COMMON_MAIN_CF
    + """\
smtpd_tls_security_level = encrypt
# Only a logged-in client may send, as at a university's submission server.
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access inline:{{
    {{ {refused} = 550 5.1.1 Mailbox unavailable }}, {{ {busy} = 450 4.2.1 Mailbox busy }} }},
    permit_sasl_authenticated, reject
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {dir}/mailboxes
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_transport = virtual
"""
)

# Debian's services for accepting, queueing and delivering locally (no outgoing SMTP).
_MAILBOX_MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
127.0.0.1:{submission} inet n - n - - smtpd
127.0.0.1:{smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes
"""


@dataclass(frozen=True)
class Mailbox:
    """The helpdesk's queue address as a maildir, behind Postfix with STARTTLS (submission)
    and implicit TLS (smtps); login "anna"/"geheim" through Dovecot's SASL."""

    submission: int
    smtps: int
    ca: Path
    maildir: Path
    user: str = "anna"
    password: str = "geheim"
    address: str = HELPDESK_ADDRESS

    def url(self, scheme: str = "smtp", port: int | None = None) -> str:
        port = port or (self.smtps if scheme == "smtps" else self.submission)
        return f"{scheme}://{self.user}:{self.password}@localhost:{port}"

    def clear(self) -> None:
        for folder in ("new", "cur", "tmp"):
            for path in (self.maildir / folder).glob("*"):
                path.unlink()

    def messages(self) -> list[email.message.EmailMessage]:
        """The delivered mails in no meaningful order: Postfix delivers in parallel, so which
        file came first says nothing about the order they were sent in."""
        paths = sorted((self.maildir / "new").glob("*"))
        policy = email.policy.default
        found: list[email.message.EmailMessage] = []
        for path in paths:
            message = email.message_from_bytes(path.read_bytes(), policy=policy)
            assert isinstance(message, email.message.EmailMessage)
            found.append(message)
        return found

    async def wait_for(self, count: int) -> list[email.message.EmailMessage]:
        """At least `count` delivered mails (Postfix delivers within a second or so; nothing
        tells when a file lands in the maildir, so this looks every 0.1 s)."""

        def delivered() -> list[email.message.EmailMessage] | None:
            found = self.messages()
            return found if len(found) >= count else None

        mails: list[email.message.EmailMessage] = await wait_until(
            delivered, lambda: f"{count} mails (found {len(self.messages())})", every=0.1
        )
        return mails


def start_mailbox(directory: Path, pki: Pki, sasl_port: int) -> tuple[Process, Mailbox]:
    import pwd

    directory.mkdir(parents=True)
    directory.chmod(0o755)
    nobody = pwd.getpwnam("nobody")
    submission, smtps = free_port(), free_port()
    (directory / "main.cf").write_text(
        _MAILBOX_MAIN_CF.format(
            dir=directory,
            host=HOST,
            cert=pki.localhost,
            auth=sasl_port,
            domain=HELPDESK_DOMAIN,
            refused=REFUSED_ADDRESS,
            busy=BUSY_ADDRESS,
            uid=nobody.pw_uid,
            gid=nobody.pw_gid,
        )
    )
    (directory / "master.cf").write_text(
        _MAILBOX_MASTER_CF.format(submission=submission, smtps=smtps)
    )
    maildir = directory / "mailboxes" / "inbox"
    for folder in ("new", "cur", "tmp"):
        (maildir / folder).mkdir(parents=True)
    for path in (directory / "mailboxes", maildir, *(maildir / f for f in ("new", "cur", "tmp"))):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    _make_queue(directory)
    process = Process(
        "postfix-mailbox",
        None,
        directory,
        stop_command=[_sbin("postfix"), "-c", str(directory), "stop"],
    )
    _run([_postfix_master(), "-c", str(directory), "-w"])
    try:
        _wait_for_greeting(LOCAL, submission, b"220 ", process)
    except Exception:
        stop(process)
        raise
    return process, Mailbox(submission, smtps, pki.ca, maildir)


@pytest.fixture(scope="session")
def helpdesk_mailbox_server(mail_servers: MailServers) -> Iterator[Mailbox]:
    base = Path(tempfile.mkdtemp(prefix="lotse-mailbox-"))
    base.chmod(0o755)
    process, mailbox = start_mailbox(base / "postfix", mail_servers.pki, mail_servers.dovecot.auth)
    try:
        yield mailbox
    finally:
        stop(process)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def helpdesk_mailbox(helpdesk_mailbox_server: Mailbox) -> Mailbox:
    """The helpdesk mailbox, emptied for this test."""
    helpdesk_mailbox_server.clear()
    return helpdesk_mailbox_server
