"""The expiry watch: `check --scheduled` (check.conf, journal priorities, the 30/14/7/1-day
warnings, exit codes), `check --metrics` (checked by the real promtool), the systemd units
(checked by the real systemd-analyze), and the dnf plugin's warning of a secret expiring soon.
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
from datetime import date, datetime, timedelta, timezone

import pytest

from onedesk_azuread import state, watch
from onedesk_azuread.paths import Paths

from . import test_online
from .conftest import CLIENT_ID, OTHER_SECRET, SECRET, SECRET_ID
from .test_online import closed_port_url

# The online suite's fixtures (its fake Azure AD over HTTPS, trusted through a private CA),
# shared rather than copied; put into the namespace where pytest looks for them.
globals().update({name: getattr(test_online, name) for name in ("ca", "azure_server", "azure")})

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENANT = "contoso.onmicrosoft.com"
GOOD = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
HINT = SECRET[:3]


@pytest.fixture
def configured(settings_path):
    settings_path.write_text(GOOD)
    settings_path.chmod(0o600)
    return settings_path


def state_dir(root):
    return os.path.join(str(root), "var/lib/onedesk-azuread")


def expire_in(root, days, secret=SECRET, today=None):
    when = (today or date.today()) + timedelta(days=days)
    state.save_expiry(state_dir(root), secret, when)
    return when


def write_conf(root, text):
    path = os.path.join(str(root), "etc/onedesk-azuread/check.conf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def scheduled(root, today=None, metrics=None):
    """One daily run, as the CLI makes it: the report, its lines given (to nowhere)."""
    report = watch.scheduled(Paths.under(str(root)), metrics=metrics, today=today)
    report.give(lambda line: None, journal=False)
    return report


def priorities(report, words):
    """The priorities of the report's lines that contain ``words``."""
    return [line.priority for line in report.lines if words in line.text]


def no_traceback(result):
    assert "Traceback" not in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr


# --- check.conf ------------------------------------------------------------------------------

def test_the_shipped_check_conf_is_all_defaults_and_each_example_is_valid():
    with open(os.path.join(HERE, "etc/check.conf")) as handle:
        shipped = handle.read()
    conf = watch.parse_conf(shipped, "check.conf")
    assert (conf.tenant, conf.cloud, conf.authority_host, conf.metrics) == (
        None, "public", None, None)
    examples = re.findall(r"^#(\w+ = .+)$", shipped, re.M)
    assert [e.split(" = ")[0] for e in examples] == list(watch.CONF_KEYS)
    every = watch.parse_conf("\n".join(examples) + "\n", "check.conf")  # uncommented: valid
    assert every.tenant == TENANT and every.timeout == 10.0
    assert every.metrics == "/var/lib/node_exporter/textfile_collector/onedesk_azuread.prom"


@pytest.mark.parametrize("text, words", [
    ("tenant = contoso.onmicrosoft.com\ntennant = x\n", ":2: 'tennant' is not a setting"),
    ("tenant = a.example.com\ntenant = b.example.com\n",
     ":2: tenant is set twice (first on line 1)"),
    ("[main]\n", ":1: sections are not used here"),
    ("tenant\n", ":1: 'tenant' is not `key = value`"),
    ("tenant =\n", ":1: tenant is empty"),
    ("tenant = 'contoso.onmicrosoft.com'\n", ":1: tenant = 'contoso.onmicrosoft.com': write the "
                                            "value without quotes"),
    ("tenant = contoso.onmicrosoft.com # ours\n", ":1: tenant = 'contoso.onmicrosoft.com # ours' "
                                                 "has a comment after the value"),
    ("tenant = common\n", "names no directory"),
    ("tenant = x.example.com\ncloud = moon\n", ":2: cloud = 'moon' is not one of public"),
    ("tenant = x.example.com\nauthority_host = http://login.example.com\n",
     ":2: authority_host = 'http://login.example.com' must be an https:// URL"),
    ("tenant = x.example.com\ntimeout = ten\n", ":2: timeout = 'ten' is not a number of seconds"),
    ("tenant = x.example.com\ntimeout = nan\n", "is not a number of seconds from 0.1 to 300"),
    ("tenant = x.example.com\ntimeout = 301\n", "is not a number of seconds from 0.1 to 300"),
    ("timeout = 5\n", "timeout is set but tenant is not"),
    ("metrics = metrics.prom\n", ":1: 'metrics.prom' is not an absolute path of a *.prom file"),
    ("metrics = /var/lib/node_exporter/onedesk.txt\n", "is not an absolute path of a *.prom"),
    ("metrics = /var/lib/../../etc/x.prom\n", "is not an absolute path of a *.prom"),
])
def test_a_bad_check_conf_is_one_line_naming_file_line_and_fix(run, configured, root, text,
                                                               words):
    path = write_conf(root, text)
    result = run("check", "--scheduled")
    no_traceback(result)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(path + ":") and words in lines[0], lines[0]
    assert result.stdout == ""
    assert not os.path.exists(os.path.join(state_dir(root), watch.WATCH_FILE))


