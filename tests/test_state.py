"""The tool's own state fails closed: its directory, its files and its lock.

The state directory is repaired like systemd-tmpfiles does or refused; state files are read
without following links or blocking, bounded and type-checked; the write lock is a root-only
file with a bounded wait. Real processes: the CLI, the plugin's library calls, a lock holder.
"""

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from onedesk_azuread import settings, state
from onedesk_azuread.errors import StateError

from .conftest import CLIENT_ID, SECRET, Cli, snapshot

GOOD = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
STATE = "var/lib/onedesk-azuread"
MAIN = "import sys; from onedesk_azuread.cli import main; sys.argv[0] = 'onedesk-azuread'; main()"
# The library calls the dnf plugin makes (preflight in `resolved`, inject in
# `pre_transaction`, record in `transaction`); any OnedeskError the plugin turns into a dnf
# error. Printed here, one line, exit 1; preflight's alerts (warnings) on stdout.
PLUGIN = """
import sys
from onedesk_azuread import hook
from onedesk_azuread.errors import OnedeskError
from onedesk_azuread.paths import Paths
paths = Paths.under(sys.argv[1])
try:
    for step in sys.argv[2:]:
        if step == "preflight":
            for finding in hook.preflight(paths, False).alerts:
                print(hook.alert(paths, finding))
        elif step == "inject":
            hook.inject(paths)
        elif step == "record":
            hook.record(paths, {"AZUREAD_CID": "c", "AZUREAD_CIS": "s"}, ["p-1-1.noarch"])
except OnedeskError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""
BOUNDED = 30  # seconds: only to turn a hang into a failure, never a timing assertion


def cli(root, *args, input=None, env=None):
    """The real `onedesk-azuread` in a fresh process, bounded so that a hang fails the test."""
    environment = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", MAIN, "--root", str(root), *args],
                          input=input, capture_output=True, text=True, timeout=BOUNDED,
                          env=environment, check=False)


def plugin(root, *steps, env=None):
    environment = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", PLUGIN, str(root), *steps],
                          capture_output=True, text=True, timeout=BOUNDED, env=environment,
                          check=False)


def one_line_error(proc, *words):
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], lines[0]
    assert SECRET not in proc.stdout + proc.stderr
    return lines[0]


@pytest.fixture
def configured(root, settings_path):
    settings_path.write_text(GOOD)
    settings_path.chmod(0o600)
    return root / STATE


def expiry_record(expires="2099-01-31", hint=SECRET[:3], length=len(SECRET), **more):
    return json.dumps({"expires": expires, "recorded": "2026-12-01T00:00:00+00:00",
                       "secret_hint": hint, "secret_length": length, **more})


def write_state(state_dir, name, text, mode=0o600):
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    path.chmod(mode)
    return path


def unreadable_expiry(root, path, *words):
    """An expiry record that cannot be read: `show` still shows the entries and says why the
    expiry is unknown (exit 0); `check` reports an `expiry-unreadable` error naming the file
    and the fix (exit 1). No traceback; the file is left as it is."""
    fix = "onedesk-azuread set --expires YYYY-MM-DD"
    shown = cli(root, "show")
    assert shown.returncode == 0, shown.stderr
    assert f"AZUREAD_CID:  {CLIENT_ID}" in shown.stdout
    assert f"AZUREAD_CIS:  {SECRET[:3]}… (masked" in shown.stdout
    expires = [line for line in shown.stdout.splitlines() if line.startswith("expires:")]
    assert len(expires) == 1 and f"unknown: {path}: " in expires[0], shown.stdout
    for word in (fix, *words):
        assert word in expires[0], expires[0]
    data = json.loads(cli(root, "show", "--json").stdout)
    assert data["client_id"] == CLIENT_ID and data["expires"] is None
    assert data["expiry_error"].startswith(f"{path}: ") and fix in data["expiry_error"]
    checked = cli(root, "check")
    assert checked.returncode == 1, checked.stderr
    errors = [line for line in checked.stdout.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "recorded expiry cannot be read" in errors[0], checked.stdout
    for word in (str(path), fix, *words):
        assert word in errors[0], errors[0]
    findings = json.loads(cli(root, "check", "--json").stdout)["findings"]
    assert [(f["code"], f["severity"]) for f in findings] == [("expiry-unreadable", "error")]
    for proc in (shown, checked):
        assert "Traceback" not in proc.stderr
        assert SECRET not in proc.stdout + proc.stderr


# --- State files: never followed, never waited on, bounded, garbage is a finding --------------

def test_a_fifo_in_place_of_expiry_json_does_not_hang_the_cli(configured):
    configured.mkdir(parents=True, mode=0o700)
    os.mkfifo(configured / "expiry.json", 0o600)
    unreadable_expiry(configured.parents[2], configured / "expiry.json", "is not a regular file")
    assert stat.S_ISFIFO(os.lstat(configured / "expiry.json").st_mode)


@pytest.mark.parametrize("name, steps", [("expiry.json", ["preflight"]),
                                         ("expiry.json", ["inject"]),
                                         ("applied.json", ["record"])])
def test_a_fifo_in_place_of_a_state_file_does_not_hang_the_plugin(configured, name, steps):
    configured.mkdir(parents=True, mode=0o700)
    os.mkfifo(configured / name, 0o600)
    proc = plugin(configured.parents[2], *steps)
    # Writing replaces the FIFO by rename; reading refuses it: nothing opened it, nothing
    # waited, and an expiry record that cannot be read never stops the transaction.
    assert proc.returncode == 0, proc.stderr
    if name == "applied.json":
        assert state.load_applied(str(configured))["packages"] == ["p-1-1.noarch"]
        return
    if steps == ["preflight"]:
        warned = proc.stdout.strip().splitlines()
        assert len(warned) == 1 and "is not a regular file" in warned[0], proc.stdout
        assert str(configured / name) in warned[0] and "installing anyway" in warned[0]


@pytest.mark.parametrize("steps", [["preflight"], ["preflight", "inject", "record"]])
def test_an_unreadable_expiry_record_warns_and_never_stops_the_plugin(configured, steps):
    path = write_state(configured, "expiry.json", b'{"expires": "2099-0')  # cut short
    proc = plugin(configured.parents[2], *steps)
    assert proc.returncode == 0, proc.stderr
    warned = proc.stdout.strip().splitlines()
    assert len(warned) == 1 and warned[0].startswith("onedesk-azuread: "), proc.stdout
    assert f"{path}: is not valid JSON" in warned[0] and "installing anyway" in warned[0]
    assert f"onedesk-azuread set --expires YYYY-MM-DD --root {configured.parents[2]}" \
        in warned[0]
    if "record" in steps:
        assert state.load_applied(str(configured))["packages"] == ["p-1-1.noarch"]
    assert path.read_bytes() == b'{"expires": "2099-0'  # reported, never rewritten


LOAD_APPLIED = """
import sys
from onedesk_azuread import state
from onedesk_azuread.errors import StateError
try:
    state.load_applied(sys.argv[1])
