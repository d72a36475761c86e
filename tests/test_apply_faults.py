"""`apply` under faults, in the real rpm + dnf bed: killed at each step, interrupted by
SIGINT, SIGTERM and a terminal hangup, its repository gone after the prefetch.

apply runs here as a real process (the packaged CLI, from `make rpm`) wherever it is
signalled or killed; the checks after it use the in-process `cli` helper. Faults are
injected through $ONEDESK_AZUREAD_DNF: a wrapper that runs the real dnf and acts before
or after the step named (tests/rpmbed.py: dnf_wrapper).
"""

import fcntl
import json
import os
import select
import signal
import socket
import stat
import subprocess
import termios
import time

import pytest

from .conftest import CLIENT_ID, GOOD, OTHER_SECRET, SECRET
from .rpmbed import ADDON, KILL_APPLY, ONEDESK, RepoServer, cli, dnf_wrapper

HOLDING = "interrupts are held until the OneDesk packages are installed again"
EVERYTHING = sorted([f"{name}-2.0-1" for name in ONEDESK] + [f"{ADDON}-1-1"])
SECRETS = (SECRET, OTHER_SECRET)


@pytest.fixture
def server(bed):
    repo = RepoServer(os.path.join(bed.top, "repos", "main"))
    yield repo
    repo.close()


def journal_path(root):
    return os.path.join(root.path, "var/lib/onedesk-azuread/apply.json")


def installed_with_new_secret(root):
    """OneDesk and a third-party add-on installed with SECRET; the file now says OTHER_SECRET."""
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK, ADDON)
    assert cli(root, "set", "--secret-stdin", input=OTHER_SECRET).exit_code == 0
    assert json.loads(cli(root, "status", "--json").stdout)["state"] == "pending"


def env_with(root, wrapper):
    return dict(root.env, ONEDESK_AZUREAD_DNF=f"{wrapper} -c {root.conf} --releasever=9")


def apply_process(root, env, *args, **options):
    """`onedesk-azuread --root ROOT apply -y` as its own process (session leader, so that its
    process group is what a terminal would signal)."""
    options.setdefault("stdout", subprocess.PIPE)
    options.setdefault("stderr", subprocess.PIPE)
    options.setdefault("text", True)
    return subprocess.Popen(["/usr/bin/python3", "-s", root.bed.cli, "--root", root.path,
                             "apply", "-y", *args], env=env, start_new_session=True, **options)


def wait_until_done(root):
    """Wait (at most 5 minutes) until the dnf that a killed apply started has exited: it
    holds apply's lock until then (a deadlock breaker, not a timing assertion)."""
    from onedesk_azuread import journal
    from onedesk_azuread.paths import Paths

    for _ in range(3000):
        if not journal.running(Paths.under(root.path)):
            return
        time.sleep(0.1)
    raise AssertionError("the killed apply's dnf did not finish")


def assert_no_secret_in(*texts):
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def assert_completed(root):
    """Every package back, each OneDesk install script saw the new settings, status in
    sync, the journal gone."""
    assert root.installed() == EVERYTHING
    for name in ONEDESK:
        seen = root.seen(name)
        assert seen["sourced_cis"] == OTHER_SECRET, name  # what the install script sourced
        assert seen["args"] == ["1", "1"], name  # installed, removed, installed afresh
    assert root.seen(ADDON)["args"] == ["1", "1"]
    after = cli(root, "status")
    assert after.exit_code == 0, after.stdout
    assert "in sync" in after.stdout and "unfinished" not in after.stdout
    assert not os.path.exists(journal_path(root))


# --- SIGKILL at each step: status reports it, the next apply completes it ----------------