@pytest.mark.parametrize("kind", ["directory", "fifo", "link-loop", "not-utf8"])
def test_an_unreadable_check_conf_is_one_line(run, configured, root, kind):
    path = write_conf(root, "")
    os.unlink(path)
    if kind == "directory":
        os.mkdir(path)
    elif kind == "fifo":
        os.mkfifo(path)  # opened without blocking: never hangs the timer's run
    elif kind == "not-utf8":
        with open(path, "wb") as handle:
            handle.write(b"tenant = \xff\n")
    else:  # root reads any mode: a link that loops is an open that fails, for root too
        os.symlink(os.path.basename(path), path)
    result = run("check", "--scheduled")
    no_traceback(result)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(path + ": "), lines
    assert any(w in lines[0] for w in ("not a regular file", "cannot be read", "not UTF-8"))


def test_scheduled_takes_its_settings_from_check_conf_not_options(run, configured):
    for args in (["--json"], ["--fix"], ["--online", "--tenant", TENANT], ["--tenant", TENANT]):
        result = run("check", "--scheduled", *args)
        assert result.exit_code == 2, args
        assert "--scheduled takes its settings from check.conf" in result.stderr


# --- check.conf counts only when root alone can change it -----------------------------------

CONF_DIR = "etc/onedesk-azuread"


def _loose_file(root, conf):
    os.chmod(conf, 0o664)
    return conf, "is writable by group or others", f"chmod go-w {conf}"


def _foreign_file(root, conf):
    os.chown(conf, 1000, 1000)
    return conf, "is not owned by root", f"chown root:root {conf}"


def _loose_directory(root, conf):
    os.chmod(os.path.dirname(conf), 0o777)
    directory = os.path.dirname(conf)
    return directory, "is writable by group or others", f"chmod go-w {directory}"


def _foreign_directory(root, conf):
    os.chown(os.path.join(str(root), "etc"), 1000, 1000)
    directory = os.path.join(str(root), "etc")
    return directory, "is not owned by root", f"chown root:root {directory}"


def _link_into_a_loose_directory(root, conf):
    """The README's configuration management: /etc/onedesk-azuread/check.conf a symlink."""
    elsewhere = os.path.join(str(root), "srv/cm")
    os.makedirs(elsewhere)
    os.chmod(elsewhere, 0o777)
    os.rename(conf, os.path.join(elsewhere, "check.conf"))
    os.symlink("../../srv/cm/check.conf", conf)
    return elsewhere, "is writable by group or others", f"chmod go-w {elsewhere}"


def _foreign_link(root, conf):
    elsewhere = os.path.join(str(root), "srv")
    os.makedirs(elsewhere)
    os.rename(conf, os.path.join(elsewhere, "check.conf"))
    os.symlink(os.path.join(elsewhere, "check.conf"), conf)  # absolute: followed on the host
    os.chown(conf, 1000, 1000, follow_symlinks=False)  # its owner could point it anywhere
    return conf, "is not owned by root", f"chown -h root:root {conf}"


@pytest.mark.parametrize("loosen", [_loose_file, _foreign_file, _loose_directory,
                                    _foreign_directory, _link_into_a_loose_directory,
                                    _foreign_link])
