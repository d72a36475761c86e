"""dnf5hook: the hand-off between dnf 5's pre_transaction and post_transaction, without dnf5.

`dnf5hook.run` is called as the actions plugin's command would call it, with a real pid
(the test's own, or a real child's) and a throw-away root; the real dnf 5 runs are in
test_dnf5.py. What these prove: a hand-off is this run's or it is never adopted, and
nothing under the state directory is followed, whatever was planted there.
"""

import json
import os
import stat
import subprocess
import sys

import pytest

from onedesk_azuread import dnf5hook, state

from .conftest import CLIENT_ID, OTHER_SECRET, SECRET, snapshot

GOOD = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
NEVRA = "onedesk-db-utils-2.0-1.noarch"
STATE = os.path.join("var", "lib", "onedesk-azuread")
NOT_RECORDED = "nothing was recorded as applied"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (CI runs as root)")


@pytest.fixture
def sysroot(tmp_path):
    """A system root with good entries in /root/.OneDesk."""
    path = tmp_path / "sysroot"
    (path / "root").mkdir(parents=True, mode=0o700)
    (path / "root" / ".OneDesk").write_text(GOOD)
    (path / "root" / ".OneDesk").chmod(0o600)
    return path


def state_dir(sysroot):
    path = sysroot / STATE
    path.mkdir(parents=True, mode=0o700, exist_ok=True)
    return path


def call(sysroot, callback, pid=None, nevra=NEVRA):
    """One callback as dnf 5 runs it: (its stdout lines, what it said on stderr)."""
    said = []
    call = dnf5hook.Call(callback, str(sysroot), "I", nevra, str(pid or os.getpid()))
    text = dnf5hook.run(call, say=said.append)
    lines = text.splitlines()
    assert SECRET not in text and all(SECRET not in line for line in said)
    return lines, said


def errors(lines):
    return [line for line in lines if line.startswith(("error=", "stop="))]


def identity(pid):
    """What the hook names a run's hand-off: pid, start time (stat field 22) and the boot."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        line = handle.read()
    start = line[line.rindex(b")") + 2:].split()[19].decode()
    with open("/proc/sys/kernel/random/boot_id") as handle:
        return f"{pid}-{start}-{handle.read().strip()}"


def old_hand_off(sysroot, name, secret=SECRET, packages=("old-tool-1-1.noarch",)):
    """A hand-off some earlier dnf 5 run left behind, holding a record of its own."""
    handoff = state_dir(sysroot) / dnf5hook.HANDOFF_DIR / name
    handoff.mkdir(parents=True, mode=0o700)
    (handoff.parent).chmod(0o700)
    state.record_applied(str(handoff), CLIENT_ID, secret, list(packages))
    return handoff


def applied(sysroot):
    path = sysroot / STATE / state.APPLIED_FILE
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture
def other_run():
    """A live process other than this one: another dnf 5 run's pid."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


# --- the hand-off is this run's, or it is never adopted ------------------------------------

def test_a_hand_off_belongs_to_one_dnf5_run(sysroot, other_run):
    pending = sysroot / STATE / dnf5hook.HANDOFF_DIR
    lines, _ = call(sysroot, "pre_transaction", pid=other_run)  # that run then failed
    assert not errors(lines)
    assert os.listdir(pending) == [identity(other_run)]
    lines, said = call(sysroot, "post_transaction")  # no hand-off of its own: nothing recorded
    assert not errors(lines) and applied(sysroot) is None
    assert len(said) == 1 and NOT_RECORDED in said[0] and identity(other_run) in said[0]
    call(sysroot, "pre_transaction")
    call(sysroot, "pre_transaction", nevra="onedesk-webapps-2.0-1.noarch")  # a second trigger
    assert os.listdir(pending) == [identity(os.getpid())]  # the stale one is gone
    assert stat.S_IMODE(os.stat(pending).st_mode) == 0o700
    assert call(sysroot, "post_transaction") == ([], [])
    record = applied(sysroot)
    assert record["packages"] == [NEVRA, "onedesk-webapps-2.0-1.noarch"]
    assert state.sync_state(record, CLIENT_ID, SECRET) == state.IN_SYNC
    # The second trigger's post_transaction: this run's hand-off, already recorded: quiet.
    assert call(sysroot, "post_transaction", nevra="onedesk-webapps-2.0-1.noarch") == ([], [])
    assert applied(sysroot) == record