KILL_POINTS = {
    # name: (wrapper hooks, phase journalled, what is missing after the kill)
    "journalled": ({"before": {"prefetch": KILL_APPLY + "; exit 1"}}, "prefetching", False),
    "prefetched": ({"after": {"prefetch": KILL_APPLY}}, "prefetching", False),
    "before-removal": ({"before": {"remove": KILL_APPLY + "; exit 1"}}, "removing", False),
    "removed": ({"after": {"remove": KILL_APPLY}}, "removing", True),
    "installed": ({"after": {"install": KILL_APPLY}}, "installing", False),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_apply_is_reported_and_completed_by_the_next(new_root, tmp_path, point):
    hooks, phase, removed = KILL_POINTS[point]
    root = new_root()
    installed_with_new_secret(root)
    wrapper = dnf_wrapper(tmp_path / "dnf-kill", **hooks)
    killed = apply_process(root, env_with(root, wrapper))
    out, err = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, err
    wait_until_done(root)

    assert stat.S_IMODE(os.stat(journal_path(root)).st_mode) == 0o600
    with open(journal_path(root)) as handle:
        journal_text = handle.read()
    journal = json.loads(journal_text)
    assert journal["phase"] == phase
    assert sorted(journal["removed"]) == sorted([*ONEDESK, ADDON])  # the add-on included
    assert set(journal["reinstalled"]) == {*ONEDESK, ADDON}
    assert_no_secret_in(journal_text, out, err)
    assert CLIENT_ID not in journal_text

    report = cli(root, "status")
    assert report.exit_code == 1
    assert "unfinished: the apply started" in report.stdout
    assert f"finish it with: onedesk-azuread --root {root.path} apply" in report.stdout
    unfinished = json.loads(cli(root, "status", "--json").stdout)["unfinished_apply"]
    assert unfinished["phase"] == phase and unfinished["running"] is False
    assert unfinished["command"] == f"onedesk-azuread --root {root.path} apply"
    missing = sorted(unfinished["missing"])
    assert missing == (sorted([*ONEDESK, ADDON]) if removed else [])
    if removed:
        assert root.installed() == []
        assert "not installed again: " in report.stdout and ADDON in report.stdout

    done = cli(root, "apply", "-y")
    assert done.exit_code == 0, done.stderr
    assert "done: in sync" in done.stderr
    assert_completed(root)
    assert_no_secret_in(report.stdout, done.stdout, done.stderr, root.logs())


def test_the_dnf_of_a_killed_apply_finishes_and_the_next_apply_waits_for_it(new_root,
                                                                             tmp_path):
    root = new_root()
    installed_with_new_secret(root)
    go = tmp_path / "go"
    # apply is killed just as its dnf remove starts; that dnf goes on when the test says.
    hook = (f"{KILL_APPLY}; i=0; while [ ! -e {go} ] && [ $i -lt 3000 ]; do sleep 0.1; "
            f"i=$((i + 1)); done")
    killed = apply_process(root, env_with(root, dnf_wrapper(tmp_path / "dnf-kill",
                                                            before={"remove": hook})))
    try:
        killed.communicate(timeout=300)
        assert killed.returncode == -signal.SIGKILL
        report = cli(root, "status")
        assert report.exit_code == 1 and "in progress: an apply started" in report.stdout
        busy = cli(root, "apply", "-y")
        assert busy.exit_code == 1 and "another onedesk-azuread apply is running" in busy.stderr
    finally:
        go.touch()  # never leave the orphaned dnf waiting
    wait_until_done(root)
    assert root.installed() == []  # the orphaned remove ran to its end, uninterrupted
    assert "unfinished: the apply started" in cli(root, "status").stdout
    done = cli(root, "apply", "-y")
    assert done.exit_code == 0, done.stderr
    assert_completed(root)


def test_a_completing_apply_that_fails_keeps_the_journal(new_root, tmp_path):
    root = new_root()
    installed_with_new_secret(root)
    killed = apply_process(root, env_with(root, dnf_wrapper(
        tmp_path / "dnf-kill", after={"remove": KILL_APPLY})))
    killed.communicate(timeout=300)
    wait_until_done(root)
    assert root.installed() == []
    # The repository is unreachable and dnf's cache is gone: the install cannot happen.
    root.dnf("clean", "all")
    root.set_repo("main", url="http://127.0.0.1:9/")
    failed = cli(root, "apply", "-y")
    assert failed.exit_code == 1
    message = failed.stderr.strip().splitlines()[-1]
    assert "were removed and are NOT installed again" in message and ADDON in message
    assert message.endswith(f"Complete the job with: onedesk-azuread --root {root.path} apply")
    assert os.path.exists(journal_path(root))
    root.set_repo("main")
    done = cli(root, "apply", "-y")
    assert done.exit_code == 0, done.stderr
    assert_completed(root)


# --- Interrupts are held from the removal until the reinstall has run --------------------

@pytest.mark.parametrize("signum, target", [
    (signal.SIGINT, "-- -$PPID"),  # ^C: the terminal signals the whole foreground group
    (signal.SIGTERM, "$PPID"),  # kill PID, systemd's stop
], ids=["SIGINT-to-the-process-group", "SIGTERM"])
def test_interrupts_are_held_until_the_packages_are_installed_again(new_root, tmp_path,
                                                                     signum, target):
    root = new_root()
    installed_with_new_secret(root)
    name = signal.Signals(signum).name
    send = f"kill -s {name[3:]} {target}"
    wrapper = dnf_wrapper(tmp_path / "dnf-signal", before={"remove": send},
                          after={"install": send})
    proc = apply_process(root, env_with(root, wrapper))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert err.count(HOLDING) == 1
    assert err.count(f"{name} received: apply finishes first") == 2
    assert "done: in sync" in err
    last = err.strip().splitlines()[-1]
    assert last == (f"Error: interrupted by {name} during the reinstall: apply finished the "
                    f"job first (in sync)")
    assert_completed(root)
    assert_no_secret_in(out, err)


def test_an_interrupt_before_the_removal_stops_with_nothing_changed(new_root, tmp_path):
    root = new_root()
    installed_with_new_secret(root)
    before = root.installed()
    wrapper = dnf_wrapper(tmp_path / "dnf-signal", before={"prefetch": "kill -s INT -- -$PPID"})
    proc = apply_process(root, env_with(root, wrapper))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert err.strip().splitlines()[-1] == ("Error: interrupted by SIGINT before anything was "
                                            "removed: nothing was changed")
    assert HOLDING not in err and "Traceback" not in err
    assert root.installed() == before and root.seen("onedesk-db-utils")["args"] == ["1"]
    assert not os.path.exists(journal_path(root))
    assert json.loads(cli(root, "status", "--json").stdout)["unfinished_apply"] is None


def test_an_ignored_hangup_stays_ignored(new_root, tmp_path):
    # nohup onedesk-azuread apply: SIGHUP was ignored when apply started, and stays so.
    root = new_root()
    installed_with_new_secret(root)
    wrapper = dnf_wrapper(tmp_path / "dnf-signal", before={"remove": "kill -s HUP $PPID"})
    proc = apply_process(root, env_with(root, wrapper),
                         preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "SIGHUP received" not in err and "done: in sync" in err
    assert_completed(root)


def test_a_journal_that_cannot_be_written_after_the_removal_does_not_strand_it(new_root,
                                                                               tmp_path):
    root = new_root()
    installed_with_new_secret(root)
    # After the removal, a directory stands where the journal is: it can be neither
    # replaced nor removed.
    block = f"rm -f {journal_path(root)} && mkdir {journal_path(root)}"
    result = cli(root, "apply", "-y",
                 env=env_with(root, dnf_wrapper(tmp_path / "dnf-block", after={"remove": block})))
    assert result.exit_code == 0, result.stderr
    assert "warning: " in result.stderr and "going on" in result.stderr
    assert "done: in sync" in result.stderr
    assert root.installed() == EVERYTHING
    assert root.seen("onedesk-db-utils")["sourced_cis"] == OTHER_SECRET
    report = cli(root, "status")  # what is in the journal's place is not hidden
    assert report.exit_code == 1 and "cannot be read as onedesk-azuread apply's journal" \
        in report.stderr


def test_a_terminal_hangup_is_held_and_output_to_the_dead_terminal_is_no_crash(new_root):
    root = new_root()
    installed_with_new_secret(root)
    master, slave = os.openpty()

    def controlling_terminal():  # after setsid: make the pty this session's terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = apply_process(root, root.env, stdin=slave, stdout=slave, stderr=slave,
                         preexec_fn=controlling_terminal)
    os.close(slave)
    seen = b""
    try:
        while HOLDING.encode() not in seen:
            ready, _, _ = select.select([master], [], [], 300)
            assert ready, seen.decode(errors="replace")
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side is gone
                chunk = b""
            assert chunk, seen.decode(errors="replace")
            seen += chunk
    finally:
        os.close(master)  # the terminal goes away: SIGHUP, and EIO on every later write
    assert proc.wait(timeout=300) == 128 + signal.SIGHUP
    assert_completed(root)
    assert_no_secret_in(seen.decode(errors="replace"))


# --- The repository disappears after the prefetch -----------------------------------------

def test_the_reinstall_completes_from_the_cache_when_the_repository_is_gone(new_root,
                                                                           tmp_path, server):
    root = new_root()
    root.set_repo("main", url=server.url)
    installed_with_new_secret(root)
    wrapper = dnf_wrapper(tmp_path / "dnf-server-gone", after={"prefetch": server.stop_command})
    result = cli(root, "apply", "-y", env=env_with(root, wrapper))
    assert result.exit_code == 0, result.stderr
    assert "done: in sync" in result.stderr
    assert "install from dnf's cache failed" not in result.stderr
    # The packages came over HTTP in the prefetch; nothing was asked after the server went.
    stop = server.requests.index("/stop")
    assert any(path.endswith(f"/{ADDON}-1-1.noarch.rpm") for path in server.requests[:stop])
    assert server.requests[stop + 1:] == []
    assert_no_secret_in(result.stdout, result.stderr)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1].strip("/"))))
    assert_completed(root)