except StateError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


def test_a_fifo_in_place_of_applied_json_is_refused_not_read(configured):
    """What `status` and `apply` read (in a process of its own: a regression would hang)."""
    configured.mkdir(parents=True, mode=0o700)
    os.mkfifo(configured / "applied.json", 0o600)
    proc = subprocess.run([sys.executable, "-c", LOAD_APPLIED, str(configured)],
                          capture_output=True, text=True, timeout=BOUNDED, check=False)
    one_line_error(proc, "applied.json: is not a regular file; delete it and reinstall the "
                         "packages with: onedesk-azuread apply")


def test_a_symlinked_state_file_is_never_followed(configured, tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(expiry_record())  # a record that would apply, if it were followed
    configured.mkdir(parents=True, mode=0o700)
    (configured / "expiry.json").symlink_to(elsewhere)
    unreadable_expiry(configured.parents[2], configured / "expiry.json", "symbolic link")
    assert "2099-01-31" not in cli(configured.parents[2], "show").stdout
    assert elsewhere.read_text() == expiry_record()
    assert os.path.islink(configured / "expiry.json")


def test_a_symlinked_applied_record_is_never_followed(configured, tmp_path):
    elsewhere = tmp_path / "applied.json"
    elsewhere.write_text(json.dumps({"applied": "x", "fingerprint": "00", "salt": "00"}))
    configured.mkdir(parents=True, mode=0o700)
    (configured / "applied.json").symlink_to(elsewhere)
    with pytest.raises(StateError, match="symbolic link"):
        state.load_applied(str(configured))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (CI runs as root)")
def test_a_state_file_another_user_could_have_written_is_not_trusted(configured):
    path = write_state(configured, "expiry.json", expiry_record())
    os.chown(path, 1000, 1000)
    unreadable_expiry(configured.parents[2], path, "cannot be trusted")
    os.chown(path, 0, 0)
    path.chmod(0o622)  # writable by group and others
    unreadable_expiry(configured.parents[2], path, "cannot be trusted")


GARBAGE = [
    b"",
    b"{",
    b"\xff\xfe{}",
    b"[]",
    b"[" * 60000,  # deep nesting: json raises RecursionError, not ValueError
    b'"2099-01-31"',
    expiry_record(expires=20990131).encode(),
    expiry_record(expires="2099-W05-1").encode(),  # a date 3.11's fromisoformat takes
    expiry_record(expires="20990131").encode(),
    expiry_record(expires="2099-13-45").encode(),
    expiry_record(hint=["Xk7"]).encode(),
    expiry_record(length="40").encode(),
    expiry_record(length=True).encode(),
    b'{"expires": "2099-01-31"}',
    b'{"expires": "2099-01-31", "secret_hint": "Xk7", "secret_len',  # cut short
    expiry_record(version=True).encode(),  # True == 1 in Python: not a version
    expiry_record(version="1").encode(),
    expiry_record(version=0).encode(),
]


@pytest.mark.parametrize("content", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_in_expiry_json_is_an_error_finding_naming_file_and_fix(configured, content):
    path = write_state(configured, "expiry.json", content)
    unreadable_expiry(configured.parents[2], path)


def test_an_expiry_record_from_a_newer_version_is_named_as_such(configured):
    # A format this version does not know: its fields may mean something else now.
    path = write_state(configured, "expiry.json", json.dumps(
        {"version": 2, "expires": {"date": "2099-01-31"}, "secret": {"hint": SECRET[:3]}}))
    unreadable_expiry(configured.parents[2], path, "is a version 2 expiry record, from a newer "
                      "onedesk-azuread", "update onedesk-azuread")


@pytest.mark.parametrize("more", [{"version": 1}, {"key_id": "a1b2", "note": ["anything"]}],
                         ids=["version-1", "unknown-fields"])
def test_an_expiry_record_with_fields_we_do_not_know_still_reads(configured, more):
    # A newer version may add fields without changing the format (they are ignored).
    write_state(configured, "expiry.json", expiry_record(**more))
    proc = cli(configured.parents[2], "show", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["expires"] == "2099-01-31"


def test_a_recorded_expiry_carries_its_version(configured):
    state.save_expiry(str(configured), SECRET, state.parse_date("2099-01-31"))
    record = json.loads((configured / "expiry.json").read_text())
    assert record["version"] == state.EXPIRY_VERSION == 1
    assert state.load_expiry(str(configured), SECRET) == state.parse_date("2099-01-31")


@pytest.mark.parametrize("record", [
    {"applied": "x", "fingerprint": "00", "salt": "zz"},  # not hex: was a traceback in status
    {"applied": "x", "fingerprint": "000", "salt": "00"},  # not whole bytes
    {"applied": "x", "fingerprint": "00", "salt": "AB"},  # not as the tool writes it
    {"applied": "x", "fingerprint": "", "salt": "00"},
    {"applied": "x", "fingerprint": "00", "salt": "0 0"},
    {"applied": "x", "fingerprint": 7, "salt": "00"},
    {"applied": "x", "fingerprint": "00", "salt": "00", "packages": "onedesk-db-utils"},
    {"applied": "x", "fingerprint": "00", "salt": "00", "packages": [1]},
    {"fingerprint": "00", "salt": "00"},
])
def test_garbage_in_applied_json_is_a_state_error(configured, record):
    write_state(configured, "applied.json", json.dumps(record))
    with pytest.raises(StateError, match="applied.json: is not an applied-state record; "
                                         "delete it and reinstall"):
        state.load_applied(str(configured))


@pytest.mark.parametrize("text", ["2099-01-31", "1999-12-31"])
def test_a_date_written_yyyy_mm_dd_parses(text):
    assert state.parse_date(text).isoformat() == text


@pytest.mark.parametrize("text", ["20990131", "2099-W48-2", "2099-1-031", "2099-01-3a",
                                  " 2099-01-31", "2099-01-31 ", "\u0662\u0660\u0669\u0669-01-31",
                                  "2099-02-30", "", None])
def test_only_a_date_written_yyyy_mm_dd_parses(text):
    with pytest.raises(ValueError):
        state.parse_date(text)


def test_an_oversized_state_file_is_refused(configured):
    padded = expiry_record()[:-1] + " " * (70 * 1024) + "}"  # still valid JSON
    path = write_state(configured, "expiry.json", padded)
    unreadable_expiry(configured.parents[2], path, "more than the 65536 bytes")


def test_a_good_record_still_reads(configured):
    write_state(configured, "expiry.json", expiry_record())
    proc = cli(configured.parents[2], "show", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["expires"] == "2099-01-31"


# --- The state directory: repaired like systemd-tmpfiles, or refused --------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (CI runs as root)")
@pytest.mark.parametrize("mode, owner", [(0o777, (0, 0)), (0o770, (0, 0)), (0o700, (1000, 0)),
                                         (0o755, (1000, 1000)), (0o700, (0, 1000))])
@pytest.mark.parametrize("command", [("show",), ("set", "--expires", "2099-03-01")])
def test_an_unsafe_state_directory_is_repaired_and_said_so(configured, mode, owner, command):
    write_state(configured, "expiry.json", expiry_record())
    configured.chmod(mode)
    os.chown(configured, *owner)
    proc = cli(configured.parents[2], *command)
    assert proc.returncode == 0, proc.stderr
    repaired = [line for line in proc.stderr.splitlines() if "repaired" in line]
    assert len(repaired) == 1, proc.stderr
    assert str(configured) in repaired[0] and "0700" in repaired[0]
    st = os.lstat(configured)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 0, 0)
    again = cli(configured.parents[2], *command)  # repaired once, then quiet
    assert "repaired" not in again.stderr


@pytest.mark.parametrize("command", [("show",), ("check",), ("set", "--expires", "2099-03-01"),
                                     ("set", "--client-id", CLIENT_ID)])
def test_a_symlinked_state_directory_is_refused_and_nothing_written(configured, tmp_path,
                                                                    command):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / "expiry.json").write_text(expiry_record())
    (elsewhere / "expiry.json").chmod(0o600)
    configured.parent.mkdir(parents=True)
    configured.symlink_to(elsewhere)
    root = configured.parents[2]
    before = snapshot(root), snapshot(elsewhere)
    one_line_error(cli(root, *command), str(configured), "symbolic link")
    assert (snapshot(root), snapshot(elsewhere)) == before
    assert os.listdir(elsewhere) == ["expiry.json"]  # not even a lock file


@pytest.mark.parametrize("command", [("show",), ("set", "--expires", "2099-03-01")])
def test_a_state_directory_that_is_a_file_is_refused(configured, command):
    configured.parent.mkdir(parents=True)
    configured.write_text("not a directory\n")
    root = configured.parents[2]
    before = snapshot(root)
    one_line_error(cli(root, *command), str(configured), "is not a directory")
    assert snapshot(root) == before


@pytest.fixture
def open_root():
    """A system root an unprivileged user can reach (pytest's tmp_path is root's alone)."""
    path = tempfile.mkdtemp(prefix="onedesk-state-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


AS_NOBODY = ("import os, sys; from onedesk_azuread.cli import main\n"
             "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
             "sys.argv[0] = 'onedesk-azuread'; main()")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to set up the other users' files")
def test_a_state_directory_of_another_user_is_refused_when_not_root(open_root):
    """Not root, we cannot take the directory over: refused, never trusted (nor chmod-ed)."""
    home = os.path.join(open_root, "root")
    os.mkdir(home, 0o755)
    settings_file = os.path.join(home, ".OneDesk")
    with open(settings_file, "w") as handle:
        handle.write(GOOD)
    os.chown(home, 65534, 65534)
    os.chown(settings_file, 65534, 65534)
    state_dir = os.path.join(open_root, STATE)
    os.makedirs(state_dir)
    os.chmod(state_dir, 0o777)
    os.chown(state_dir, 1000, 1000)  # another, unprivileged user's directory
    record = os.path.join(state_dir, "expiry.json")
    with open(record, "w") as handle:
        handle.write(expiry_record())
    os.chown(record, 65534, 65534)  # as if we had written it: still not to be trusted
    os.chmod(record, 0o600)
    proc = subprocess.run([sys.executable, "-c", AS_NOBODY, "--root", open_root, "show"],
                          capture_output=True, text=True, timeout=BOUNDED, check=False)
    one_line_error(proc, state_dir, "is owned by uid 1000", "run as root")
    assert stat.S_IMODE(os.lstat(state_dir).st_mode) == 0o777


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (CI runs as root)")
@pytest.mark.parametrize("plant", ["symlink", "other-owner", "writable", "hard-link"])
def test_a_loose_state_directory_is_closed_and_what_was_planted_in_it_refused(configured,
                                                                             tmp_path, plant):
    # While the directory was open, another user could put anything in it, for root to
    # follow or trust later: closing it is not enough, its entries are looked at too.
    write_state(configured, "expiry.json", expiry_record())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("precious\n")
    name = {"symlink": "dnf5-pending", "other-owner": "dnf5-pending", "writable": "watch.json",
            "hard-link": "applied.json"}[plant]
    planted = configured / name
    if plant == "symlink":
        planted.symlink_to(elsewhere)
    elif plant == "other-owner":
        planted.mkdir()
        os.chown(planted, 1000, 1000)
    elif plant == "writable":
        planted.write_text("{}")
        planted.chmod(0o666)
    else:
        os.link(elsewhere / "keep", planted)
    configured.chmod(0o777)
    before = snapshot(elsewhere)
    line = one_line_error(cli(configured.parents[2], "show"), str(configured),
                          "was open to other users (mode 0777)", f"{planted} (",
                          f"remove it (rm -r {planted})")
    assert "now mode 0700" in line
    st = os.lstat(configured)  # closed first: nothing more can be planted
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 0, 0)
    assert os.path.lexists(planted) and snapshot(elsewhere) == before


def test_a_fresh_root_made_under_umask_000_gets_no_world_writable_directory(tmp_path):
    fresh = tmp_path / "new" / "sysroot"  # the tool makes every directory in it
    proc = subprocess.run([sys.executable, "-c", "import os; os.umask(0); " + MAIN,
                           "--root", str(fresh), "set", "--client-id", CLIENT_ID,
                           "--secret-stdin"], input=SECRET, capture_output=True, text=True,
                          timeout=BOUNDED, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (fresh / STATE / "lock").exists() and (fresh / "root" / ".OneDesk").exists()
    for base, directories, _ in os.walk(tmp_path / "new"):
        for name in directories:
            mode = stat.S_IMODE(os.lstat(os.path.join(base, name)).st_mode)
            assert not mode & 0o022, (os.path.join(base, name), oct(mode))


# --- The lock: a root-only file, a bounded wait, said while waiting -------------------------

HOLDER = """
import fcntl, os, sys, time
os.makedirs(os.path.dirname(sys.argv[1]), mode=0o700, exist_ok=True)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def hold_lock(root):
    """Hold the tool's lock from another process (as another onedesk-azuread or dnf would)."""
    holders = []

    def hold(seconds=120):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root / STATE / "lock"),
                                 str(seconds)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "held\n"
        holders.append(proc)
        return proc

    yield hold
    for proc in holders:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("command, given", [
    (("set", "--client-id", CLIENT_ID, "--secret-stdin"), SECRET),
    (("set", "--expires", "2099-03-01"), None),
    (("unset",), None),
    (("check", "--fix"), None),
])
def test_a_held_lock_is_waited_for_said_once_then_one_line_and_nothing_changed(
        root, settings_path, hold_lock, command, given):
    settings_path.write_text(GOOD.replace("\n", "\r\n"))  # check --fix would rewrite it
    holder = hold_lock()
    lock = root / STATE / "lock"
    before = snapshot(root)
    proc = cli(root, *command, input=given, env={"ONEDESK_AZUREAD_LOCK_TIMEOUT": "0.5"})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == (f"waiting for the lock {lock} (another onedesk-azuread or dnf is "
                        f"changing the settings)")
    assert len(lines) == 2, lines
    assert lines[1].startswith(f"Error: {lock}: still locked after 0.5 s by pid {holder.pid} ")
    assert "try again" in lines[1] and "ONEDESK_AZUREAD_LOCK_TIMEOUT" in lines[1]
    assert snapshot(root) == before


def test_the_wait_ends_when_the_other_process_lets_go(root, settings_path, hold_lock):
    hold_lock(seconds=1)
    proc = cli(root, "set", "--client-id", CLIENT_ID, "--secret-stdin", input=SECRET,
               env={"ONEDESK_AZUREAD_LOCK_TIMEOUT": "25"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("waiting for the lock ")
    assert settings_path.read_text() == GOOD


def test_the_plugin_never_hangs_dnf_on_the_lock(configured, settings_path, hold_lock):
    settings_path.write_text(GOOD.replace("\n", "\r\n"))  # pre_transaction repairs: a write
    hold_lock()
    env = {"ONEDESK_AZUREAD_LOCK_TIMEOUT": "0.5"}
    for step in ("inject", "record"):
        proc = plugin(configured.parents[2], step, env=env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1, proc.stderr
        assert lines[0].startswith("onedesk-azuread: waiting for the lock ")
        assert lines[-1].startswith(f"{configured / 'lock'}: still locked after 0.5 s")
    assert not (configured / "applied.json").exists()


def test_the_lock_is_reentrant_within_a_process_and_released_after(root, settings_path):
    state_dir = str(root / STATE)
    with state.locked(state_dir):
        with state.locked(state_dir):
            settings.update(str(settings_path), lambda snap: settings.Edit(GOOD),
                            state_dir=state_dir)
        state.save_expiry(state_dir, SECRET, state.parse_date("2099-01-31"))
        held = subprocess.run([sys.executable, "-c", TRY_LOCK, f"{state_dir}/lock"],
                              capture_output=True, text=True, timeout=BOUNDED, check=False)
        assert held.stdout == "busy\n"  # still held by the outer `with`
    free = subprocess.run([sys.executable, "-c", TRY_LOCK, f"{state_dir}/lock"],
                          capture_output=True, text=True, timeout=BOUNDED, check=False)
    assert free.stdout == "free\n"
    assert state.load_expiry(state_dir, SECRET) == state.parse_date("2099-01-31")


TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("free")
except BlockingIOError:
    print("busy")
"""


def test_the_lock_file_is_root_only_and_the_settings_directory_is_not_locked(root,
                                                                             settings_path):
    directory = os.open(settings_path.parent, os.O_RDONLY)
    fcntl.flock(directory, fcntl.LOCK_EX)  # where the old lock was: /root itself
    try:
        proc = cli(root, "set", "--client-id", CLIENT_ID, "--secret-stdin", input=SECRET,
                   env={"ONEDESK_AZUREAD_LOCK_TIMEOUT": "0.5"})
    finally:
        os.close(directory)
    assert proc.returncode == 0, proc.stderr
    lock = os.lstat(root / STATE / "lock")
    assert stat.S_ISREG(lock.st_mode) and stat.S_IMODE(lock.st_mode) == 0o600
    assert lock.st_uid == os.geteuid()
    assert stat.S_IMODE(os.lstat(root / STATE).st_mode) == 0o700


@pytest.mark.parametrize("kind", ["symlink", "fifo", "other-owner"])
def test_a_lock_file_that_is_not_ours_is_refused(root, settings_path, tmp_path, kind):
    if kind == "other-owner" and os.geteuid() != 0:
        pytest.skip("chown needs root (CI runs as root)")
    state_dir = root / STATE
    state_dir.mkdir(parents=True, mode=0o700)
    lock = state_dir / "lock"
    if kind == "symlink":
        target = tmp_path / "target"
        lock.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(lock, 0o600)
    else:
        lock.touch(mode=0o600)
        os.chown(lock, 1000, 1000)
    before = snapshot(settings_path.parent)
    proc = cli(root, "set", "--client-id", CLIENT_ID, "--secret-stdin", input=SECRET)
    one_line_error(proc, str(lock))
    assert snapshot(settings_path.parent) == before
    if kind == "symlink":
        assert not target.exists()


def test_in_process_cli_reports_the_wait_on_stderr(root, settings_path, hold_lock, monkeypatch):
    hold_lock()
    monkeypatch.setenv("ONEDESK_AZUREAD_LOCK_TIMEOUT", "0.2")
    result = Cli(root)("set", "--client-id", CLIENT_ID)
    assert result.exit_code == 1
    assert result.stderr.startswith("waiting for the lock ")
    assert result.stdout == ""
