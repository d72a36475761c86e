"""The hook (onedesk_azuread/hook.py) called directly on a temporary root: what a OneDesk
transaction does with the entries, without rpm or dnf, so its decisions are tested fast and
on every Python the suite runs on. (test_plugin.py and test_dnf5.py drive it through real
dnf 4 and dnf 5.)"""

from datetime import date, timedelta

from onedesk_azuread import hook, state

from .conftest import CLIENT_ID, SECRET, SECRET_ID, read_settings, write_settings

GOOD = f"OTHER_SETTING=kept\nAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"


def codes(findings):
    return sorted(f.code for f in findings)


def test_no_entries_pass_unless_required(paths):
    write_settings(paths, "OTHER_SETTING=kept\n")
    optional = hook.preflight(paths, require=False)
    assert (optional.present, optional.blocking) == (False, [])
    required = hook.preflight(paths, require=True)
    assert not required.present and required.blocking


def test_a_good_file_passes_with_nothing_to_say(paths):
    write_settings(paths, GOOD)
    assert hook.preflight(paths, require=True) == hook.Preflight(True, [], [], [])


def test_repairable_errors_are_notes_not_stops(paths):
    write_settings(paths, GOOD.replace("\n", "\r\n"))
    found = hook.preflight(paths, require=True)
    assert found.blocking == [] and "crlf" in codes(found.notes)


def test_a_pasted_secret_id_stops_and_the_message_names_the_fix_not_the_value(paths):
    write_settings(paths, GOOD.replace(SECRET, SECRET_ID))
    found = hook.preflight(paths, require=True)
    assert found.blocking
    message = hook.blocking_message(paths, found.blocking, "/srv/root")
    assert "nothing was installed" in message and "--root /srv/root" in message
    assert SECRET_ID not in message


def test_an_entry_in_an_unsupported_construct_is_present_and_stops(paths):
    write_settings(paths, f"if true; then AZUREAD_CIS={SECRET}; fi\nAZUREAD_CID={CLIENT_ID}\n")
    found = hook.preflight(paths, require=False)
    assert found.present and "unsupported-construct" in codes(found.blocking)


def test_a_passed_expiry_alerts_but_never_stops(paths):
    write_settings(paths, GOOD)
    state.save_expiry(paths.state_dir, SECRET, date.today() - timedelta(days=1))
    found = hook.preflight(paths, require=True)
    assert found.blocking == [] and codes(found.alerts) == ["secret-expired"]


def test_an_unreadable_expiry_record_alerts_but_never_stops(paths):
    write_settings(paths, GOOD)
    state.state_directory(paths.state_dir, create=True)
    with open(f"{paths.state_dir}/expiry.json", "w") as handle:
        handle.write('{"expires": ')
    found = hook.preflight(paths, require=True)
    assert found.blocking == [] and codes(found.alerts) == ["expiry-unreadable"]
    said = hook.alert(paths._replace(root="/srv/root"), found.alerts[0])
    assert said.startswith("onedesk-azuread: the secret's recorded expiry cannot be read: ")
    assert "expiry.json: is not valid JSON" in said and "installing anyway" in said
    assert "onedesk-azuread set --expires YYYY-MM-DD --root /srv/root" in said
    repaired, values = hook.inject(paths)  # the check under the lock does not stop either
    assert values == {"AZUREAD_CID": CLIENT_ID, "AZUREAD_CIS": SECRET}


def test_inject_repairs_and_returns_the_pair_that_record_records(paths):
    write_settings(paths, GOOD.replace("\n", "\r\n"))
    repaired, values = hook.inject(paths)
    assert set(codes(repaired)) == {"crlf"} and values == {"AZUREAD_CID": CLIENT_ID,
                                                       "AZUREAD_CIS": SECRET}
    # Our lines canonical, the rest as it was.
    assert read_settings(paths) == GOOD.replace("kept\n", "kept\r\n")
    hook.record(paths, values, ["onedesk-db-utils-2.0-1.noarch"])
    record = state.load_applied(paths.state_dir)
    assert state.sync_state(record, CLIENT_ID, SECRET) == state.IN_SYNC
    assert record["packages"] == ["onedesk-db-utils-2.0-1.noarch"]