def test_without_a_cache_the_install_falls_back_to_the_repositories(new_root, tmp_path):
    root = new_root()
    installed_with_new_secret(root)
    wrapper = dnf_wrapper(tmp_path / "dnf-cache-gone", after={
        "remove": f"dnf -q -c {root.conf} --releasever=9 --installroot={root.path} clean all"})
    result = cli(root, "apply", "-y", env=env_with(root, wrapper))
    assert result.exit_code == 0, result.stderr
    assert "the install from dnf's cache failed" in result.stderr
    assert "installing from the enabled repositories instead" in result.stderr
    assert_completed(root)


# --- A package of someone else's that no repository offers any more ----------------------

def own_repository(root, tmp_path):
    """A private copy of the bed's main repository for this root (a test may take a
    package out of it); returns its directory."""
    import shutil

    repo = tmp_path / "own-repo"
    shutil.copytree(os.path.join(root.bed.top, "repos", "main"), repo)
    root.set_repo("main", url=f"file://{repo}")
    return repo


def withdraw_addon_command(root, repo):
    """The add-on's vendor withdraws it: out of the repository, and out of dnf's cache."""
    return (f"rm -f {repo}/{ADDON}-*.rpm && createrepo_c -q --update {repo} && "
            f"dnf -q -c {root.conf} --releasever=9 --installroot={root.path} clean all")


