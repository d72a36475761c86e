"""The daily check, `check --scheduled`: journal priorities, the 30/14/7/1-day warnings and
watch.json, the online check from check.conf, exit codes, the systemd units (checked by the
real systemd-analyze), and the dnf plugin's warning of a secret expiring soon.
"""

import contextlib
import glob
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest

from onedesk_azuread import state, watch
from onedesk_azuread.paths import Paths

from .conftest import (
    CLIENT_ID,
    OTHER_SECRET,
    SECRET,
    SECRET_ID,
    TENANT,
    closed_port_url,
    expire_in,
    no_traceback,
    state_dir,
    write_conf,
)

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"


def scheduled(root, today=None, metrics=None):
    """One daily run, as the CLI makes it: the report, its lines given (to nowhere)."""
    report = watch.scheduled(Paths.under(str(root)), metrics=metrics, today=today)
    report.give(lambda line: None, journal=False)
    return report


def priorities(report, words):
    """The priorities of the report's lines that contain ``words``."""
    return [line.priority for line in report.lines if words in line.text]


def test_scheduled_takes_its_settings_from_check_conf_not_options(run, configured):
    for args in (["--json"], ["--fix"], ["--online", "--tenant", TENANT], ["--tenant", TENANT]):
        result = run("check", "--scheduled", *args)
        assert result.exit_code == 2, args
        assert "--scheduled takes its settings from check.conf" in result.stderr

# --- Values echoed from the files cannot make journal lines of their own ----------------------

def raw_process(root, *args, env_extra=None, **popen):
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["PYTHONPATH"] = HERE
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, "-c", "from onedesk_azuread.cli import main; main()",
         "--root", str(root), *args], env=env, stdin=subprocess.DEVNULL, **popen)