@pytest.mark.parametrize("name", [
    "{pid}",  # what earlier versions named a hand-off: the pid alone
    "{pid}-1-00000000-0000-0000-0000-000000000000",  # the same pid in an earlier boot
])
def test_a_hand_off_of_an_earlier_run_with_the_same_pid_is_never_adopted(sysroot, name):
    # A transaction that failed after its pre_transaction left this; pids repeat after a
    # reboot and in every new container, so this run's pid may well be the same.
    stale = old_hand_off(sysroot, name.format(pid=os.getpid()), secret=OTHER_SECRET)
    lines, said = call(sysroot, "post_transaction")
    assert not errors(lines)  # the packages are installed: dnf 5 is not failed for it
    assert applied(sysroot) is None
    [warning] = [line for line in lines if line.startswith("log.WARNING=")]
    assert NOT_RECORDED in warning and stale.name in warning
    assert said == [warning[len("log.WARNING="):]]
    assert "apply" in warning  # what makes the record right


def test_pre_transaction_removes_a_same_pid_hand_off_instead_of_adding_to_it(sysroot):
    old_hand_off(sysroot, str(os.getpid()), secret=OTHER_SECRET)
    lines, _ = call(sysroot, "pre_transaction")
    assert not errors(lines)
    assert os.listdir(sysroot / STATE / dnf5hook.HANDOFF_DIR) == [identity(os.getpid())]
    call(sysroot, "post_transaction")
    record = applied(sysroot)
    assert record["packages"] == [NEVRA]  # not the failed run's packages
    assert state.sync_state(record, CLIENT_ID, SECRET) == state.IN_SYNC


def test_without_proc_nothing_is_handed_off_or_recorded_and_it_is_said(sysroot, monkeypatch):
    # A chroot without /proc: no run can be told from another, so nothing is recorded;
    # the install itself goes on (the file is still checked and repaired).
    monkeypatch.setattr(dnf5hook, "PROC_STAT", str(sysroot / "no-proc" / "{pid}" / "stat"))
    lines, said = call(sysroot, "pre_transaction")
    assert not errors(lines)
    assert any("validated and canonical" in line for line in lines)
    assert len(said) == 2 and "cannot tell this dnf 5 run" in said[0]
    assert "run dnf 5 with /proc mounted" in said[0]
    assert os.listdir(sysroot / STATE / dnf5hook.HANDOFF_DIR) == []
    lines, said = call(sysroot, "post_transaction")
    assert not errors(lines) and applied(sysroot) is None
    assert len(said) == 1 and "cannot tell this dnf 5 run" in said[0]
    assert lines == ["log.WARNING=" + said[0]]


# --- nothing under the state directory is followed ----------------------------------------

@pytest.fixture
def elsewhere(tmp_path):
    """A directory of someone else's, with content that must survive untouched."""
    path = tmp_path / "elsewhere"
    (path / "data").mkdir(parents=True)
    (path / "data" / "keep").write_text("precious\n")
    (path / "keep").write_text("precious\n")
    return path


@pytest.mark.parametrize("callback", ["pre_transaction", "post_transaction"])
def test_a_symlinked_hand_off_directory_is_refused_and_never_followed(sysroot, elsewhere,
                                                                      callback):
    # Planted while the state directory was open, or by whoever could write there: root's
    # hook must neither delete nor write nor adopt anything through it.
    old_hand_off(sysroot, "x")  # so that the link's target could pass for a hand-off area
    pending = sysroot / STATE / dnf5hook.HANDOFF_DIR
    os.rename(pending / "x", elsewhere / str(os.getpid()))
    pending.rmdir()
    pending.symlink_to(elsewhere)
    before = snapshot(elsewhere)
    lines, _ = call(sysroot, callback)
    assert snapshot(elsewhere) == before and pending.is_symlink()
    assert applied(sysroot) is None
    [error] = errors(lines)
    assert f"{pending}: is a symbolic link" in error and f"rm -r {pending}" in error


@pytest.mark.parametrize("plant", ["link", "file", "link-inside", "dir-inside"])
def test_a_planted_stale_hand_off_is_refused_and_nothing_below_it_is_touched(sysroot, elsewhere,
                                                                             plant):
    pending = state_dir(sysroot) / dnf5hook.HANDOFF_DIR
    pending.mkdir(mode=0o700)
    if plant == "link":
        planted = pending / "123"
        planted.symlink_to(elsewhere)
    elif plant == "file":
        planted = pending / "123"
        planted.write_text("x")
    else:
        handoff = old_hand_off(sysroot, "123")
        planted = handoff / "data"
        if plant == "link-inside":
            planted.symlink_to(elsewhere / "data")
        else:
            os.rename(elsewhere / "data", planted)
    before = snapshot(elsewhere), snapshot(pending)
    lines, _ = call(sysroot, "pre_transaction")
    assert (snapshot(elsewhere), snapshot(pending)) == before
    assert os.path.lexists(planted)
    [error] = errors(lines)
    assert f"{planted}: is " in error and f"rm -r {planted}" in error