@pytest.mark.parametrize("when", ["after-a-kill", "during-the-apply"])
def test_a_package_no_repository_offers_any_more_never_keeps_onedesk_uninstalled(
        new_root, tmp_path, when):
    root = new_root()
    repo = own_repository(root, tmp_path)
    installed_with_new_secret(root)
    withdraw = withdraw_addon_command(root, repo)
    if when == "after-a-kill":
        # Killed once the removal took OneDesk and the add-on; then the add-on is withdrawn.
        killed = apply_process(root, env_with(root, dnf_wrapper(
            tmp_path / "dnf-kill", after={"remove": KILL_APPLY})))
        killed.communicate(timeout=300)
        assert killed.returncode == -signal.SIGKILL
        wait_until_done(root)
        assert root.installed() == []
        subprocess.run(["sh", "-c", withdraw], env=root.env, check=True)
        result = cli(root, "apply", "-y", "--json")
        done = json.loads(result.stdout)
        assert done["not_reinstalled"] == [ADDON] and done["completed_interrupted"] is True
        assert done["status"]["state"] == "in sync"
    else:  # withdrawn between the removal and the install
        result = cli(root, "apply", "-y", env=env_with(root, dnf_wrapper(
            tmp_path / "dnf-withdraw", after={"remove": withdraw})))
    assert not any(name.startswith(ADDON) for name in os.listdir(repo))

    assert result.exit_code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    command = f"dnf --installroot={root.path} install {ADDON}"
    said = [line for line in lines if line.startswith(f"{ADDON} was removed with ")]
    assert len(said) == 1, result.stderr
    assert said[0].startswith(f"{ADDON} was removed with onedesk-db-utils and could not be "
                              f"installed again (")
    assert said[0].endswith(f"install it when a repository offers it again: {command}")
    assert lines[-1] == (f"Error: OneDesk's packages are installed again (in sync), but {ADDON} "
                         f"was removed with onedesk-db-utils and is not: install it when a "
                         f"repository offers it again: {command}")
    # OneDesk is back, installed afresh with the new settings; the journal is finished.
    assert root.installed() == sorted(f"{name}-2.0-1" for name in ONEDESK)
    for name in ONEDESK:
        assert root.seen(name)["sourced_cis"] == OTHER_SECRET, name
        assert root.seen(name)["args"] == ["1", "1"], name
    assert not os.path.exists(journal_path(root))
    after = cli(root, "status")
    assert after.exit_code == 0, after.stdout
    assert "in sync" in after.stdout and "unfinished" not in after.stdout
    assert_no_secret_in(result.stdout, result.stderr, root.logs())