def journal_lines(root, tmp_path):
    """`check --scheduled` with stderr as its journal stream: the raw lines journald splits
    (at a newline, and at a NUL too)."""
    path = tmp_path / "journal"
    with open(path, "wb") as err:
        st = os.fstat(err.fileno())
        proc = raw_process(root, "check", "--scheduled", stdout=subprocess.DEVNULL, stderr=err,
                           env_extra={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        code = proc.wait(timeout=60)
    return code, re.split(rb"[\n\0]", path.read_bytes().rstrip(b"\n"))


@pytest.mark.parametrize("conf, words", [
    ("tenant = 'x\0<0>fake\x1b[2J\x7f'\n", rb"tenant = 'x\x00<0>fake\x1b[2J\x7f': write"),
    ("tenant = x\x1b]0;owned\x07.example.com\n", rb"tenant = x\x1b]0;owned\x07.example.com:"),
    ("metrics = /var/lib/\x1b[1A\0<0>/od.prom\n", rb"/var/lib/\x1b[1A\x00<0>/od.prom: cannot "
                                                  rb"write the metrics"),
])
def test_control_characters_from_check_conf_are_escaped(root, configured, tmp_path, conf,
                                                       words):
    write_conf(root, conf)
    code, lines = journal_lines(root, tmp_path)
    assert code == 1
    assert all(re.match(rb"<[3-7]>[ -~]", line) for line in lines), lines
    assert not any(re.search(rb"[\x00-\x1f\x7f]", line) for line in lines), lines
    assert any(words in line for line in lines), lines


def test_control_characters_from_the_settings_file_are_escaped(root, settings_path, tmp_path):
    # bash runs `x<ESC>[2J<CR><DEL>` as a command given AZUREAD_CIS=... as an argument; the
    # finding names that command. (A NUL is refused with the whole file, naming no text.)
    settings_path.write_bytes(f"AZUREAD_CID={CLIENT_ID}\n"
                              f"x\x1b[2J\r\x7f AZUREAD_CIS={SECRET}\n".encode())
    settings_path.chmod(0o600)
    code, lines = journal_lines(root, tmp_path)
    assert code == 1
    assert all(re.match(rb"<[3-7]>[ -~]", line) for line in lines), lines
    assert not any(re.search(rb"[\x00-\x1f\x7f]", line) for line in lines), lines
    named = [line for line in lines if b"as an argument to" in line]
    assert len(named) == 1 and named[0].startswith(b"<3>"), lines
    assert rb"as an argument to x\x1b[2J\r\x7f," in named[0], named

# --- Expiry warnings at 30, 14, 7 and 1 days -------------------------------------------------

def test_warnings_come_once_at_30_14_7_and_1_days_and_an_expired_secret_every_day(root,
                                                                                    configured):
    start = date(2027, 3, 1)
    expires = expire_in(root, 32, today=start)
    seen = {}
    for day in range(0, 36):
        today = start + timedelta(days=day)
        report = scheduled(root, today=today)
        left = (expires - today).days
        if left < 0:
            seen[left] = (priorities(report, "expired on"), report.exit_code)
        else:
            seen[left] = (priorities(report, "the client secret expires on"), report.exit_code)
            assert f"(in {left} days)" in " ".join(line.text for line in report.lines)
    warned = sorted((left for left, (p, _) in seen.items() if p == [watch.WARNING]),
                    reverse=True)
    assert warned == [30, 14, 7, 1]
    assert seen[32] == ([watch.INFO], 0) and seen[31] == ([watch.INFO], 0)
    for left in (29, 15, 13, 8, 6, 2, 0):
        assert seen[left] == ([watch.NOTICE], 0), left
    for left in (-1, -2, -3):
        assert seen[left] == ([watch.ERR], 1), left  # expired: an error on every run
    record = os.path.join(state_dir(root), watch.WATCH_FILE)
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    text = open(record).read()
    assert SECRET not in text and json.loads(text)["warned_days"] == 1


def test_a_server_that_was_off_warns_once_at_the_threshold_it_wakes_up_in(root, configured):
    start = date(2027, 3, 1)
    expire_in(root, 40, today=start)
    assert priorities(scheduled(root, today=start), "expires on") == [watch.INFO]
    later = start + timedelta(days=30)  # 10 days left: past 30 and 14 while it was off
    first = scheduled(root, today=later)
    assert priorities(first, "expires on") == [watch.WARNING]
    assert ("(in 10 days); create a new client secret in Azure, then run: onedesk-azuread set "
            "--secret-prompt --expires YYYY-MM-DD") in first.lines[0].text
    again = scheduled(root, today=later + timedelta(days=1))
    assert priorities(again, "expires on") == [watch.NOTICE]
    assert "warned at 14 days left, next at 7 days" in again.lines[0].text


def test_a_new_secret_or_a_new_date_is_warned_of_afresh(run, root, configured):
    today = date(2027, 3, 1)
    expire_in(root, 10, today=today)
    assert priorities(scheduled(root, today=today), "expires on") == [watch.WARNING]
    assert priorities(scheduled(root, today=today), "expires on") == [watch.NOTICE]
    expire_in(root, 12, today=today)  # the same secret, another date recorded
    assert priorities(scheduled(root, today=today), "expires on") == [watch.WARNING]
    assert run("set", "--secret-stdin", input=OTHER_SECRET + "\n").exit_code == 0
    expire_in(root, 12, secret=OTHER_SECRET, today=today)
    assert priorities(scheduled(root, today=today), "expires on") == [watch.WARNING]


def test_no_recorded_expiry_is_a_notice_with_the_fix(root, configured):
    report = scheduled(root)
    assert priorities(report, "no expiry is recorded") == [watch.NOTICE]
    assert "onedesk-azuread set --expires YYYY-MM-DD" in report.lines[0].text
    assert report.exit_code == 0


def test_a_garbage_watch_record_is_one_line_naming_it(run, root, configured):
    expire_in(root, 5)
    path = os.path.join(state_dir(root), watch.WATCH_FILE)
    state.save_json(state_dir(root), watch.WATCH_FILE, {"warned_days": "seven"})
    result = run("check", "--scheduled")
    no_traceback(result)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}: is not a watch record; {watch.FIX_WATCH}"]


WARNED = "create a new client secret in Azure, then run:"  # the warning's own words


def _blocked_in_pipe_write(pid):
    with open(f"/proc/{pid}/wchan") as handle:
        return "pipe_write" in handle.read()


def test_a_run_killed_while_its_warning_waits_for_the_journal_warns_again(root, configured,
                                                                          tmp_path):
    expire_in(root, 10)
    # journald stalls: the stream's pipe is full, so the run blocks writing its first line,
    # the warning, until the unit's stop timeout (or a shutdown) kills it.
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"." * 4096)
    os.set_blocking(write_end, True)
    proc = raw_process(root, "check", "--scheduled", stdout=subprocess.DEVNULL,
                       stderr=write_end)
    os.close(write_end)
    try:
        deadline = time.monotonic() + 60
        while not _blocked_in_pipe_write(proc.pid):
            assert proc.poll() is None, "the run finished with its stderr full"
            assert time.monotonic() < deadline, "the run never wrote to its stderr"
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    with os.fdopen(read_end, "rb") as handle:
        assert handle.read().strip(b".") == b""  # nothing of the warning reached the journal
    code, _, lines = cli_process(root, "check", "--scheduled", stderr_path=tmp_path / "next")
    assert code == 0
    assert [line for line in lines if WARNED in line], lines  # given again, not a notice
    assert json.load(open(os.path.join(state_dir(root), watch.WATCH_FILE)))["warned_days"] == 14


