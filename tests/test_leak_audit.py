"""The secret-leak audit: one unique canary secret through every command, then search everywhere.

Every CLI command runs as a real process (successes, failures, --json, online checks against
the local fake authority with each of Azure's errors), and dnf installs, reinstalls, is blocked
and is driven by `apply` in an installroot, with rpm at debug verbosity. Then everything those
runs produced is searched: their stdout and stderr, every file in the root (dnf's logs, the
rpm database, the tool's state and journal), dnf's cache and configuration, the temporary
directory they were given, and the environment and command line of every process still
running. The canary may appear only in the settings file and its backup (both mode 0600), in
what OneDesk's own stand-in scripts recorded of the file they source, and in
`show --reveal`'s output. Any other hit fails the test and names the place.
"""

import json
import os
import secrets
import stat
import subprocess
import sys
from datetime import date, timedelta

import pytest
import trustme

from .conftest import CLIENT_ID
from .fake_azure import FakeAzure
from .rpmbed import ENV_RECORDER, ONEDESK, RECORDS, Root

TENANT = "contoso.onmicrosoft.com"
# Current Azure format: a 3-character hint, a digit, "Q~", then 34 characters.
CANARY = "Cnr7Q~" + secrets.token_urlsafe(32)[:34]
AZURE_ANSWERS = ("ok", 7000215, 7000222, 700016, 7000112, 7000229, 53003, 500)


@pytest.fixture(scope="module")
def authority():
    ca = trustme.CA()
    server = FakeAzure(ca, CANARY)
    yield server, ca
    server.close()


class Audit:
    """Runs everything as an administrator would, and keeps every output to search later."""

    def __init__(self, root, tmp_path, authority):
        self.root = root
        self.outputs = []  # (label, text)
        self.allowed_outputs = []  # (label, text): show --reveal, which must hold it
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        self.server, ca = authority
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        self.env = dict(root.env, TMPDIR=str(self.tmp), REQUESTS_CA_BUNDLE=str(bundle),
                        NO_PROXY="127.0.0.1,localhost")

    def cli(self, *args, input=None, allowed=False, env=None):
        argv = [sys.executable, "-c", "from onedesk_azuread.cli import main; main()",
                "--root", self.root.path, *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True,
                                env=env or self.env, check=False)
        label = "onedesk-azuread " + " ".join(args)
        (self.allowed_outputs if allowed else self.outputs).append(
            (label, result.stdout + result.stderr))
        return result

    def dnf(self, *args):
        result = subprocess.run(self.root.dnf_argv("--rpmverbosity=debug", *args),
                                capture_output=True, text=True, env=self.env, check=False)
        self.outputs.append(("dnf " + " ".join(args), result.stdout + result.stderr))
        return result

    def online(self, command, answer, input=None):
        self.server.token = answer
        return self.cli(*command, "--tenant", TENANT, "--authority-host", self.server.url,
                        input=input)


def _files_under(top):
    for directory, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def _running_processes():
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            yield pid


def test_the_canary_appears_only_where_it_must(bed, tmp_path, authority):
    root = Root(bed, tmp_path / "root")
    try:
        _audit(root, Audit(root, tmp_path, authority), tmp_path)
    finally:
        root.stop_recorder_daemon()