def test_an_expiry_record_that_cannot_be_read_does_not_stop_completing_an_apply(new_root,
                                                                                tmp_path):
    root = new_root()
    installed_with_new_secret(root)
    killed = apply_process(root, env_with(root, dnf_wrapper(
        tmp_path / "dnf-kill", after={"remove": KILL_APPLY})))
    killed.communicate(timeout=300)
    wait_until_done(root)
    assert root.installed() == []
    record = os.path.join(os.path.dirname(journal_path(root)), "expiry.json")
    with open(record, "w") as handle:
        handle.write('{"expires": "2099-01-31", "secr')  # a write cut short
    os.chmod(record, 0o600)
    done = cli(root, "apply", "-y")
    assert done.exit_code == 0, done.stderr
    assert "done: in sync" in done.stderr
    assert root.installed() == EVERYTHING and not os.path.exists(journal_path(root))
    report = cli(root, "status")  # the record is still an error, reported where it belongs
    assert report.exit_code == 1 and "expiry-unreadable" in report.stdout


def test_an_unavailable_package_of_onedesk_itself_still_keeps_the_journal(new_root, tmp_path):
    # OneDesk's own packages cannot be left out: the job stays journalled until they are back.
    root = new_root()
    repo = own_repository(root, tmp_path)
    installed_with_new_secret(root)
    withdraw = (f"rm -f {repo}/onedesk-customerapps-*.rpm && createrepo_c -q --update {repo} "
                f"&& dnf -q -c {root.conf} --releasever=9 --installroot={root.path} clean all")
    result = cli(root, "apply", "-y", env=env_with(root, dnf_wrapper(
        tmp_path / "dnf-withdraw", after={"remove": withdraw})))
    assert result.exit_code == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "onedesk-customerapps" in message and "NOT installed again" in message
    assert message.endswith(f"Complete the job with: onedesk-azuread --root {root.path} apply")
    assert os.path.exists(journal_path(root))
    assert "onedesk-customerapps" not in " ".join(root.installed())