def test_a_run_killed_after_its_warning_before_recording_it_warns_again(root, configured,
                                                                         tmp_path):
    expire_in(root, 10)
    with state.locked(state_dir(root)):  # the record has to wait for the write lock
        proc = raw_process(root, "check", "--scheduled", stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE,
                           env_extra={"ONEDESK_AZUREAD_LOCK_TIMEOUT": "120"})
        try:
            seen = []  # (a run that never says it waits ends with the lock's timeout)
            while not any("waiting for the lock" in line for line in seen):
                line = proc.stderr.readline().decode()
                assert line, f"the run ended: {seen}"
                seen.append(line)
            # The warning went out before the run waited to record it.
            assert [line for line in seen if WARNED in line], seen
        finally:
            proc.kill()
            proc.wait()
            proc.stderr.close()
    assert not os.path.exists(os.path.join(state_dir(root), watch.WATCH_FILE))
    code, _, lines = cli_process(root, "check", "--scheduled", stderr_path=tmp_path / "next")
    assert code == 0 and [line for line in lines if WARNED in line], lines
    code, _, lines = cli_process(root, "check", "--scheduled", stderr_path=tmp_path / "after")
    assert not [line for line in lines if WARNED in line], lines  # recorded this time

# --- Journal priorities ----------------------------------------------------------------------

def cli_process(root, *args, stderr_path, journal=None, env_extra=None):
    """The CLI as a real process, stderr into ``stderr_path``; JOURNAL_STREAM as given."""
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env["PYTHONPATH"] = HERE
    env.update(env_extra or {})
    with open(stderr_path, "w") as err:
        if journal == "this":
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        elif journal == "other":
            st = os.stat(HERE)
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; from onedesk_azuread.cli import main; main()",
             "--root", str(root), *args], stdout=subprocess.PIPE, stderr=err, env=env,
            stdin=subprocess.DEVNULL, check=False)
    with open(stderr_path) as handle:
        return proc.returncode, proc.stdout.decode(), handle.read().splitlines()


def test_in_the_journal_every_line_has_its_priority_outside_none(root, settings_path, tmp_path):
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n")
    settings_path.chmod(0o644)  # a warning: file-mode
    expire_in(root, 10)
    code, out, lines = cli_process(root, "check", "--scheduled", journal="this",
                                   stderr_path=tmp_path / "journal")
    assert code == 0 and out == ""
    assert lines and all(re.match(r"<[3-7]>\S", line) for line in lines), lines
    mode = [line for line in lines if "mode 0644" in line]
    assert mode and mode[0].startswith("<4>")
    soon = [line for line in lines if "expires on" in line]
    assert len(soon) == 1 and soon[0].startswith("<4>the client secret expires on")
    assert any(line.startswith("<6>applied: not installed") for line in lines)
    code, _, lines = cli_process(root, "check", "--scheduled", journal="this",
                                 stderr_path=tmp_path / "journal2")
    soon = [line for line in lines if "expires on" in line]
    assert soon[0].startswith("<5>")  # warned yesterday: a notice today
    for journal in ("other", None):  # a redirected stderr is not the journal
        code, _, lines = cli_process(root, "check", "--scheduled", journal=journal,
                                     stderr_path=tmp_path / "plain")
        assert lines and not any(line.startswith("<") for line in lines), lines


