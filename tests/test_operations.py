"""operations: what show, check, set and unset do to the settings file, called directly."""

from onedesk_azuread import KEYS, operations, shellfile

from .conftest import CLIENT_ID, OTHER_SECRET, SECRET, read_settings, write_settings


def test_mask_shows_azure_s_hint_and_never_a_short_secret_whole():
    assert operations.mask(SECRET) == SECRET[:3] + "…"
    assert operations.mask("ab") == "…"


def test_plan_set_is_pure_and_gives_text_diff_and_findings():
    doc = shellfile.parse(f"# keep\nexport AZUREAD_CID='{CLIENT_ID}'\nX=1\n", KEYS, "/x")
    plan = operations.plan_set(doc, operations.Given(secret=OTHER_SECRET), kept_expiry=None)
    assert plan.text.startswith("# keep\n") and "X=1\n" in plan.text
    assert plan.doc.value("AZUREAD_CIS") == OTHER_SECRET
    assert plan.changes == {"AZUREAD_CIS": "added"} and plan.secret_changed
    assert plan.findings == []
    same = operations.plan_set(plan.doc, operations.Given(secret=OTHER_SECRET),
                                kept_expiry=None)
    assert same.changes == {"AZUREAD_CIS": "unchanged"} and same.text == plan.text
    bad = operations.plan_set(doc, operations.Given(client_id="nope"))
    assert [f.code for f in bad.findings if f.severity == "error"]




def test_show_of_a_missing_file_says_so_and_what_is_not_set(paths):
    shown = operations.show(paths)
    assert shown.as_dict()["exists"] is False and shown.as_dict()["secret"] is None
    assert shown.lines()[0] == f"file:         {paths.settings} (does not exist)"
    assert "AZUREAD_CIS:  not set" in shown.lines()


def test_set_then_unset_keep_the_other_lines(paths):
    write_settings(paths, "# keep\nX=1\n")
    done = operations.set_entries(paths, operations.Given(client_id=CLIENT_ID, secret=SECRET))
    assert done.written and done.changes == {"AZUREAD_CID": "added", "AZUREAD_CIS": "added"}
    assert read_settings(paths) == f"# keep\nX=1\nAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
    gone = operations.unset_entries(paths)
    assert gone.changed and gone.as_dict()["backup"] == paths.settings + ".bak"
    assert read_settings(paths) == "# keep\nX=1\n"
    assert not operations.unset_entries(paths).changed