@needs_root
def test_a_hand_off_directory_of_another_user_is_refused(sysroot, elsewhere):
    pending = state_dir(sysroot) / dnf5hook.HANDOFF_DIR
    pending.mkdir(mode=0o700)
    (pending / "123").symlink_to(elsewhere)
    os.chown(pending, 1000, 1000)
    before = snapshot(elsewhere)
    lines, _ = call(sysroot, "pre_transaction")
    [error] = errors(lines)
    assert f"{pending}: is a directory of uid 1000" in error
    assert snapshot(elsewhere) == before and (pending / "123").is_symlink()


def test_a_hand_off_from_a_fresh_root_under_umask_000_opens_no_parent(sysroot):
    # The state directory's parents (var, var/lib) are the tool's to create in a fresh root.
    code = ("import os, sys; os.umask(0); from onedesk_azuread import dnf5hook; "
            "print(dnf5hook.run(dnf5hook.Call('pre_transaction', sys.argv[1], 'I', "
            "'p-1-1.noarch', str(os.getpid()))))")
    done = subprocess.run([sys.executable, "-c", code, str(sysroot)], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 0 and "error=" not in done.stdout, done.stdout + done.stderr
    modes = {str(path.relative_to(sysroot)): stat.S_IMODE(path.stat().st_mode)
             for path in [sysroot / "var", sysroot / "var/lib", sysroot / STATE]}
    assert modes == {"var": 0o755, "var/lib": 0o755, STATE: 0o700}
    for base, directories, files in os.walk(sysroot / STATE):
        for name in directories + files:
            assert not os.lstat(os.path.join(base, name)).st_mode & 0o077, name


# --- the command the actions file runs -----------------------------------------------------

def hook_command(sysroot, *args):
    """`onedesk-azuread-dnf5-hook` as the shipped actions file runs it, in a process of its
    own: (exit code, stdout, stderr, whether click was imported)."""
    probe = ("import sys\n"
             "from onedesk_azuread import dnf5hook\n"
             "code = dnf5hook.main(sys.argv[1:])\n"
             "sys.stderr.write('click imported: %s' % ('click' in sys.modules))\n"
             "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", probe, f"--root={sysroot}", *args],
                          capture_output=True, text=True, check=False)
    *said, imported = done.stderr.split("\n")
    return done.returncode, done.stdout, "\n".join(said), imported == "click imported: True"


def test_the_hook_command_answers_without_click_as_the_click_command_did(sysroot):
    (sysroot / "root" / ".OneDesk").write_text(GOOD + "AZUREAD_CID={x}\n")
    args = ("--require=0", "--settings=/root/.OneDesk", "goal_resolved", "I", NEVRA, "42")
    code, out, said, imported = hook_command(sysroot, *args)
    assert code == 0 and not imported
    # Options as click took them too: spaced, and a boolean in click's words.
    spaced = ("--require", "no", "--settings", "/root/.OneDesk", *args[2:])
    assert hook_command(sysroot, *spaced)[:2] == (0, out)
    assert out.startswith("log.INFO=onedesk-azuread: checking the Azure AD settings for ")
    assert out.splitlines()[-1].startswith("stop=onedesk-azuread: ")
    assert "checking the Azure AD settings" in said
    # The hidden click command stays for actions files edited under an earlier release.
    old = subprocess.run([sys.executable, "-c", "from onedesk_azuread.cli import main; main()",
                          f"--root={sysroot}", "dnf5-hook", *args],
                         capture_output=True, text=True, check=False)
    assert (old.returncode, old.stdout, old.stderr) == (0, out, said + "\n")


@pytest.mark.parametrize("args", [
    ("--require=perhaps", "goal_resolved", "I", NEVRA, "42"),
    ("--unknown=1", "goal_resolved", "I", NEVRA, "42"),
    ("goal_resolved", "I", NEVRA),
    ("goal_resolved", "I", NEVRA, "42", "--settings"),
])
def test_a_bad_hook_command_line_is_a_usage_error_that_stops_dnf5(sysroot, args):
    code, out, said, _ = hook_command(sysroot, *args)
    assert (code, out) == (2, "")  # with raise_error=1, dnf 5 stops on the exit code
    assert said.startswith("usage: onedesk-azuread-dnf5-hook")