def test_record_needs_both_entries(paths):
    hook.record(paths, {"AZUREAD_CID": CLIENT_ID}, ["onedesk-db-utils-2.0-1.noarch"])
    assert state.load_applied(paths.state_dir) is None


def test_a_statement_nested_too_deeply_stops_in_one_finding_not_a_recursion_error(paths):
    deep = "X=" + "$(echo " * 500 + "hi" + ")" * 500  # bash accepts it
    write_settings(paths, f"AZUREAD_CID={CLIENT_ID}\n{deep}\nAZUREAD_CIS={SECRET}\n")
    found = hook.preflight(paths, require=False)
    assert found.present
    assert [(f.code, f.key, f.line) for f in found.blocking] == [
        ("unsupported-construct", None, 2), ("unsupported-construct", "AZUREAD_CIS", 3)]


# --- what both package managers' adapters say -----------------------------------------------

def test_the_settings_path_rule_names_the_option_as_each_configuration_spells_it():
    for good in ("/root/.OneDesk", "/srv/one desk/.OneDesk", "/root/..OneDesk"):
        assert hook.settings_path_problem(good, "file = ", repr(good)) is None
    for bad in ("root/.OneDesk", "/root/../etc/passwd", "/root/.One\x1bDesk", ""):
        problem = hook.settings_path_problem(bad, "--settings=", bad)
        assert problem.startswith(f"--settings={bad} is not an absolute path without \"..\"")
        assert problem.endswith("as seen inside the installroot: --settings=/root/.OneDesk")


def test_the_verdict_says_notes_at_their_level_alerts_as_warnings_and_the_stop(paths):
    write_settings(paths, "OTHER_SETTING=kept\n")
    assert hook.verdict(paths, require=False) == hook.Verdict(
        False, [(hook.INFO, hook.MSG_NO_ENTRIES % paths.settings)], None)
    assert hook.verdict(paths, require=True) == hook.Verdict(
        False, [], hook.MSG_NO_ENTRIES_REQUIRED % paths.settings)
    write_settings(paths, GOOD.replace("\n", "\r\n"))
    state.save_expiry(paths.state_dir, SECRET, date.today() - timedelta(days=1))
    said = hook.verdict(paths, require=True)
    assert said.present and said.stop is None
    *notes, passed = said.said
    assert {level for level, _ in notes} == {hook.INFO} and "(CRLF)" in notes[0][1]
    assert passed[0] == hook.WARNING and "installing anyway" in passed[1]
    write_settings(paths, GOOD.replace(SECRET, SECRET_ID))
    stopped = hook.verdict(paths, require=False)
    assert stopped.present and stopped.stop.startswith("onedesk-azuread: ")
    assert "nothing was installed" in stopped.stop and SECRET_ID not in stopped.stop


def test_any_failure_is_one_line_saying_who_speaks_once():
    from onedesk_azuread.errors import Blocked, StateError

    assert hook.failure_line(StateError("/x: cannot write: No space")) == (
        "onedesk-azuread: /x: cannot write: No space")
    assert hook.failure_line(Blocked("onedesk-azuread: stop")) == "onedesk-azuread: stop"
    assert hook.failure_line(KeyError("secret")) == hook.MSG_UNEXPECTED % "KeyError"
    assert "secret" not in hook.failure_line(KeyError("secret"))
    assert hook.failure_line(StateError("/x: gone"), recording=True) == (
        hook.MSG_NOT_RECORDED % "/x: gone")
    assert hook.failure_line(KeyError(), recording=True) == hook.MSG_NOT_RECORDED % "KeyError"
