"""The README's Ansible example (docs/ansible/), run for real: ansible-playbook against
localhost (ansible_connection=local) with the tool's --root at a throw-away installroot of
the rpm bed, so that `set` writes its settings file and the handler's `apply` reinstalls
the OneDesk stand-ins with real dnf. The playbook and its ansible.cfg are used as shipped;
the inventory (group_vars, the secret encrypted with ansible-vault) is the test's.

ansible-core comes from setup.py's test extra (the host venv): its controller needs Python
3.10+. The floor venv and the Debian 11 stages have none, so they deselect every test that
uses the `ansible` fixture (`--deselect-fixture=ansible`, tools/pytest_bed.py).
"""

import json
import os
import re
import shlex
import stat
import subprocess
import sys

import pytest

from .conftest import CLIENT_ID, GOOD, OTHER_SECRET, SECRET, bash_reads
from .rpmbed import HERE, ONEDESK, cli

DOCS = os.path.join(HERE, "docs", "ansible")
PLAYBOOK = os.path.join(DOCS, "onedesk-azuread.yml")
CONFIG = os.path.join(DOCS, "ansible.cfg")
EXPIRES = "2028-05-31"

SET = "Azure AD entries in /root/.OneDesk"
REFUSED = "Why the Azure AD entries were refused"
STATUS = "OneDesk packages carry the Azure AD entries"
APPLY = "Reinstall OneDesk with the Azure AD entries"

ONEDESK_INSTALLED = sorted(f"{name}-2.0-1" for name in ONEDESK)


@pytest.fixture(scope="session")
def ansible():
    """ansible-playbook from the venv that runs the tests (setup.py's test extra)."""
    path = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    assert os.access(path, os.X_OK), (
        f"{path} is missing: install the test extra (make venv, or pip install -e '.[test]'), "
        f"or deselect these tests with --deselect-fixture=ansible")
    return path


class Controller:
    """ansible-playbook run against localhost, for one bed root, with every file Ansible
    writes (its home, temporary directories and log) inside ``top``."""

    def __init__(self, ansible, root, top):
        self.ansible = ansible
        self.root = root
        self.top = str(top)
        self.home = os.path.join(self.top, "ansible-home")
        self.remote_tmp = os.path.join(self.home, "remote-tmp")
        self.log = os.path.join(self.home, "ansible.log")
        bindir = os.path.join(self.top, "bin")
        os.makedirs(bindir)
        # Stands for the installed /usr/bin/onedesk-azuread: the packaged CLI (make rpm),
        # with dnf set up for this root.
        wrapper = os.path.join(bindir, "onedesk-azuread")
        dnf = root.env["ONEDESK_AZUREAD_DNF"]
        with open(wrapper, "w") as handle:
            handle.write("#!/bin/sh\n"
                         f"export PYTHONPATH={shlex.quote(root.bed.sitelib)}\n"
                         f"export ONEDESK_AZUREAD_DNF={shlex.quote(dnf)}\n"
                         f'exec /usr/bin/python3 -s {shlex.quote(root.bed.cli)} "$@"\n')
        os.chmod(wrapper, 0o755)
        # The inventory as the README lays it out: the group's variables in group_vars,
        # the secret encrypted with ansible-vault.
        self.inventory = os.path.join(self.top, "inventory")
        os.makedirs(os.path.join(self.inventory, "group_vars"))
        with open(os.path.join(self.inventory, "hosts"), "w") as handle:
            # become: true is for real servers; the test runs as root, without sudo.
            handle.write("[onedesk]\nlocalhost ansible_connection=local ansible_become=false "
                         "ansible_python_interpreter=/usr/bin/python3\n")
        self.vault_password = os.path.join(self.top, "vault-password")
        with open(self.vault_password, "w") as handle:
            handle.write("a vault password for the test\n")
        self.vaulted = {}
        self.env = dict(root.bed.env)  # HOME: rpm's private database settings (rpmbed)
        self.env.update({
            "PATH": f"{bindir}:{self.env['PATH']}",
            "ANSIBLE_CONFIG": CONFIG,
            "ANSIBLE_HOME": self.home,
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.home, "local-tmp"),
            "ANSIBLE_REMOTE_TEMP": self.remote_tmp,
            "ANSIBLE_LOG_PATH": self.log,
            "ANSIBLE_NOCOLOR": "1",
        })

    def vault(self, secret):
        """`onedesk_azuread_secret: !vault |...`, as ansible-vault encrypt_string gives it
        (the secret on its stdin)."""
        if secret not in self.vaulted:
            tool = os.path.join(os.path.dirname(self.ansible), "ansible-vault")
            result = subprocess.run(
                [tool, "encrypt_string", "--vault-password-file", self.vault_password,
                 "--stdin-name", "onedesk_azuread_secret"], input=secret, env=self.env,
                capture_output=True, text=True, check=False, timeout=120)
            assert result.returncode == 0, result.stderr
            assert secret not in result.stdout and "$ANSIBLE_VAULT;" in result.stdout
            self.vaulted[secret] = result.stdout
        return self.vaulted[secret]

    def play(self, secret=SECRET, client_id=CLIENT_ID, playbook=PLAYBOOK, extra_env=None,
             verbose=False, check=False):
        with open(os.path.join(self.inventory, "group_vars", "onedesk.yml"), "w") as handle:
            handle.write(f"onedesk_azuread_client_id: {json.dumps(client_id)}\n"
                         f"onedesk_azuread_expires: {json.dumps(EXPIRES)}\n"
                         f"onedesk_azuread_root: {json.dumps(self.root.path)}\n"
                         + self.vault(secret))
        argv = [self.ansible, "-i", self.inventory, "--vault-password-file",
                self.vault_password, playbook]
        if verbose:
            argv.append("-vvv")
        if check:
            argv.append("--check")
        result = subprocess.run(argv, check=False, env=dict(self.env, **(extra_env or {})),
                                cwd=self.top, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=600)
        return result

    def files_holding(self, text):
        """The files under Ansible's home (temporary directories, log) that contain ``text``."""
        found = []
        for top, _dirs, files in os.walk(self.home):
            for name in files:
                path = os.path.join(top, name)
                with open(path, "rb") as handle:
                    if text.encode() in handle.read():
                        found.append(path)
        return found