# --- dnf's progress, live ----------------------------------------------------------------

def test_dnf_output_is_shown_as_it_comes_and_the_summary_comes_last(new_root, tmp_path):
    root = new_root()
    installed_with_new_secret(root)
    go = tmp_path / "go"
    # Before the install, the wrapper prints a line and waits until the test has seen it.
    wait = (f'echo "dnf is working"; i=0; while [ ! -e {go} ] && [ $i -lt 300 ]; do '
            f'sleep 0.1; i=$((i + 1)); done; [ -e {go} ] || echo "output was held back"')
    proc = apply_process(root, env_with(root, dnf_wrapper(tmp_path / "dnf-slow",
                                                          before={"install": wait})))
    lines, seen_live = [], False
    for line in proc.stderr:
        lines.append(line.rstrip("\n"))
        if line.strip() == "dnf is working":
            seen_live = not go.exists()
            go.touch()
    proc.wait(timeout=300)
    assert proc.returncode == 0, "\n".join(lines)
    assert seen_live  # the line arrived while dnf was still running
    assert "    dnf is working" in lines  # indented, as dnf's own lines
    assert not any("output was held back" in line for line in lines)
    assert any(line.startswith("    Running transaction") for line in lines)
    # The end: the plugin's lines again, unindented, then done.
    assert lines[-1].startswith("done: in sync")
    last_dnf = max(i for i, line in enumerate(lines) if line.startswith("    "))
    summary = lines[last_dnf + 1:-1]
    assert any(line.startswith("onedesk-azuread: ") and "is validated and canonical for the "
               "install scripts of onedesk-db-utils" in line for line in summary)
    assert_no_secret_in(*lines)


# --- The journal and the lock themselves ---------------------------------------------------

def test_a_garbled_journal_is_one_line_and_removes_nothing(root_with_onedesk):
    root = root_with_onedesk
    os.makedirs(os.path.dirname(journal_path(root)), exist_ok=True)
    with open(journal_path(root), "w") as handle:
        handle.write("{not json")
    before = root.installed()
    for args in (("status",), ("status", "--json"), ("apply", "-y")):
        result = cli(root, *args)
        assert result.exit_code == 1
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "cannot be read as onedesk-azuread apply's journal" in result.stderr
        assert "rpm -qa" in result.stderr
    assert root.installed() == before


def test_one_apply_at_a_time_and_status_says_one_is_running(root_with_onedesk):
    from onedesk_azuread import journal
    from onedesk_azuread.paths import Paths

    root = root_with_onedesk
    paths = Paths.under(root.path)
    journal.start(paths, list(ONEDESK), list(ONEDESK), [])
    fd = journal.lock(paths)
    try:
        busy = cli(root, "apply", "-y")
        assert busy.exit_code == 1
        assert "another onedesk-azuread apply is running" in busy.stderr
        report = cli(root, "status")
        assert report.exit_code == 1 and "in progress: an apply started" in report.stdout
        assert json.loads(cli(root, "status", "--json").stdout)["unfinished_apply"]["running"]
    finally:
        journal.unlock(fd)
    dry = cli(root, "apply", "--dry-run")  # a dry run neither completes nor forgets it
    assert dry.exit_code == 0 and "nothing is missing: starting it again" in dry.stderr
    assert os.path.exists(journal_path(root))
    assert "unfinished: the apply started" in cli(root, "status").stdout


@pytest.fixture
def root_with_onedesk(new_root):
    root = new_root()
    root.write_settings(GOOD)
    root.dnf("install", *ONEDESK)
    return root
