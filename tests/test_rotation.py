"""rotate's journal (rotate.json) and its record of the key this server created (key.json):
what they hold (never the secret), what they refuse to read, and what status makes of them."""

import json
import os

import pytest

from onedesk_azuread import rotation, state
from onedesk_azuread.errors import StateError
from onedesk_azuread.status import status

from .conftest import CLIENT_ID, OTHER_SECRET, SECRET

KEY = "3c9a7f10-2b4d-4e8f-9a1c-5d6e7f809a1b"
OLD = "8e2f4a6c-1b3d-4f5e-8a7b-9c0d1e2f3a4b"
NAME = "onedesk-azuread helpdesk.example.com 2026-12-03"


def files_hold(paths, *secrets):
    for name in os.listdir(paths.state_dir):
        with open(os.path.join(paths.state_dir, name), "rb") as handle:
            data = handle.read()
        if any(secret.encode() in data for secret in secrets):
            return name
    return None


def test_the_key_record_names_the_key_of_exactly_this_pair(paths):
    rotation.save_key(paths.state_dir, CLIENT_ID, SECRET, KEY, NAME)
    assert rotation.load_key(paths.state_dir, CLIENT_ID, SECRET) == KEY
    assert rotation.load_key(paths.state_dir, CLIENT_ID, OTHER_SECRET) is None
    assert rotation.load_key(paths.state_dir, "another-client", SECRET) is None
    path = os.path.join(paths.state_dir, rotation.KEY_FILE)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert files_hold(paths, SECRET) is None


@pytest.mark.parametrize("text", ["{", "[]", '{"key_id": 1}',
                                  '{"key_id": "k", "client_id": "c", "salt": "zz", '
                                  '"fingerprint": "f"}'])
def test_a_key_record_the_tool_did_not_write_is_one_line_naming_it(paths, text):
    rotation.save_key(paths.state_dir, CLIENT_ID, SECRET, KEY, NAME)  # the directory, 0700
    path = os.path.join(paths.state_dir, rotation.KEY_FILE)
    with open(path, "w") as handle:
        handle.write(text)
    with pytest.raises(StateError) as caught:
        rotation.load_key(paths.state_dir, CLIENT_ID, SECRET)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and "delete it" in message


def test_the_journal_moves_through_its_phases_without_the_secret(paths):
    journal = rotation.start(paths, rotation.Intent(CLIENT_ID, NAME, [OLD], OLD, True))
    assert rotation.load(paths).phase == rotation.ADDING and journal.key_id is None
    journal = rotation.advance(paths, journal, rotation.ADDED, OTHER_SECRET, key_id=KEY,
                               expires="2027-12-02")
    found = rotation.load(paths)
    assert (found.phase, found.key_id, found.hint) == (rotation.ADDED, KEY, OTHER_SECRET[:3])
    assert found.holds(OTHER_SECRET) and not found.holds(SECRET) and not found.holds(None)
    assert os.stat(found.path).st_mode & 0o777 == 0o600
    assert files_hold(paths, OTHER_SECRET, SECRET) is None
    rotation.forget(paths)
    assert rotation.load(paths) is None


def test_a_journal_the_tool_cannot_read_is_one_line_naming_it(paths):
    rotation.start(paths, rotation.Intent(CLIENT_ID, NAME, [], None, False))
    with open(rotation.path_of(paths), "w") as handle:
        json.dump({"version": 1, "phase": "flying"}, handle)
    with pytest.raises(StateError) as caught:
        rotation.load(paths)
    assert str(caught.value).startswith(f"{rotation.path_of(paths)}: cannot be read as "
                                        "onedesk-azuread rotate's journal")


def test_a_rotation_with_nothing_left_to_do_is_not_unfinished(paths, settings_path):
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={OTHER_SECRET}\n")
    settings_path.chmod(0o600)
    journal = rotation.start(paths, rotation.Intent(CLIENT_ID, NAME, [OLD], None, False))
    journal = rotation.advance(paths, journal, rotation.WRITTEN, OTHER_SECRET, key_id=KEY)
    assert journal.left(holds_new=True, in_sync=False)
    assert not journal.left(holds_new=True, in_sync=True)  # no old secret was to be retired
    retiring = rotation.advance(paths, journal, rotation.APPLIED, old_key_id=OLD, retire=True)
    assert retiring.left(holds_new=True, in_sync=True)
    state.save_json(paths.state_dir, "unrelated.json", {})  # the journal is found by name
    assert status(paths).rotation is not None