def outcomes(stdout):
    """[(task or handler name, first status line)] from the default callback's output."""
    found = []
    for line in stdout.splitlines():
        header = re.match(r"(TASK|RUNNING HANDLER) \[(.+)\] \*+$", line)
        if header:
            found.append([header.group(2), None])
            continue
        status = re.match(r"(ok|changed|failed|fatal|skipping): \[localhost\]", line)
        if status and found and found[-1][1] is None:
            found[-1][1] = status.group(1)
    return [tuple(item) for item in found]


def recap(stdout):
    """localhost's PLAY RECAP counters."""
    lines = [line for line in stdout.splitlines() if re.match(r"localhost\s+: ok=", line)]
    assert len(lines) == 1, stdout[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", lines[0])}


def assert_secret_nowhere(controller, result, *secrets):
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr
        assert controller.files_holding(secret) == []
        assert secret not in controller.root.logs()  # dnf's logs in the root
    # Pipelining (the shipped ansible.cfg): no module, no arguments, ever went to a file
    # in the remote temporary directory (see the control test below).
    assert not os.path.exists(controller.remote_tmp)


def test_playbook_rotates_the_secret_reinstalls_once_then_changes_nothing(ansible, new_root,
                                                                         tmp_path):
    root = new_root()
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)  # a running server, installed with SECRET
    controller = Controller(ansible, root, tmp_path)

    first = controller.play(secret=OTHER_SECRET, verbose=True)
    assert first.returncode == 0, first.stdout[-3000:]
    assert outcomes(first.stdout) == [(SET, "changed"), (STATUS, "changed"), (APPLY, "changed")]
    assert recap(first.stdout)["changed"] == 3 and recap(first.stdout)["failed"] == 0
    assert bash_reads(root.settings, "AZUREAD_CID", "AZUREAD_CIS", "OTHER_SETTING") == [
        CLIENT_ID, OTHER_SECRET, "kept"]
    assert stat.S_IMODE(os.stat(root.settings).st_mode) == 0o600
    # apply reinstalled every package, and each install script sourced the new secret.
    assert root.installed() == ONEDESK_INSTALLED
    for name in ONEDESK:
        assert root.seen(name)["sourced_cis"] == OTHER_SECRET, name
        assert root.seen(name)["args"] == ["1", "1"], name  # installed, removed, installed
    now = json.loads(cli(root, "status", "--json").stdout)
    assert (now["state"], now["expires"]) == ("in sync", EXPIRES)
    runs = {name: root.seen(name)["runs"] for name in ONEDESK}

    second = controller.play(secret=OTHER_SECRET, verbose=True)
    assert second.returncode == 0, second.stdout[-3000:]
    assert outcomes(second.stdout) == [(SET, "ok"), (STATUS, "ok")]  # no handler
    assert recap(second.stdout)["changed"] == 0 and recap(second.stdout)["failed"] == 0
    assert {name: root.seen(name)["runs"] for name in ONEDESK} == runs  # nothing reinstalled
    assert json.loads(cli(root, "status", "--json").stdout)["state"] == "in sync"

    for result in (first, second):
        assert_secret_nowhere(controller, result, SECRET, OTHER_SECRET)
    assert "censored" in first.stdout  # -vvv shows set's result only as hidden