def test_errors_and_an_expired_secret_are_priority_3_and_exit_1(root, settings_path, tmp_path):
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n")
    settings_path.chmod(0o600)
    expire_in(root, -1)
    code, _, lines = cli_process(root, "check", "--scheduled", journal="this",
                                 stderr_path=tmp_path / "journal")
    assert code == 1
    assert [line for line in lines if "expired on" in line][0].startswith("<3>")
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n")
    code, _, lines = cli_process(root, "check", "--scheduled", journal="this",
                                 stderr_path=tmp_path / "journal2")
    assert code == 1
    assert [line for line in lines if "Secret ID was pasted" in line][0].startswith("<3>")
    write_conf(root, "tenant = nope\n")  # a refused configuration: <3> too
    code, _, lines = cli_process(root, "check", "--scheduled", journal="this",
                                 stderr_path=tmp_path / "journal3")
    assert code == 1 and len(lines) == 1 and lines[0].startswith("<3>")

# --- The online check from check.conf ----------------------------------------------------------

def online_conf(root, host):
    write_conf(root, f"# the daily proof\ntenant = {TENANT}\nauthority_host = {host}\n"
                     f"timeout = 3\n")


def test_online_valid_invalid_unverified_and_skipped(run, root, configured, azure, tmp_path):
    online_conf(root, azure.url)
    metrics = str(tmp_path / "od.prom")
    result = run("check", "--scheduled", "--metrics", metrics)
    no_traceback(result)
    assert result.exit_code == 0, result.stderr
    assert "online: valid: Azure AD issued a token" in result.stderr
    assert [m for m, *_ in azure.seen][-1] == "POST"
    assert 'onedesk_azuread_online_result{result="valid"} 1' in open(metrics).read()

    azure.token = 7000215  # refused: the unit fails
    result = run("check", "--scheduled", "--metrics", metrics)
    assert result.exit_code == 1
    assert "online: invalid: the client secret is wrong" in result.stderr
    assert 'onedesk_azuread_online_result{result="invalid"} 1' in open(metrics).read()

    online_conf(root, closed_port_url())  # no network: exit 3, which the unit accepts
    result = run("check", "--scheduled", "--metrics", metrics)
    assert result.exit_code == 3
    assert "online: unverified: could not verify: cannot connect" in result.stderr
    assert 'onedesk_azuread_online_result{result="unverified"} 1' in open(metrics).read()

    online_conf(root, azure.url)
    del azure.seen[:]
    configured.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n")
    result = run("check", "--scheduled", "--metrics", metrics)
    assert result.exit_code == 1
    assert "online: skipped: not asked: fix the errors above first" in result.stderr
    assert azure.seen == []  # offline errors: the network is skipped
    assert 'onedesk_azuread_online_result{result="skipped"} 1' in open(metrics).read()
    no_traceback(result)


def test_without_a_tenant_no_network_is_asked(run, configured, azure):
    result = run("check", "--scheduled")
    assert result.exit_code == 0
    assert "online: not configured (set tenant = TENANT in" in result.stderr
    assert azure.seen == []


def test_the_unit_accepts_exit_3_and_fails_on_1():
    unit = open(os.path.join(HERE, "systemd/onedesk-azuread-check.service")).read()
    assert re.search(r"^SuccessExitStatus=3$", unit, re.M)
    assert re.search(r"^ExecStart=/usr/bin/onedesk-azuread check --scheduled$", unit, re.M)

# --- The dnf plugin warns of a secret expiring soon, and installs ----------------------------

def test_a_onedesk_transaction_warns_of_a_secret_expiring_in_10_days(new_root):
    root = new_root()
    root.write_settings(GOOD)
    when = expire_in(root.path, 10)
    result = root.dnf("install", "onedesk-db-utils")
    output = result.stdout + result.stderr
    # A warning, not an info line: dnf prints warnings on stderr (info goes to stdout).
    said = [line for line in result.stderr.splitlines() if "expires on" in line]
    assert len(said) == 1, output
    assert (f"the client secret expires on {when.isoformat()} (in 10 days); create a new "
            f"client secret in Azure") in said[0]
    assert root.installed() == ["onedesk-db-utils-2.0-1"]
    assert root.seen("onedesk-db-utils")["sourced_cis"] == SECRET
    assert SECRET not in output

# --- The systemd units, for real --------------------------------------------------------------

UNITS = ("onedesk-azuread-check.service", "onedesk-azuread-check.timer")


