"""status: what the settings, the record of what was applied and the packages say together,
and what an interrupted apply or rotate left."""

from onedesk_azuread import rotation
from onedesk_azuread import status as status_module
from onedesk_azuread.status import status

from .conftest import CLIENT_ID, OTHER_SECRET, SECRET

KEY = "3c9a7f10-2b4d-4e8f-9a1c-5d6e7f809a1b"
OLD = "8e2f4a6c-1b3d-4f5e-8a7b-9c0d1e2f3a4b"
NAME = "onedesk-azuread helpdesk.example.com 2026-12-03"


def test_without_onedesk_installed_status_says_so_and_is_not_ok(paths, configured):
    found = status(paths)
    assert found.sync == status_module.NOT_INSTALLED and not found.ok
    assert found.errors == [] and found.unfinished is None and found.rotation is None
    record = found.as_dict()
    assert record["state"] == status_module.NOT_INSTALLED and record["valid"] is True
    assert set(record["installed"].values()) == {None}
    assert "applied:   not installed: onedesk-db-utils is not installed" in \
        "\n".join(found.lines())


def test_status_names_what_an_unfinished_rotation_left(paths, settings_path):
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n")
    settings_path.chmod(0o600)
    journal = rotation.start(paths, rotation.Intent(CLIENT_ID, NAME, [OLD], OLD, True))
    command = f"onedesk-azuread --root {paths.root} rotate --finish"
    adding = status(paths)
    assert adding.rotation is not None
    assert (f"rotate:    the rotation started {journal.started} was interrupted while adding "
            f"the new secret in Azure; Azure may hold a new secret named '{NAME}' that nothing "
            f"uses (its key id was not read); undo it with: {command} (deletes the unused "
            f"secret in Azure, then forgets it)") in adding.lines()
    rotation.advance(paths, journal, rotation.ADDED, OTHER_SECRET, key_id=KEY)
    added = status(paths).as_dict()["unfinished_rotation"]
    assert (added["phase"], added["new_key_id"], added["old_key_id"]) == ("added", KEY, OLD)
    assert added["command"] == command and added["new_secret_written"] is False
    assert f"Azure holds a new secret {KEY} (hint {OTHER_SECRET[:3]}…)" in added["explanation"]
    # Written here (the file holds the new secret), the packages not applied yet
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={OTHER_SECRET}\n")
    written = status(paths)
    assert written.rotation.holds_new and not written.rotation.in_sync
    assert f"the new secret {KEY} is written to {settings_path} but not applied" in \
        written.rotation.explain()
    # A status asked by apply or the daily check does not read it
    assert status(paths, unfinished_too=False).rotation is None