def test_a_failed_reinstall_is_done_by_the_next_run(ansible, new_root, tmp_path):
    """A handler runs only in the run that notified it: the status task notifies it again
    in the next run, whose `set` changes nothing."""
    root = new_root(repo="partial")  # onedesk-customerapps cannot be installed again
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK[:3])
    controller = Controller(ansible, root, tmp_path)

    failed = controller.play(secret=OTHER_SECRET)
    assert failed.returncode == 2, failed.stdout[-3000:]
    assert outcomes(failed.stdout) == [(SET, "changed"), (STATUS, "changed"), (APPLY, "fatal")]
    assert "no enabled repository offers onedesk-customerapps" in failed.stdout
    assert root.installed() == sorted(f"{name}-2.0-1" for name in ONEDESK[:3])  # untouched
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET

    root.set_repo("main")
    retried = controller.play(secret=OTHER_SECRET)
    assert retried.returncode == 0, retried.stdout[-3000:]
    assert outcomes(retried.stdout) == [(SET, "ok"), (STATUS, "changed"), (APPLY, "changed")]
    assert root.installed() == ONEDESK_INSTALLED
    assert root.seen("onedesk-db-utils")["sourced_cis"] == OTHER_SECRET
    assert json.loads(cli(root, "status", "--json").stdout)["state"] == "in sync"
    for result in (failed, retried):
        assert_secret_nowhere(controller, result, SECRET, OTHER_SECRET)


def test_check_mode_reports_a_server_that_is_not_in_sync_and_changes_nothing(ansible, new_root,
                                                                            tmp_path):
    root = new_root()
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    assert cli(root, "set", "--secret-stdin", input=OTHER_SECRET).exit_code == 0  # pending
    before = open(root.settings).read()
    controller = Controller(ansible, root, tmp_path)
    result = controller.play(secret=OTHER_SECRET, check=True)
    assert result.returncode == 0, result.stdout[-3000:]
    # set and apply do not run in check mode; status, read-only, does and says "changed".
    assert outcomes(result.stdout) == [(SET, "skipping"), (STATUS, "changed"),
                                       (APPLY, "skipping")]
    assert open(root.settings).read() == before
    assert root.seen("onedesk-db-utils")["runs"] == 1
    assert json.loads(cli(root, "status", "--json").stdout)["state"] == "pending"
    assert_secret_nowhere(controller, result, SECRET, OTHER_SECRET)


def test_refused_entries_fail_the_play_with_the_tools_message_and_no_secret(ansible, new_root,
                                                                            tmp_path):
    root = new_root()
    root.write_settings(GOOD)
    controller = Controller(ansible, root, tmp_path)
    result = controller.play(client_id="onedesk-app", verbose=True)
    assert result.returncode == 2
    assert outcomes(result.stdout) == [(SET, "fatal"), (REFUSED, "fatal")]
    assert recap(result.stdout)["rescued"] == 1 and recap(result.stdout)["failed"] == 1
    # no_log hid set's result; the rescue prints the tool's one-line error instead.
    assert "onedesk-azuread set failed (exit 1)" in result.stdout
    assert "AZUREAD_CID is not a GUID" in result.stdout
    assert open(root.settings).read() == GOOD  # nothing written
    assert root.installed() == []  # no apply
    assert_secret_nowhere(controller, result, SECRET)


def test_control_without_no_log_and_pipelining_the_secret_leaks(ansible, new_root, tmp_path):
    """The checks above can fail: the same play with no_log off and Ansible's default
    (no pipelining: the module and its arguments are copied to a file on the server, here
    kept) puts the secret where they look. -vvv prints a task's arguments (`invocation`):
    ansible-core 2.19 always returns them, 2.21 only with inject_invocation."""
    root = new_root()
    root.write_settings(GOOD)
    controller = Controller(ansible, root, tmp_path)
    with open(PLAYBOOK) as handle:
        text = handle.read()
    assert text.count("no_log: true") == 1
    leaky = tmp_path / "leaky.yml"
    leaky.write_text(text.replace("no_log: true", "no_log: false"))
    result = controller.play(client_id="onedesk-app", playbook=str(leaky), verbose=True,
                             extra_env={"ANSIBLE_PIPELINING": "False",
                                        "ANSIBLE_KEEP_REMOTE_FILES": "1",
                                        "ANSIBLE_INJECT_INVOCATION": "1"})
    assert result.returncode == 2
    assert SECRET in result.stdout  # the task's arguments: stdin
    assert SECRET in open(controller.log).read()
    assert any(path.startswith(controller.remote_tmp) and path.endswith("AnsiballZ_command.py")
               for path in controller.files_holding(SECRET))
    assert open(root.settings).read() == GOOD
