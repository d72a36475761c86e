"""Shared fixtures: a throw-away root, the CLI through click's CliRunner, bash as the oracle."""

import os
import socket
import subprocess
from datetime import date, timedelta

import pytest
from click.testing import CliRunner

from onedesk_azuread.cli import cli

# Made-up credentials in Azure's real formats. Never real ones.
CLIENT_ID = "0b5c3a1e-7d2f-4c8a-9e61-3f4d2b1a0c9e"
SECRET = "Xk74Q~pL.mN3-rT_vW8yZ1aB2cD3eF4gH5iJ6kL7"  # current format, 40 characters
OTHER_SECRET = "Qa92Q~zY8xW7vU6tS5rQ4pO3nM2lK1jI0hG9fE8d"
SECRET_ID = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"  # what a pasted Secret ID looks like
# A settings file with valid entries beside a setting of OneDesk's own, which every write keeps.
GOOD = f"OTHER_SETTING=kept\nAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"


def make_runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into output unless told not to
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


class Cli:
    """Runs `onedesk-azuread --root ROOT ...` in-process and keeps the result."""

    def __init__(self, root):
        self.root = str(root)
        self.runner = make_runner()

    def __call__(self, *args, input=None, root=True):
        argv = (["--root", self.root] if root else []) + list(args)
        result = self.runner.invoke(cli, argv, input=input, catch_exceptions=False)
        return result


@pytest.fixture(scope="session")
def bed(tmp_path_factory):
    """The rpm + dnf test bed (tests/rpmbed.py), built once for every module that uses it."""
    from .rpmbed import Bed

    return Bed(str(tmp_path_factory.mktemp("rpmbed")))


@pytest.fixture
def new_root(bed, tmp_path):
    """A factory of throw-away installroots on the bed (options: see rpmbed.Root)."""
    from .rpmbed import Root

    count = []

    def make(**options):
        count.append(1)
        return Root(bed, tmp_path / f"root{len(count)}", **options)
    return make


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "sysroot"
    (path / "root").mkdir(parents=True)
    os.chmod(path / "root", 0o700)
    return path


@pytest.fixture
def paths(root):
    """The library's view of ``root``: for the tests that call the library directly."""
    from onedesk_azuread.paths import Paths

    return Paths.under(str(root))


# What a refused or failed write must leave unchanged.
SNAPSHOT_LOCK = os.path.join("var", "lib", "onedesk-azuread", "lock")


def snapshot(directory):
    """Every file below ``directory`` with its bytes and mode, to compare before and after.

    Except the lock file, which a refused write may have created: it stays empty
    and root's alone (asserted), and holds nothing that could be lost.
    """
    found = {}
    for base, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            if path.endswith(os.sep + SNAPSHOT_LOCK):
                assert (st.st_mode, st.st_size, st.st_uid) == (0o100600, 0, os.geteuid())
                continue
            found[path] = (st.st_mode, open(path, "rb").read() if os.path.isfile(path) else None)
    return found


def write_settings(paths, text):
    with open(paths.settings, "w", newline="") as handle:
        handle.write(text)
    os.chmod(paths.settings, 0o600)


def read_settings(paths):
    with open(paths.settings, newline="") as handle:
        return handle.read()


@pytest.fixture
def settings_path(root):
    return root / "root" / ".OneDesk"


@pytest.fixture
def run(root):
    return Cli(root)


@pytest.fixture
def linked(settings_path):
    """A second name (hard link) for a settings file that check --fix would repair."""
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\r\nAZUREAD_CIS={SECRET}\r\n")
    os.chmod(settings_path, 0o644)
    other = settings_path.parent / "copy-of-settings"
    os.link(settings_path, other)
    return other


# --- A configured pair, the daily check's files, and a fake Azure AD ---------------------------

TENANT = "contoso.onmicrosoft.com"


@pytest.fixture
def configured(settings_path):
    """A valid pair in the settings file, root's alone (mode 0600)."""
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n")
    settings_path.chmod(0o600)
    return settings_path


def state_dir(root):
    return os.path.join(str(root), "var/lib/onedesk-azuread")


def expire_in(root, days, secret=SECRET, today=None):
    """Record that ``secret`` expires ``days`` after ``today``; the date recorded."""
    from onedesk_azuread import state

    when = (today or date.today()) + timedelta(days=days)
    state.save_expiry(state_dir(root), secret, when)
    return when


def write_conf(root, text):
    """check.conf in ``root``, with ``text``; its path."""
    path = os.path.join(str(root), "etc/onedesk-azuread/check.conf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def no_traceback(result):
    assert "Traceback" not in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def ca():
    import trustme

    return trustme.CA()


@pytest.fixture(scope="module")
def azure_server(ca):
    from .fake_azure import FakeAzure

    server = FakeAzure(ca, SECRET)
    yield server
    server.close()


@pytest.fixture
def azure(azure_server, ca, monkeypatch, tmp_path):
    """The fake authority, trusted the way an administrator trusts a private CA."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    for name in ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                 "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    azure_server.token = "ok"
    azure_server.discovery_status = 200
    azure_server.missing_tenants = {"missing.example.com"}
    del azure_server.seen[:]
    return azure_server


def closed_port_url():
    """An https URL on 127.0.0.1 where nothing listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"https://127.0.0.1:{port}"


def bash_reads(path, *keys):
    """What bash assigns to ``keys`` when it sources ``path`` (None when unset)."""
    script = 'set -a; . "$1" >/dev/null 2>&1; shift; for k; do ' \
             'if [ -n "${!k+x}" ]; then printf "1%s\\0" "${!k}"; else printf "0\\0"; fi; done'
    out = subprocess.run(["bash", "-c", script, "bash", str(path), *keys],
                         capture_output=True, check=True, env={"PATH": os.environ["PATH"]}).stdout
    values = out.split(b"\0")[:-1]
    return [v[1:].decode("utf-8") if v[:1] == b"1" else None for v in values]


# --- No test reaches beyond this machine ------------------------------------------------------
# Every connect() and name lookup in the test process is checked: anything outside 127.0.0.0/8
# (or ::1, or localhost) is refused and recorded, and the test that tried it fails, even if the
# code under test swallowed the error.
import ipaddress  # noqa: E402

_outside_attempts = []


def _is_local(host):
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        address = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return address.is_loopback


_real_connect = socket.socket.connect
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _outside_attempts.append(address)
        raise ConnectionRefusedError(111, f"test network guard: {address[0]} is off limits")
    return _real_connect(sock, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_local(host if isinstance(host, str) else host.decode()):
        _outside_attempts.append(host)
        raise socket.gaierror(socket.EAI_NONAME, f"test network guard: {host} is off limits")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture(autouse=True)
def _bash_asked_afresh():
    """bashcheck remembers its last verdict within a process: each test asks bash anew."""
    from onedesk_azuread import bashcheck

    del bashcheck._last[:]


@pytest.fixture(autouse=True)
def _no_outside_network():
    del _outside_attempts[:]
    yield
    assert not _outside_attempts, f"a test tried to reach beyond 127.0.0.0/8: {_outside_attempts}"