def test_a_check_conf_others_could_change_is_refused_and_sends_the_secret_nowhere(
        run, root, configured, azure, loosen):
    expire_in(root, 10)  # a warning that would be recorded
    os.makedirs(os.path.join(str(root), "var/lib/node"))
    conf = write_conf(root, f"tenant = {TENANT}\nauthority_host = {azure.url}\n"
                            f"metrics = /var/lib/node/od.prom\n")
    assert run("check", "--scheduled").exit_code == 0 and azure.seen  # root's alone: used
    os.unlink(os.path.join(str(root), "var/lib/node/od.prom"))
    os.unlink(os.path.join(state_dir(root), watch.WATCH_FILE))
    del azure.seen[:]
    offender, what, fix = loosen(root, conf)
    result = run("check", "--scheduled")
    no_traceback(result)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"{conf}: not used: {offender} {what} (owner uid "), line
    assert fix in line, line
    assert azure.seen == []  # not even discovery: the secret went nowhere
    assert os.listdir(os.path.join(str(root), "var/lib/node")) == []  # no metrics
    assert not os.path.exists(os.path.join(state_dir(root), watch.WATCH_FILE))


def test_a_check_conf_others_could_replace_is_refused_even_when_absent(run, root, configured):
    conf = write_conf(root, "")
    os.unlink(conf)
    os.chmod(os.path.dirname(conf), 0o777)  # anyone could put a check.conf there tomorrow
    result = run("check", "--scheduled")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{conf}: not used: {os.path.dirname(conf)} is writable")


def test_a_check_conf_linked_from_a_place_only_root_can_change_is_used(run, root, configured,
                                                                       azure):
    conf = write_conf(root, "")
    os.unlink(conf)
    # A world-writable directory with the sticky bit, like /tmp: no one but root can
    # rename or remove what root owns in it.
    sticky = os.path.join(str(root), "tmp")
    os.makedirs(os.path.join(sticky, "cm"))
    os.chmod(sticky, 0o1777)
    with open(os.path.join(sticky, "cm/check.conf"), "w") as handle:
        handle.write(f"tenant = {TENANT}\nauthority_host = {azure.url}\n")
    os.symlink("../../tmp/cm/../cm/check.conf", conf)
    result = run("check", "--scheduled")
    assert result.exit_code == 0, result.stderr
    assert "online: valid" in result.stderr and azure.seen


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


# --- Metrics -----------------------------------------------------------------------------------

def _promtool(text):
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, check=False)


# The host's tools, as fixtures: the Debian 11 stages (tools/debian-root.sh) have neither
# promtool nor a systemd of EL 9's generation (bullseye's is 247, EL 9's 252 as Debian 12's),
# and deselect the tests that use them (Makefile: HOST_TOOLS); the host stages run them.
@pytest.fixture
def promtool():
    return _promtool


@pytest.fixture
def systemd_analyze():
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: run tools/system-deps.sh"
    return found