def _audit(root, audit, tmp_path):
    expires = (date.today() + timedelta(days=200)).isoformat()
    soon = (date.today() + timedelta(days=5)).isoformat()
    past = (date.today() - timedelta(days=5)).isoformat()

    # --- the CLI: successes and failures, text and --json ----------------------------------
    assert audit.cli("set", "--client-id", CLIENT_ID, "--secret-stdin", "--expires", expires,
                     input=CANARY + "\n").returncode == 0
    for args in (("show",), ("show", "--json"), ("check",), ("check", "--json"),
                 ("status",), ("status", "--json"), ("apply", "--dry-run")):
        audit.cli(*args)
    revealed = audit.cli("show", "--reveal", allowed=True)
    assert CANARY in revealed.stdout  # the one output that must hold it
    for bad in (CANARY + " trailing", CANARY + "\nsecond line", CANARY[:10], "x" * 80):
        assert audit.cli("set", "--secret-stdin", input=bad).returncode != 0
    assert audit.cli("set", "--client-id", "not-a-guid").returncode == 1
    assert audit.cli("set", "--expires", soon).returncode == 0  # a warning: expires soon
    audit.cli("check")
    assert audit.cli("set", "--expires", past).returncode == 1  # refused: already expired
    assert audit.cli("set", "--expires", past, "--force").returncode == 0
    assert audit.cli("check", "--json").returncode == 1  # expired
    assert audit.cli("set", "--expires", expires).returncode == 0
    # Made messy the way Windows editors do, then repaired.
    with open(root.settings, "w", newline="") as handle:
        handle.write(f"OTHER=1\r\nAZUREAD_CID = {{{CLIENT_ID}}}\r\nAZUREAD_CIS={CANARY}\r\n")
    os.chmod(root.settings, 0o600)
    audit.cli("check")
    audit.cli("check", "--json")
    assert audit.cli("check", "--fix").returncode == 0

    # --- online: every answer Azure gives, for check --online and set --verify -------------
    for answer in AZURE_ANSWERS:
        audit.online(("check", "--online"), answer)
        audit.online(("check", "--online", "--json"), answer)
        audit.online(("set", "--secret-stdin", "--verify"), answer, input=CANARY)
    assert all(CANARY not in str(seen) for seen in audit.server.seen)

    # --- dnf: install, reinstall, a blocked transaction, apply -----------------------------
    # env-recorder's install script leaves a process running as nobody: searched below.
    assert audit.dnf("install", *ONEDESK, "unrelated-tool", ENV_RECORDER).returncode == 0
    assert root.recorder_daemon() is not None
    assert audit.dnf("reinstall", "onedesk-db-utils").returncode == 0
    good = open(root.settings).read()
    with open(root.settings, "w") as handle:
        handle.write(good.replace(CLIENT_ID, "onedesk-app"))  # stops dnf; the secret is there
    assert audit.dnf("reinstall", "onedesk-db-utils").returncode == 1
    with open(root.settings, "w") as handle:
        handle.write(good)
    assert audit.cli("set", "--secret-stdin", input=CANARY[::-1]).returncode == 0
    assert audit.cli("set", "--secret-stdin", input=CANARY).returncode == 0
    env = dict(audit.env, ONEDESK_AZUREAD_DNF=f"dnf -c {root.conf} --releasever=9 "
                                              f"--rpmverbosity=debug")
    applied = audit.cli("apply", "--yes", env=env)
    assert applied.returncode == 0, applied.stderr[-2000:]
    assert audit.cli("status").returncode == 0
    audit.cli("unset")

    # --- search everything ---------------------------------------------------------------
    hits = []
    for label, text in audit.outputs:
        if CANARY in text:
            hits.append(f"output of {label}")
        if "Traceback" in text:
            hits.append(f"a traceback in the output of {label}")
    for label, text in audit.allowed_outputs:
        if "Traceback" in text:
            hits.append(f"a traceback in the output of {label}")
    settings_files = {root.settings, root.settings + ".bak"}
    for path in settings_files:
        if os.path.exists(path):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    # OneDesk's stand-in install scripts record the file they source: that is their job.
    onedesk_records = tuple(os.path.join(root.path, RECORDS, name) + os.sep for name in ONEDESK)
    needle = CANARY.encode()
    for path in _files_under(str(tmp_path)):
        if path in settings_files or path.startswith(onedesk_records):
            continue
        try:
            with open(path, "rb") as handle:
                if needle in handle.read():
                    hits.append(f"file {os.path.relpath(path, str(tmp_path))}")
        except OSError:
            continue
    for pid in _running_processes():
        for what in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            if needle in data:
                hits.append(f"/proc/{pid}/{what}")
    # Our own process holds the canary as a Python constant, not in its environment.
    assert not hits, "the canary secret leaked to: " + "; ".join(hits)
    assert json.loads(audit.cli("show", "--json").stdout)["secret"] is None  # unset worked
