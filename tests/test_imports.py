"""Start-up cost: the read-only paths load no network or heavy modules (fresh interpreters)."""

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from onedesk_azuread.cli import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
heavy = ["msal", "requests", "urllib3", "configobj", "hashlib", "dnf"]
print(json.dumps({name: name in sys.modules for name in heavy}), file=sys.stderr)
"""


def loaded(*args):
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("command", [["show"], ["show", "--json"], ["check"]])
def test_read_paths_never_load_msal_or_requests(root, command):
    modules = loaded("--root", str(root), *command)
    assert not modules["msal"] and not modules["requests"] and not modules["urllib3"]
    assert not modules["dnf"]


def test_show_does_not_even_load_the_validator_or_openssl(root):
    modules = loaded("--root", str(root), "show")
    assert not modules["configobj"] and not modules["hashlib"]


def test_the_plugin_path_never_loads_msal_or_requests(root):
    settings = root / "root" / ".OneDesk"
    settings.write_text("AZUREAD_CID=0b5c3a1e-7d2f-4c8a-9e61-3f4d2b1a0c9e\n"
                        "AZUREAD_CIS=Xk74Q~pL.mN3-rT_vW8yZ1aB2cD3eF4gH5iJ6kL7\n")
    probe = ("import json, sys\n"
             "from onedesk_azuread import hook\n"
             "from onedesk_azuread.paths import Paths\n"
             "paths = Paths.under(sys.argv[1])\n"
             "assert not hook.preflight(paths, True).blocking\n"
             "repaired, env = hook.inject(paths)\n"
             "hook.record(paths, env, ['onedesk-db-utils-1-1.noarch'])\n"
             "print(json.dumps([m for m in ('msal', 'requests', 'urllib3', 'click')"
             " if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", probe, str(root)], capture_output=True,
                          text=True, check=True)
    assert json.loads(proc.stdout) == []


def test_an_offline_scheduled_check_never_loads_msal(root, configured):
    modules = loaded("--root", str(root), "check", "--scheduled")
    assert not modules["msal"] and not modules["requests"] and not modules["dnf"]


def test_the_test_beds_import_without_pytest():
    # `make sid` makes the sid root with the system Python, which has no pytest: the bed
    # modules must not reach for conftest (or anything else of pytest's).
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "import sys; sys.modules['pytest'] = None; import tests.rpmbed, tests.dnf5bed"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=here, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_dnf5_post_transaction_never_loads_the_bash_scanner(root, configured):
    # dnf 5 starts the hook once per callback; post_transaction only renames a hand-off, and
    # the scanner and validator (and re, which state no longer needs) are most of the rest of
    # the package's import time.
    probe = ("import json, os, sys\n"
             "before = set(sys.modules)\n"  # an editable install's finder brings typing
             "from onedesk_azuread import dnf5hook\n"
             "dnf5hook.main(['--root=' + sys.argv[1], 'post_transaction', 'I',"
             " 'onedesk-db-utils-1-1.noarch', str(os.getpid())])\n"
             "names = ('onedesk_azuread.bashscan', 'onedesk_azuread.validation',"
             " 'onedesk_azuread.operations', 're', 'typing', 'click')\n"
             "print(json.dumps([m for m in names if m in set(sys.modules) - before]))")
    proc = subprocess.run([sys.executable, "-c", probe, str(root)], capture_output=True,
                          text=True, check=True)
    assert json.loads(proc.stdout.splitlines()[-1]) == []