# The host's systemd-analyze, as a fixture: the Debian 11 stages (tools/debian-root.sh) have no
# systemd of EL 9's generation (bullseye's is 247, EL 9's 252 as Debian 12's) and deselect the
# tests that use it (Makefile: HOST_TOOLS); the host stages run them.
@pytest.fixture
def systemd_analyze():
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: run tools/system-deps.sh"
    return found


def unit_root(tmp_path, edit=None):
    """A throw-away root for `systemd-analyze verify --root`: the host's targets (the units
    ours name: network-online.target, timers.target, ...), our units as shipped (or as
    ``edit`` breaks them) at /usr/lib/systemd/system, and a launcher at /usr/bin."""
    top = tmp_path / "unitroot"
    unitdir = top / "usr/lib/systemd/system"
    unitdir.mkdir(parents=True)
    for target in glob.glob("/usr/lib/systemd/system/*.target") + glob.glob(
            "/lib/systemd/system/*.target"):
        if not (unitdir / os.path.basename(target)).exists():
            shutil.copy(target, unitdir)
    assert (unitdir / "network-online.target").exists() and (unitdir / "timers.target").exists()
    for name in UNITS:
        text = open(os.path.join(HERE, "systemd", name)).read()
        (unitdir / name).write_text(edit(name, text) if edit else text)
    (top / "usr/bin").mkdir(parents=True)
    launcher = top / "usr/bin/onedesk-azuread"
    launcher.write_text(f"#!{sys.executable}\nimport sys\nfrom onedesk_azuread.cli import main\n"
                        f"sys.exit(main())\n")
    launcher.chmod(0o755)
    return top


def verify_units(top):
    return subprocess.run(["systemd-analyze", "verify", f"--root={top}",
                           *(f"/usr/lib/systemd/system/{name}" for name in UNITS)],
                          capture_output=True, text=True, check=False)


def test_the_shipped_units_verify_clean(tmp_path, systemd_analyze):
    result = verify_units(unit_root(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""  # systemd-analyze warns with exit 0: none here
    service = open(os.path.join(HERE, "systemd", UNITS[0])).read()
    for line in ("Type=oneshot", "Wants=network-online.target", "After=network-online.target",
                 "StateDirectory=onedesk-azuread", "ProtectHome=read-only",
                 "ProtectSystem=strict"):
        assert re.search(rf"^{re.escape(line)}$", service, re.M), line
    timer = open(os.path.join(HERE, "systemd", UNITS[1])).read()
    for line in ("OnCalendar=daily", "Persistent=true", "WantedBy=timers.target"):
        assert re.search(rf"^{re.escape(line)}$", timer, re.M), line
    assert re.search(r"^RandomizedDelaySec=\S+$", timer, re.M)
    preset = open(os.path.join(HERE, "systemd/80-onedesk-azuread.preset")).read()
    assert [line for line in preset.splitlines() if line and not line.startswith("#")] == [
        "enable onedesk-azuread-check.timer"]


@pytest.mark.parametrize("unit, old, new, words", [
    # systemd 252 says "Failed to parse service type", 257 "Failed to parse Type=oneshott".
    (UNITS[0], "Type=oneshot", "Type=oneshott", "Failed to parse"),
    (UNITS[0], "ProtectSystem=strict", "ProtectSytem=strict", "Unknown key"),
    (UNITS[0], "/usr/bin/onedesk-azuread", "/usr/bin/onedesk-azure", "is not executable"),
    (UNITS[1], "OnCalendar=daily", "OnCalendar=dialy", "Failed to parse"),
    (UNITS[1], "[Timer]", "[Timr]", "Unknown section"),
])
def test_a_broken_unit_fails_the_check(tmp_path, unit, old, new, words, systemd_analyze):
    def edit(name, text):
        if name != unit:
            return text
        assert old in text
        return text.replace(old, new)

    result = verify_units(unit_root(tmp_path, edit))
    assert result.returncode != 0 or result.stdout + result.stderr != ""
    assert words in result.stdout + result.stderr


def test_the_service_is_hardened(tmp_path, systemd_analyze):
    """systemd's own exposure score for the unit (0 safest, 10 unsafe): at most 3.0."""
    top = unit_root(tmp_path)
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={top}",
                             "--threshold=30", f"/usr/lib/systemd/system/{UNITS[0]}"],
                            capture_output=True, text=True, check=False)
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert score, result.stdout + result.stderr
    assert result.returncode == 0 and float(score.group(1)) <= 3.0, score.group(0)
