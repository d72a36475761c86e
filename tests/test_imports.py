"""Start-up cost: the read-only paths load no network or heavy modules (fresh interpreters)."""

import json
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
