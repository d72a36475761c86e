"""journal: apply's record of its plan and phase, and its own one-at-a-time lock."""

import json
import os

import pytest

from onedesk_azuread import journal
from onedesk_azuread.errors import StateError
from onedesk_azuread.paths import Paths

STATE = "var/lib/onedesk-azuread"
NAMES = ["onedesk-db-utils", "onedesk-webapps"]


def test_the_journal_round_trips_its_plan_and_phase(paths):
    assert journal.load(paths) is None
    steps = [{"title": "remove", "args": ["remove", "-y", *NAMES]}]
    started = journal.start(paths, list(reversed(NAMES)), NAMES, steps)
    found = journal.load(paths)
    assert found.record == started.record and found.phase == journal.PREFETCHING
    assert found.removed == sorted(NAMES) and found.reinstalled == NAMES
    assert os.stat(found.path).st_mode & 0o777 == 0o600
    journal.advance(paths, found, journal.INSTALLING)
    assert journal.load(paths).phase == journal.INSTALLING
    journal.finish(paths)
    assert journal.load(paths) is None and not os.path.exists(journal.path_of(paths))


@pytest.mark.parametrize("record", [{"version": 1, "phase": "flying"}, [], {"version": 99}])
def test_a_journal_the_tool_cannot_read_names_the_command_that_finds_out(paths, record):
    journal.start(paths, NAMES, NAMES, [])
    with open(journal.path_of(paths), "w") as handle:
        json.dump(record, handle)
    with pytest.raises(StateError) as err:
        journal.load(paths)
    message = str(err.value)
    assert message.startswith(f"{journal.path_of(paths)}: cannot be read as onedesk-azuread "
                              "apply's journal") and "\n" not in message


def test_finish_command_names_only_the_options_that_differ(tmp_path):
    assert journal.finish_command("/") == "onedesk-azuread apply"
    assert journal.finish_command("/", "/root/.OneDesk") == "onedesk-azuread apply"
    root = str(tmp_path)
    assert journal.finish_command(root, "/etc/x") == \
        f"onedesk-azuread --root {root} --file /etc/x apply"


def test_one_lock_at_a_time_and_running_says_so(paths):
    assert not journal.running(paths)
    fd = journal.lock(paths)
    try:
        assert journal.running(paths)
        with pytest.raises(StateError, match="another onedesk-azuread apply is running"):
            journal.lock(paths)
    finally:
        journal.unlock(fd)
    assert not journal.running(paths)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "other-owner"])
def test_apply_s_own_lock_file_gets_the_same_checks(root, tmp_path, kind):
    # apply.lock is opened like the write lock: never through a link, never another's file.
    state_dir = root / STATE
    state_dir.mkdir(parents=True, mode=0o700)
    lock = state_dir / journal.LOCK_FILE
    target = tmp_path / "target"
    if kind == "symlink":
        lock.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(lock, 0o600)
    else:
        lock.touch(mode=0o600)
        os.chown(lock, 1000, 1000)
    with pytest.raises(StateError) as err:
        journal.lock(Paths.under(str(root)))
    assert str(lock) in str(err.value) and "\n" not in str(err.value)
    assert not target.exists()