def samples(text):
    """metric{labels} -> value, from the exposition text."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_promtool_rejects_what_is_not_valid_exposition(promtool):
    """The tool really checks: the tests below that it passes mean something."""
    assert promtool("# TYPE x gauge\nx 1\n# TYPE x gauge\nx 2\n").returncode != 0
    assert promtool("onedesk_azuread_entries_valid one\n").returncode != 0


@pytest.mark.parametrize("case", ["valid", "expired", "never-set", "soon"])
def test_metrics_for_each_state_pass_promtool(run, root, settings_path, tmp_path, case, promtool):
    metrics = str(tmp_path / "textfile" / "onedesk_azuread.prom")
    os.makedirs(os.path.dirname(metrics))
    if case != "never-set":
        settings_path.write_text(GOOD)
        settings_path.chmod(0o600)
    days = {"valid": 200, "expired": -3, "soon": 10}.get(case)
    expires = expire_in(root, days) if days is not None else None
    before = datetime.now(timezone.utc).timestamp()
    result = run("check", "--scheduled", "--metrics", metrics)
    no_traceback(result)
    text = open(metrics).read()
    checked = promtool(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert stat.S_IMODE(os.stat(metrics).st_mode) == 0o644  # node_exporter is not root
    assert os.listdir(os.path.dirname(metrics)) == ["onedesk_azuread.prom"]  # no temp left
    assert SECRET not in text and HINT not in text and CLIENT_ID not in text
    for name in watch.METRICS:
        if f"onedesk_azuread_{name}" in text:
            assert f"# HELP onedesk_azuread_{name} " in text
            assert f"# TYPE onedesk_azuread_{name} gauge" in text
    got = samples(text)
    assert got["onedesk_azuread_entries_valid"] == (0 if case in ("expired", "never-set") else 1)
    assert got["onedesk_azuread_entries_applied"] == 0  # never applied here
    assert got["onedesk_azuread_secret_expiry_recorded"] == (expires is not None)
    if expires is not None:
        end = datetime.combine(expires + timedelta(days=1), datetime.min.time(), timezone.utc)
        assert got["onedesk_azuread_secret_expiry_timestamp_seconds"] == end.timestamp()
    else:
        assert "onedesk_azuread_secret_expiry_timestamp_seconds" not in text
    assert not any(k.startswith("onedesk_azuread_online_result") for k in got)
    assert before - 1 <= got["onedesk_azuread_check_timestamp_seconds"] <= before + 60
    assert result.exit_code == (1 if case in ("expired", "never-set") else 0)


def test_online_metrics_pass_promtool(run, root, configured, azure, tmp_path, promtool):
    online_conf(root, azure.url)
    metrics = tmp_path / "od.prom"
    write_conf(root, f"tenant = {TENANT}\nauthority_host = {azure.url}\n"
                     f"metrics = /metrics/od.prom\n")
    os.makedirs(os.path.join(str(root), "metrics"))
    result = run("check", "--scheduled")  # check.conf's metrics: a path inside the root
    assert result.exit_code == 0, result.stderr
    inside = os.path.join(str(root), "metrics/od.prom")
    assert f"metrics written to {inside}" in result.stderr
    text = open(inside).read()
    assert promtool(text).returncode == 0, promtool(text).stdout
    got = samples(text)
    assert [got[f'onedesk_azuread_online_result{{result="{s}"}}'] for s in watch.ONLINE_STATES] \
        == [1, 0, 0, 0]
    assert not metrics.exists()


def test_check_metrics_without_scheduled_writes_the_same_file(run, configured, tmp_path, azure,
                                                              promtool):
    metrics = str(tmp_path / "od.prom")
    result = run("check", "--metrics", metrics)
    assert result.exit_code == 0
    text = open(metrics).read()
    assert promtool(text).returncode == 0
    assert samples(text)["onedesk_azuread_entries_valid"] == 1
    assert "online_result" not in text
    result = run("check", "--online", "--tenant", TENANT, "--authority-host", azure.url,
                 "--metrics", metrics)
    assert result.exit_code == 0
    assert samples(open(metrics).read())['onedesk_azuread_online_result{result="valid"}'] == 1


def test_a_missing_metrics_directory_is_one_line_and_writes_nothing(run, root, configured,
                                                                    tmp_path):
    metrics = str(tmp_path / "absent" / "od.prom")
    result = run("check", "--metrics", metrics)
    no_traceback(result)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"Error: {metrics}: cannot write the metrics: the directory {tmp_path / 'absent'} does "
        f"not exist; create it (node_exporter's --collector.textfile.directory) or give "
        f"another path")
    scheduled_result = run("check", "--scheduled", "--metrics", metrics)
    assert scheduled_result.exit_code == 1  # the unit fails: the metrics went nowhere
    assert scheduled_result.stderr.count("cannot write the metrics") == 1
    assert not os.path.exists(tmp_path / "absent")


def test_metrics_must_be_a_prom_file(run, configured, tmp_path):
    result = run("check", "--metrics", str(tmp_path / "od.txt"))
    assert result.exit_code == 2
    assert "node_exporter's textfile collector reads only those" in result.stderr
    assert not (tmp_path / "od.txt").exists()


def test_metrics_say_applied_once_dnf_installed_the_packages(new_root, tmp_path, promtool):
    from .test_packaging import cli

    root = new_root()
    root.write_settings(GOOD)
    metrics = str(tmp_path / "od.prom")
    cli(root, "check", "--scheduled", "--metrics", metrics)
    assert samples(open(metrics).read())["onedesk_azuread_entries_applied"] == 0
    root.dnf("install", "onedesk-db-utils")
    result = cli(root, "check", "--scheduled", "--metrics", metrics)
    assert result.exit_code == 0, result.stderr
    assert "applied: in sync" in result.stderr
    text = open(metrics).read()
    assert samples(text)["onedesk_azuread_entries_applied"] == 1
    assert promtool(text).returncode == 0


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


def test_an_offline_scheduled_check_never_loads_msal(root, configured):
    from .test_imports import loaded

    modules = loaded("--root", str(root), "check", "--scheduled")
    assert not modules["msal"] and not modules["requests"] and not modules["dnf"]
