"""`rotate`: a stand-in `az` (tests/fake_az.py) and the local fake authority share one state
file, so msal's real code path meets an "Azure" that holds exactly the secrets az created,
accepts a new one only after a propagation delay and refuses a retired one."""

import contextlib
import json
import os
import sys
import time
from datetime import date, datetime, timedelta, timezone

import pytest

from onedesk_azuread import rotate, state, validation
from onedesk_azuread.azcli import Credential, parse_time
from onedesk_azuread.errors import RotationFailed

from . import fake_az
from .conftest import CLIENT_ID, OTHER_SECRET, SECRET, SECRET_ID, bash_reads

TENANT = "contoso.onmicrosoft.com"
HERE = os.path.dirname(os.path.abspath(__file__))
OLD_END = date.today() + timedelta(days=20)  # soon: the reason to rotate
HOST = rotate.server_name()
# The current secret, as this server's earlier rotation named it.
MINE = f"onedesk-azuread {HOST} {date.today() - timedelta(days=300)}"


class Az:
    """The stand-in az on PATH, its state and its call log."""

    def __init__(self, directory):
        self.bin = directory / "bin"
        self.bin.mkdir()
        self.path = self.bin / "az"
        with open(os.path.join(HERE, "fake_az.py")) as handle:
            body = handle.read().split("\n", 1)[1]
        # This interpreter, whatever python3 PATH has: the stand-in needs only the stdlib.
        self.path.write_text(f"#!{sys.executable}\n{body}")
        self.path.chmod(0o755)
        self.state = str(directory / "az-state.json")
        self.log = str(directory / "az-calls.jsonl")
        other_end = (date.today() + timedelta(days=400)).isoformat() + "T08:00:00.5Z"
        fake_az.make_state(self.state, CLIENT_ID, [
            (SECRET, fake_az.stale_start(), f"{OLD_END.isoformat()}T09:12:44.1234567Z", MINE),
            (OTHER_SECRET, fake_az.stale_start(100), other_end, "someone else's"),
        ])

    def data(self):
        return fake_az.load(self.state)

    def set(self, **changes):
        data = self.data()
        data.update(changes)
        fake_az.save(self.state, data)

    def keys(self):
        return [e["keyId"] for e in self.data()["apps"][CLIENT_ID]["passwordCredentials"]]

    def key_of(self, secret):
        data = self.data()
        return next(k for k, v in data["values"].items() if v == secret)

    def value(self, key):
        return self.data()["values"][key]

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as handle:
            return [json.loads(line) for line in handle]

    def verbs(self):
        return [call["argv"][3] for call in self.calls()]


@pytest.fixture
def az(tmp_path, monkeypatch):
    found = Az(tmp_path)
    monkeypatch.setenv("PATH", f"{found.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_AZ_STATE", found.state)
    monkeypatch.setenv("FAKE_AZ_LOG", found.log)
    monkeypatch.delenv("ONEDESK_AZUREAD_AZ", raising=False)
    return found


@pytest.fixture
def azure(azure_server, ca, az, monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    for name in ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    azure_server.token = "ok"
    azure_server.az_state = az.state
    del azure_server.seen[:]
    yield azure_server
    azure_server.az_state = None


def state_dir(root):
    return os.path.join(str(root), "var/lib/onedesk-azuread")


@pytest.fixture
def configured(root, settings_path):
    settings_path.write_text(f"OTHER=1\nAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n")
    settings_path.chmod(0o600)
    state.save_expiry(state_dir(root), SECRET, OLD_END)
    return settings_path


def rotate_cli(run, azure, *extra):
    return run("rotate", "--tenant", TENANT, "--authority-host", azure.url, *extra)


def accepted(az, secret):
    return fake_az.accepted(az.state, CLIENT_ID, secret)


def accepted_at(az, secret, now):
    return fake_az.accepted(az.state, CLIENT_ID, secret, now=now)


def assert_never_leaked(root, az, result, *secrets):
    """No secret on az's command line or in its environment, in our output, in our state."""
    for secret in secrets:
        assert secret not in result.stdout + result.stderr
        for call in az.calls():
            assert not any(secret in word for word in call["argv"])
            assert not any(secret in value for value in call["env"].values())
        for folder, _, files in os.walk(state_dir(root)):
            for name in files:
                with open(os.path.join(folder, name), "rb") as handle:
                    assert secret.encode() not in handle.read(), name


def new_secret(az, before):
    fresh = [k for k in az.keys() if k not in before]
    assert len(fresh) == 1, fresh
    return fresh[0], az.value(fresh[0])


# --- the whole rotation, without the packages (--no-apply) ------------------------------

def test_rotate_no_apply_end_to_end(run, root, azure, az, configured, monkeypatch):
    monkeypatch.setenv("AZUREAD_CIS", SECRET)  # a stale export in the admin's shell
    old_key, before = az.key_of(SECRET), az.keys()
    start = time.monotonic()
    result = rotate_cli(run, azure, "--no-apply", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    key, secret = new_secret(az, before)
    assert report["changed"] is True and report["written"] is True
    assert (report["applied"], report["retired"]) == (False, False)
    assert (report["old_key_id"], report["new_key_id"]) == (old_key, key)
    assert report["secret_hint"] == secret[:3]
    # Azure AD took its time: the fake accepts a new secret only after 2 s.
    assert report["waited_seconds"] >= 1.5 and time.monotonic() - start >= 2
    assert bash_reads(configured, "AZUREAD_CID", "AZUREAD_CIS", "OTHER") == [CLIENT_ID, secret,
                                                                             "1"]
    entry = next(e for e in az.data()["apps"][CLIENT_ID]["passwordCredentials"]
                 if e["keyId"] == key)
    end = entry["endDateTime"][:10]
    assert report["expires"] == end
    assert state.load_expiry(state_dir(root), secret).isoformat() == end
    assert end == date.today().replace(year=date.today().year + 1).isoformat()
    assert old_key in az.keys() and accepted(az, SECRET) and accepted(az, secret)
    assert az.verbs() == ["list", "reset", "list"]
    reset = az.calls()[1]["argv"]
    assert "--append" in reset
    assert reset[reset.index("--display-name") + 1] == f"onedesk-azuread {HOST} {date.today()}"
    # Nothing unfinished: no journal; the new key is recorded as this server's.
    assert not os.path.exists(os.path.join(state_dir(root), "rotate.json"))
    from onedesk_azuread import rotation

    assert rotation.load_key(state_dir(root), CLIENT_ID, secret) == key
    assert all("AZUREAD_CIS" not in call["env"] for call in az.calls())
    assert_never_leaked(root, az, result, SECRET, secret)
    text = run("show").stdout
    assert secret[:3] + "…" in text and secret not in text


def midnight(day):
    return datetime.combine(day, datetime.min.time(), timezone.utc).timestamp()


def test_end_date_is_the_first_day_the_secret_no_longer_works(run, root, azure, az,
                                                               configured):
    from onedesk_azuread import metrics

    az.set(propagation_seconds=0)
    end = date.today() + timedelta(days=180)
    last = end - timedelta(days=1)
    result = rotate_cli(run, azure, "--no-apply", "--end-date", end.isoformat())
    assert result.exit_code == 0, result.stderr
    reset = az.calls()[1]["argv"]
    assert reset[reset.index("--end-date") + 1] == end.isoformat() and "--years" not in reset
    secret = bash_reads(configured, "AZUREAD_CIS")[0]
    # az sends DT00:00:00Z: Azure AD takes it until the last second of the day before.
    assert accepted_at(az, secret, midnight(end) - 1) and not accepted_at(az, secret,
                                                                          midnight(end))
    # The expiry recorded is that last day; check and the metrics say the same moment.
    assert state.load_expiry(state_dir(root), secret) == last
    assert metrics._expiry_timestamp(last) == midnight(end)
    assert f"done: rotated to the new secret {az.keys()[-1]} (expires {last.isoformat()})" \
        in result.stderr
    assert json.loads(run("show", "--json").stdout)["expires"] == last.isoformat()
    # check: still valid on the last day, expired from the end date on
    assert [f.code for f in validation._expiry_findings(last, last)] == ["secret-expires-soon"]
    assert [f.code for f in validation._expiry_findings(last, end)] == ["secret-expired"]
    assert "onedesk-azuread apply" in result.stderr  # --no-apply: the step left
    before = az.keys()
    again = rotate_cli(run, azure, "--no-apply", "--years", "2")
    assert again.exit_code == 0, again.stderr
    reset = az.calls()[-2]["argv"]
    assert reset[reset.index("--years") + 1] == "2"
    _, newer = new_secret(az, before)
    assert state.load_expiry(state_dir(root), newer).year == date.today().year + 2
    assert len(az.keys()) == 4  # --append: nothing else went


def test_dry_run_changes_nothing(run, root, azure, az, configured):
    before_text, before_keys = configured.read_bytes(), az.keys()
    result = rotate_cli(run, azure, "--dry-run", "--retire-old", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["changed"] is False and report["dry_run"] is True
    assert report["old_key_id"] == az.key_of(SECRET)
    assert "dry run: nothing was changed" in result.stderr
    assert f"az ad app credential delete --id {CLIENT_ID} --key-id {az.key_of(SECRET)}" \
        in result.stderr
    assert "--append" in result.stderr
    assert az.verbs() == ["list"]  # read-only
    assert configured.read_bytes() == before_text and az.keys() == before_keys
    assert azure.seen == []  # Azure AD was not even asked
    assert_never_leaked(root, az, result, SECRET)


def test_an_old_secret_that_cannot_be_told_apart_is_never_retired(run, root, azure, az,
                                                                   configured):
    state.save_expiry(state_dir(root), SECRET, OLD_END + timedelta(days=1))  # not Azure's date
    result = rotate_cli(run, azure, "--dry-run", "--retire-old")
    assert result.exit_code == 0
    assert (f"no secret of app {CLIENT_ID} has the hint {SECRET[:3]} and ends on "
            f"{(OLD_END + timedelta(days=1)).isoformat()}") in result.stderr
    assert "az ad app credential delete" not in result.stderr


def cred(key, hint, end, name=None):
    return Credential(key, hint, name, None, parse_time(end))


def test_current_key_matches_hint_and_recorded_expiry():
    creds = [cred("a", "Xk7", "2027-01-01T00:00:00Z"), cred("b", "Xk7", "2028-01-01T10:00:00Z"),
             cred("c", "Qa9", "2027-01-01T00:00:00Z")]
    assert rotate.current_key(creds[1:], CLIENT_ID, SECRET, None)[0].key_id == "b"
    assert rotate.current_key(creds[1:], CLIENT_ID, SECRET, date(2028, 1, 1))[0].key_id == "b"
    # A key ending at 00:00 UTC works until the day before: that is its recorded expiry
    # (and, from records written before, the date of endDateTime itself).
    assert rotate.current_key(creds[:1], CLIENT_ID, SECRET, date(2026, 12, 31))[0].key_id == "a"
    assert rotate.current_key(creds[:1], CLIENT_ID, SECRET, date(2027, 1, 1))[0].key_id == "a"
    assert rotate.current_key(creds[:1], CLIENT_ID, SECRET, date(2027, 1, 2))[0] is None


def test_two_keys_with_the_current_hint_are_no_proof_without_a_recorded_key_id():
    # The recorded expiry alone would pick b: a hint is 3 characters, a date is typed by hand.
    creds = [cred("a", "Xk7", "2027-01-01T00:00:00Z"), cred("b", "Xk7", "2028-01-01T10:00:00Z")]
    none, why = rotate.current_key(creds, CLIENT_ID, SECRET, date(2028, 1, 1))
    assert none is None and why == f"2 secrets of app {CLIENT_ID} have the hint Xk7 (a, b)"
    # The key id this server recorded when its rotate created the secret decides...
    assert rotate.current_key(creds, CLIENT_ID, SECRET, date(2028, 1, 1), "b")[0].key_id == "b"
    # ...unless the recorded expiry is another key's last day, or the id is gone.
    none, why = rotate.current_key(creds, CLIENT_ID, SECRET, date(2026, 12, 31), "b")
    assert none is None and why == ("the recorded expiry 2026-12-31 is not the last day of the "
                                    "key this server recorded for its secret (b, last day "
                                    "2028-01-01); it is the last day of a")
    none, why = rotate.current_key(creds, CLIENT_ID, SECRET, None, "z")
    assert none is None and why.startswith("the key id this server recorded for its secret (z) "
                                           "is not among the secrets")


# --- faults: each leaves the old secret working and the file consistent ------------------

def test_az_reset_fails(run, root, azure, az, configured):
    az.set(fail={"reset": {"message": "Insufficient privileges to complete the operation."}})
    before, keys = configured.read_bytes(), az.keys()
    result = rotate_cli(run, azure, "--no-apply", "--json")
    assert result.exit_code == 1
    assert "Insufficient privileges to complete the operation." in result.stderr
    assert "nothing was changed in Azure or on this server" in result.stderr
    assert json.loads(result.stdout)["changed"] is False
    assert configured.read_bytes() == before and az.keys() == keys
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    assert_never_leaked(root, az, result, SECRET)


def test_az_reset_that_failed_after_adding_names_the_unused_key(run, root, azure, az,
                                                                 configured):
    az.set(fail={"reset": {"message": "The operation timed out.", "after_add": True}})
    before, keys = configured.read_bytes(), az.keys()
    result = rotate_cli(run, azure, "--no-apply")
    assert result.exit_code == 1
    key, secret = new_secret(az, keys)
    assert f"Azure now has a new secret {key} that nothing uses" in result.stderr
    assert f"az ad app credential delete --id {CLIENT_ID} --key-id {key}" in result.stderr
    assert configured.read_bytes() == before
    assert_never_leaked(root, az, result, SECRET, secret)


def test_a_new_secret_that_never_becomes_valid(run, root, azure, az, configured):
    az.set(propagation_seconds=10 ** 6)
    before, keys = configured.read_bytes(), az.keys()
    start = time.monotonic()
    result = rotate_cli(run, azure, "--no-apply", "--wait", "2.5")
    elapsed = time.monotonic() - start
    assert result.exit_code == 1
    assert 2.5 <= elapsed < 2.5 + 5, elapsed  # bounded
    key, secret = new_secret(az, keys)
    assert f"Azure AD did not accept the new secret {key} within" in result.stderr
    assert "AADSTS7000215" in result.stderr
    assert "nothing was written on this server and the old secret still works" in result.stderr
    assert f"az ad app credential delete --id {CLIENT_ID} --key-id {key}" in result.stderr
    assert configured.read_bytes() == before
    assert state.load_expiry(state_dir(root), SECRET) == OLD_END
    assert accepted(az, SECRET) and az.key_of(SECRET) in az.keys()
    # msal asked more than once, with pauses in between (the backoff), and no more
    posts = [s for s in azure.seen if s[0] == "POST"]
    assert 2 <= len(posts) <= 5
    assert_never_leaked(root, az, result, SECRET, secret)


def test_apply_fails_the_file_is_written_and_the_old_key_kept(run, root, azure, az,
                                                              configured, monkeypatch,
                                                              tmp_path):
    az.set(propagation_seconds=0)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".rpmmacros").write_text("%_dbpath /var/lib/rpm\n")  # never the host's database
    monkeypatch.setenv("HOME", str(home))
    failing = tmp_path / "dnf-down"
    failing.write_text("#!/bin/sh\necho 'Error: Failed to download metadata for repo' >&2\n"
                       "exit 1\n")
    failing.chmod(0o755)
    monkeypatch.setenv("ONEDESK_AZUREAD_DNF", str(failing))
    old_key, keys = az.key_of(SECRET), az.keys()
    result = rotate_cli(run, azure, "--retire-old", "--json")
    assert result.exit_code == 1
    key, secret = new_secret(az, keys)
    message = result.stderr.strip().splitlines()[-1]
    assert f"the new secret {key} is written to {configured}" in message
    assert "Failed to download metadata" in message
    assert "OneDesk still uses the old secret, which still works and was not retired" in message
    assert message.endswith(f"finish with: onedesk-azuread --root {root} rotate --finish (it "
                            f"applies, then retires the old secret {old_key})")
    report = json.loads(result.stdout)
    assert (report["written"], report["applied"], report["retired"]) == (True, False, False)
    assert bash_reads(configured, "AZUREAD_CIS") == [secret]
    assert old_key in az.keys() and accepted(az, SECRET)  # NOT retired
    assert "delete" not in az.verbs()
    assert_never_leaked(root, az, result, SECRET, secret)


def test_not_logged_in(run, root, azure, az, configured):
    az.set(logged_in=False)
    before = configured.read_bytes()
    result = rotate_cli(run, azure, "--no-apply")
    assert result.exit_code == 1
    assert "the Azure CLI is not logged in (Please run 'az login' to setup account.)" \
        in result.stderr
    assert "run `az login`" in result.stderr and "nothing was changed" in result.stderr
    assert configured.read_bytes() == before and az.verbs() == ["list"]


def test_an_app_az_cannot_find(run, root, azure, az, configured):
    az.set(apps={})
    result = rotate_cli(run, azure, "--no-apply")
    assert result.exit_code == 1
    assert (f"(exit 1): Resource '{CLIENT_ID}' does not exist or one of its queried "
            f"reference-property objects are not present.") in result.stderr
    assert "nothing was changed" in result.stderr


def test_without_az_it_says_what_to_run_on_a_workstation(run, root, azure, configured,
                                                         monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("ONEDESK_AZUREAD_AZ", raising=False)
    before = configured.read_bytes()
    end = date.today() + timedelta(days=90)
    result = rotate_cli(run, azure, "--end-date", end.isoformat())
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "the Azure CLI (az) was not found on PATH" in lines[0]
    assert (f"az ad app credential reset --id {CLIENT_ID} --append --display-name "
            f"'onedesk-azuread {HOST} {date.today()}' --end-date {end} --query password -o tsv "
            f"| ssh root@") in lines[0]
    # az ends it at 00:00 UTC on --end-date: the last day it works is the day before.
    assert (f"onedesk-azuread set --secret-stdin --expires {end - timedelta(days=1)}"
            in lines[0])
    assert configured.read_bytes() == before
    monkeypatch.setenv("ONEDESK_AZUREAD_AZ", str(tmp_path / "no-such-az"))
    named = rotate_cli(run, azure)
    assert named.exit_code == 1 and "$ONEDESK_AZUREAD_AZ" in named.stderr
    monkeypatch.setenv("ONEDESK_AZUREAD_AZ", "az 'unclosed")
    broken = rotate_cli(run, azure)
    assert broken.exit_code == 1 and "cannot be split like a shell would" in broken.stderr
    assert "Traceback" not in broken.stderr


@pytest.mark.parametrize("args, words", [
    (["--years", "1", "--end-date", "2030-01-01"], "not both"),
    (["--retire-old", "--no-apply"], "--retire-old needs the apply"),
    (["--retire-key", "k", "--no-apply"], "--retire-old needs the apply"),
    (["--finish", "--dry-run"], "--finish takes no other rotate option"),
])
def test_usage_errors(run, azure, configured, args, words):
    result = rotate_cli(run, azure, *args)
    assert result.exit_code == 2
    assert words in result.stderr


def test_refuses_invalid_current_entries_and_past_end_dates(run, root, azure, az,
                                                             settings_path):
    settings_path.write_text(f"AZUREAD_CIS={SECRET}\n")
    result = rotate_cli(run, azure)
    assert result.exit_code == 1 and "AZUREAD_CID is not set" in result.stderr
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n")
    past = rotate_cli(run, azure, "--end-date", date.today().isoformat())
    assert past.exit_code == 1 and "is not in the future" in past.stderr
    settings_path.write_text(f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET_ID}\n")
    pasted = rotate_cli(run, azure)
    assert pasted.exit_code == 1 and "(fix them first)" in pasted.stderr
    assert "--force" not in pasted.stderr  # rotate has none to offer
    assert az.calls() == []
    assert not os.path.exists(state_dir(root))  # nothing on disk, not even the lock


def test_an_expired_current_secret_is_the_reason_to_rotate_not_a_refusal(run, root, azure,
                                                                          az, configured):
    state.save_expiry(state_dir(root), SECRET, date.today() - timedelta(days=3))
    result = rotate_cli(run, azure, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "1. add a new secret" in result.stderr


# --- whose key is it: the proof before anything is retired --------------------------------

OTHER_HOST = "web2.example.com"


def add_key(az, value, end, name):
    """Another secret in "Azure" (propagated long ago); its key id."""
    data = az.data()
    entry = fake_az.credential(value, fake_az.stale_start(50), end, name)
    data["apps"][CLIENT_ID]["passwordCredentials"].append(entry)
    data["values"][entry["keyId"]] = value
    data["created"][entry["keyId"]] = 0
    fake_az.save(az.state, data)
    return entry["keyId"]


def rename_key(az, key, name):
    data = az.data()
    for entry in data["apps"][CLIENT_ID]["passwordCredentials"]:
        if entry["keyId"] == key:
            entry["displayName"] = name
    fake_az.save(az.state, data)


def test_two_keys_with_the_current_hint_keep_every_old_key(run, root, azure, az, configured):
    # Same 3 characters, another end date: the recorded expiry would single one out.
    twin = add_key(az, SECRET[:3] + OTHER_SECRET[3:], "2030-01-01T00:00:00Z", MINE)
    result = rotate_cli(run, azure, "--dry-run", "--retire-old")
    assert result.exit_code == 0, result.stderr
    old = az.key_of(SECRET)
    assert (f"the old secret will not be retired: 2 secrets of app {CLIENT_ID} have the hint "
            f"{SECRET[:3]} ({old}, {twin})") in result.stderr
    assert ". keep the old secret: 2 secrets of app" in result.stderr
    assert "az ad app credential delete" not in result.stderr


def test_a_recorded_key_id_that_azure_does_not_list_keeps_every_old_key(run, root, azure, az,
                                                                        configured):
    from onedesk_azuread import rotation

    gone = "6d1f0c2b-0000-4000-8000-000000000001"
    rotation.save_key(state_dir(root), CLIENT_ID, SECRET, gone, MINE)
    result = rotate_cli(run, azure, "--dry-run", "--retire-old")
    assert result.exit_code == 0, result.stderr
    assert (f"keep the old secret: the key id this server recorded for its secret ({gone}) is "
            f"not among the secrets of app {CLIENT_ID} with the hint {SECRET[:3]}"
            ) in result.stderr
    assert "az ad app credential delete" not in result.stderr


def test_a_recorded_expiry_that_is_another_keys_keeps_every_old_key(run, root, azure, az,
                                                                    configured):
    from onedesk_azuread import rotation

    twin_end = date.today() + timedelta(days=90)
    twin = add_key(az, SECRET[:3] + OTHER_SECRET[3:], f"{twin_end}T10:00:00Z", MINE)
    rotation.save_key(state_dir(root), CLIENT_ID, SECRET, az.key_of(SECRET), MINE)
    state.save_expiry(state_dir(root), SECRET, twin_end)
    result = rotate_cli(run, azure, "--dry-run", "--retire-old")
    assert result.exit_code == 0, result.stderr
    assert (f"keep the old secret: the recorded expiry {twin_end} is not the last day of the "
            f"key this server recorded for its secret ({az.key_of(SECRET)}, last day "
            f"{OLD_END}); it is the last day of {twin}") in result.stderr
    assert "az ad app credential delete" not in result.stderr
    # The recorded key id alone tells the twins apart once the dates agree again.
    state.save_expiry(state_dir(root), SECRET, OLD_END)
    again = rotate_cli(run, azure, "--dry-run", "--retire-old")
    assert (f"retire the old secret: az ad app credential delete --id {CLIENT_ID} --key-id "
            f"{az.key_of(SECRET)}") in again.stderr


def failing_dnf(monkeypatch, tmp_path, body="echo 'Error: Failed to download metadata' >&2\n"
                                            "exit 1\n"):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".rpmmacros").write_text("%_dbpath /var/lib/rpm\n")  # never the host's database
    monkeypatch.setenv("HOME", str(home))
    script = tmp_path / "dnf-stub"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    monkeypatch.setenv("ONEDESK_AZUREAD_DNF", str(script))
    return script


def test_a_current_secret_azure_ad_refuses_is_no_proof(run, root, azure, az, configured,
                                                       monkeypatch, tmp_path):
    failing_dnf(monkeypatch, tmp_path)
    az.set(propagation_seconds=0)
    data = az.data()  # Azure lists a key with our hint, but it is not our secret
    data["values"][az.key_of(SECRET)] = SECRET[:3] + OTHER_SECRET[3:]
    fake_az.save(az.state, data)
    keys = az.keys()
    result = rotate_cli(run, azure, "--retire-old")
    assert result.exit_code == 1
    assert ("the old secret will not be retired: Azure AD does not accept the current pair "
            "(") in result.stderr
    assert f"so no key of app {CLIENT_ID} is proven to be this server's" in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.endswith(f"finish with: onedesk-azuread --root {root} apply")
    assert set(keys) <= set(az.keys()) and "delete" not in az.verbs()


def test_another_servers_key_is_not_retired_unless_named(run, root, azure, az, configured):
    old = az.key_of(SECRET)
    rename_key(az, old, f"onedesk-azuread {OTHER_HOST} 2026-01-05")  # a fleet's shared secret
    result = rotate_cli(run, azure, "--dry-run", "--retire-old")
    assert result.exit_code == 0, result.stderr
    assert (f"keep the old secret: the old secret {old} ('onedesk-azuread {OTHER_HOST} "
            f"2026-01-05') is not tied to this server ({HOST}): neither recorded by its rotate "
            f"nor named after it, so another server may use it; if none does, name it: "
            f"--retire-key {old}") in result.stderr
    assert "az ad app credential delete" not in result.stderr
    named = rotate_cli(run, azure, "--dry-run", "--retire-key", old)
    assert named.exit_code == 0, named.stderr
    assert (f"retire the old secret: az ad app credential delete --id {CLIENT_ID} --key-id "
            f"{old}") in named.stderr
    # Naming a key that is not the current secret retires nothing.
    other = az.key_of(OTHER_SECRET)
    wrong = rotate_cli(run, azure, "--dry-run", "--retire-key", other)
    assert (f"keep the old secret: --retire-key {other} is not the current secret (its hint is "
            f"{OTHER_SECRET[:3]}, the current secret's is {SECRET[:3]})") in wrong.stderr
    unknown = rotate_cli(run, azure, "--dry-run", "--retire-key", "nope")
    assert f"--retire-key nope is not a secret of app {CLIENT_ID}" in unknown.stderr


def test_a_failed_reset_never_calls_another_servers_new_key_unused(run, root, azure, az,
                                                                   configured):
    theirs = f"onedesk-azuread {OTHER_HOST} {date.today()}"
    az.set(fail={"reset": {"message": "The operation timed out.", "after_add": True,
                           "added_by": theirs}})
    keys = az.keys()
    result = rotate_cli(run, azure, "--no-apply")
    assert result.exit_code == 1
    added, _ = new_secret(az, keys)
    message = result.stderr.strip().splitlines()[-1]
    assert "The operation timed out." in message and "nothing was changed" in message
    assert (f"Azure has a new secret {added} that this server cannot tie to itself (another "
            f"server's rotation?): it was left alone") in message
    assert "nothing uses" not in message and "az ad app credential delete" not in message
    assert added in az.keys()
    assert not os.path.exists(os.path.join(state_dir(root), "rotate.json"))


# --- a rotation killed at each step: status and the next rotate name what it left ----------

def rotate_process(root, azure, *args):
    """`onedesk-azuread rotate` as its own process and session (what a kill -9 meets)."""
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-c", "from onedesk_azuread.cli import main; main()", "--root",
         str(root), "rotate", "--tenant", TENANT, "--authority-host", azure.url, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def journal_of(root):
    path = os.path.join(state_dir(root), "rotate.json")
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def kill_when(proc, ready, limit=60):
    import signal

    deadline = time.monotonic() + limit
    try:
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the rotation never got there"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    return out + err


@pytest.mark.parametrize("point", ["adding", "added", "written"])
def test_a_killed_rotation_is_named_by_status_and_the_next_rotate(run, root, azure, az,
                                                                  configured, monkeypatch,
                                                                  tmp_path, point):
    keys = az.keys()
    started = tmp_path / "dnf-started"
    if point == "adding":  # killed while az adds the secret: its key id was never read
        az.set(hang={"reset": 600})
        ready = lambda: len(az.keys()) > len(keys) and journal_of(root)  # noqa: E731
    elif point == "added":  # killed while waiting for Azure AD to accept it
        az.set(propagation_seconds=10 ** 6)
        ready = lambda: (journal_of(root) or {}).get("phase") == "added"  # noqa: E731
    else:  # killed while its dnf runs
        az.set(propagation_seconds=0)
        failing_dnf(monkeypatch, tmp_path, f"touch {started}\nexec sleep 600\n")
        ready = started.exists
    output = kill_when(rotate_process(root, azure, "--wait", "600", "--retire-old"), ready)
    key, secret = new_secret(az, keys)
    journal_path = os.path.join(state_dir(root), "rotate.json")
    assert os.stat(journal_path).st_mode & 0o777 == 0o600
    assert journal_of(root)["phase"] == point
    command = f"onedesk-azuread --root {root} rotate --finish"
    # status, offline, from the journal: exit 1, what is left and the one command
    report = run("status")
    assert report.exit_code == 1
    line = next(x for x in report.stdout.splitlines() if x.startswith("rotate:"))
    assert "the rotation started " in line
    if point == "adding":
        assert (f"Azure may hold a new secret named 'onedesk-azuread {HOST} {date.today()}' "
                f"that nothing uses") in line
    elif point == "added":
        assert f"Azure holds a new secret {key} (hint {secret[:3]}…) that nothing uses" in line
    else:
        assert (f"the new secret {key} is written to {configured} but not applied: OneDesk "
                f"still uses the old secret") in line
    assert command in line
    unfinished = json.loads(run("status", "--json").stdout)["unfinished_rotation"]
    assert unfinished["phase"] == point and unfinished["command"] == command
    assert unfinished["new_key_id"] == (None if point == "adding" else key)
    # the next rotate, and its dry run, ask az and name the key and the command
    for args in (["--dry-run"], []):
        refused = rotate_cli(run, azure, *args)
        assert refused.exit_code == 1
        assert refused.stderr.strip().splitlines()[-1].startswith("Error: cannot rotate: the "
                                                                  "rotation started ")
        assert key in refused.stderr and command in refused.stderr
    assert az.keys() == [*keys, key] and az.verbs().count("reset") == 1
    assert_never_leaked(root, az, run("status"), SECRET, secret)
    assert secret not in output
    if point == "written":
        return  # --finish would apply it: the bed's test below
    # --finish undoes it: the unused key goes, the journal too
    finished = rotate_cli(run, azure, "--finish")
    assert finished.exit_code == 0, finished.stderr
    assert f"undone: deleted the unused new secret {key}" in finished.stderr
    assert az.keys() == keys and journal_of(root) is None
    assert json.loads(run("status", "--json").stdout)["unfinished_rotation"] is None
    again = rotate_cli(run, azure, "--finish", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["changed"] is False
    assert json.loads(again.stdout)["finished"] == "no unfinished rotation: nothing to finish"
    assert bash_reads(configured, "AZUREAD_CIS") == [SECRET]


def test_a_failed_rotation_whose_key_was_deleted_is_forgotten_by_the_next(run, root, azure,
                                                                         az, configured):
    az.set(propagation_seconds=10 ** 6)
    keys = az.keys()
    failed = rotate_cli(run, azure, "--no-apply", "--wait", "0")
    assert failed.exit_code == 1
    key, _ = new_secret(az, keys)
    assert journal_of(root)["key_id"] == key  # left behind, and said so
    assert key in run("status").stdout
    az.set(propagation_seconds=0)
    fake_az.main(["ad", "app", "credential", "delete", "--id", CLIENT_ID, "--key-id", key])
    again = rotate_cli(run, azure, "--no-apply")
    assert again.exit_code == 0, again.stderr
    assert "left nothing behind" in again.stderr and "its journal is forgotten" in again.stderr
    assert journal_of(root) is None


# --- with the packages: real rpm and dnf in the bed (tests/rpmbed.py) --------------------

def bed_rotate(root, az, *args):
    """rotate as an administrator runs it on the bed's root: the root's dnf and rpm, the
    stand-in az, the fake authority's CA."""
    from .rpmbed import cli

    env = dict(root.env, PATH=f"{az.bin}{os.pathsep}{root.env['PATH']}",
               FAKE_AZ_STATE=az.state, FAKE_AZ_LOG=az.log,
               REQUESTS_CA_BUNDLE=os.environ["REQUESTS_CA_BUNDLE"], NO_PROXY="127.0.0.1")
    return cli(root, *args, env=env)


@pytest.fixture
def installed(new_root):
    from .rpmbed import ONEDESK

    root = new_root()
    root.write_settings(f"OTHER_SETTING=kept\nAZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n")
    root.dnf("install", *ONEDESK)
    state.save_expiry(state_dir(root.path), SECRET, OLD_END)
    return root


def _descends_from(pid, ancestor):
    """Is process ``pid`` ``ancestor`` or one of its descendants (still running)?"""
    for _ in range(64):
        if pid == ancestor:
            return True
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            return False
        pid = int(stat.rsplit(b")", 1)[1].split()[1])  # the field after the name: ppid
        if pid <= 1:
            return False
    return False


class ProcWatch:
    """Samples the command line and environment of every process this test started while a
    rotation runs (az, dnf, rpm, bash, the install scripts), for any secret "Azure" holds.
    Only its own: other test runs on a shared machine use the same secrets."""

    def __init__(self, az):
        import threading

        self.az = az
        self.hits = []
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def _watch(self):
        while not self.stop.is_set():
            try:
                values = [v.encode() for v in self.az.data()["values"].values()]
            except (OSError, ValueError):
                continue
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                for part in ("cmdline", "environ"):
                    try:
                        with open(f"/proc/{pid}/{part}", "rb") as handle:
                            data = handle.read()
                    except OSError:
                        continue
                    if (any(value in data for value in values)
                            and _descends_from(int(pid), os.getpid())):
                        self.hits.append((pid, part))
            self.samples += 1


@pytest.mark.parametrize("whose", ["this server's", "named by the administrator"])
def test_rotate_applies_and_retires_the_old_secret(installed, azure, az, whose):
    root = installed
    old_key, keys = az.key_of(SECRET), az.keys()
    other_key = az.key_of(OTHER_SECRET)
    retire = ["--retire-old"]
    if whose != "this server's":  # a fleet's shared secret: only an explicit name retires it
        rename_key(az, old_key, f"onedesk-azuread {OTHER_HOST} 2026-01-05")
        retire = ["--retire-key", old_key]
    with ProcWatch(az) as watch:
        result = bed_rotate(root, az, "rotate", "--tenant", TENANT, "--authority-host",
                            azure.url, *retire, "--json")
    assert watch.samples >= 10 and watch.hits == []  # on no command line, in no environment
    assert result.exit_code == 0, result.stderr
    key, secret = new_secret(az, keys)
    report = json.loads(result.stdout)
    assert (report["written"], report["applied"], report["retired"]) == (True, True, True)
    assert (report["old_key_id"], report["new_key_id"]) == (old_key, key)
    # The file holds the new secret (compared by reading it back through bash, never shown).
    assert bash_reads(root.settings, "AZUREAD_CIS", "OTHER_SETTING") == [secret, "kept"]
    end = next(e["endDateTime"][:10] for e in az.data()["apps"][CLIENT_ID]["passwordCredentials"]
               if e["keyId"] == key)
    assert state.load_expiry(state_dir(root.path), secret).isoformat() == end
    # Applied: the install scripts sourced the new secret, and status is in sync.
    assert root.seen("onedesk-db-utils")["sourced_cis"] == secret
    assert root.seen("onedesk-webapps")["sourced_cis"] == secret
    status = bed_rotate(root, az, "status", "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["state"] == "in sync"
    # Retired in "Azure": the old key is gone, someone else's secret stays.
    assert old_key not in az.keys() and other_key in az.keys() and key in az.keys()
    assert not accepted(az, SECRET) and accepted(az, secret)
    assert az.verbs() == ["list", "reset", "list", "delete"]
    delete = az.calls()[-1]["argv"]
    assert delete[delete.index("--key-id") + 1] == old_key
    assert "done: in sync" in result.stderr
    assert_never_leaked(root.path, az, result, SECRET, secret)
    assert secret not in root.logs() and SECRET not in root.logs()


def test_a_failed_retirement_says_the_one_command_left(installed, azure, az):
    root = installed
    az.set(propagation_seconds=0.5,
           fail={"delete": {"message": "Insufficient privileges to complete the operation."}})
    old_key, keys = az.key_of(SECRET), az.keys()
    result = bed_rotate(root, az, "rotate", "--tenant", TENANT, "--authority-host", azure.url,
                        "--retire-old")
    assert result.exit_code == 1
    key, secret = new_secret(az, keys)
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"Error: rotated: the new secret {key} is in use and applied, "
                              f"but the old secret {old_key} was NOT retired")
    assert "Insufficient privileges to complete the operation." in message
    assert message.endswith(f"retire it with: az ad app credential delete --id {CLIENT_ID} "
                            f"--key-id {old_key}")
    assert bash_reads(root.settings, "AZUREAD_CIS") == [secret]
    assert json.loads(bed_rotate(root, az, "status", "--json").stdout)["state"] == "in sync"
    assert old_key in az.keys() and accepted(az, SECRET)
    assert_never_leaked(root.path, az, result, SECRET, secret)


def test_two_rotations_never_run_at_once(run, root, azure, az, configured, monkeypatch):
    import subprocess

    lock = os.path.join(state_dir(root), "rotate.lock")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o600)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", lock],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        monkeypatch.setenv("ONEDESK_AZUREAD_LOCK_TIMEOUT", "0.5")
        before = configured.read_bytes()
        result = rotate_cli(run, azure, "--no-apply")
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1
    assert f"{lock}: still locked after 0.5 s" in result.stderr
    assert az.calls() == [] and configured.read_bytes() == before


def test_the_process_watch_sees_a_secret_where_it_should_never_be(az):
    import subprocess

    with ProcWatch(az) as watch:
        leaky = subprocess.Popen(["sleep", "1"], env={"PATH": os.environ["PATH"],
                                                      "LEAK": OTHER_SECRET})
        leaky.wait()
    assert (str(leaky.pid), "environ") in watch.hits


def test_an_interrupt_while_waiting_names_the_unused_secret(root, az, configured):
    from onedesk_azuread.paths import Paths

    keys, before = az.keys(), configured.read_bytes()

    def interrupted(client_id, secret):
        raise KeyboardInterrupt

    lines = []
    with pytest.raises(RotationFailed) as caught:
        rotate.rotate(Paths.under(str(root)), rotate.Options(apply_after=False),
                      verify=interrupted, say=lines.append)
    key, secret = new_secret(az, keys)
    assert caught.value.exit_code == 130
    assert str(caught.value).startswith("interrupted before the new secret was written; Azure "
                                        f"has a new secret {key} that nothing uses")
    assert str(caught.value).endswith(f"az ad app credential delete --id {CLIENT_ID} "
                                      f"--key-id {key}")
    assert configured.read_bytes() == before
    assert all(secret not in line and SECRET not in line for line in lines)


def test_retire_old_keeps_another_servers_key(installed, azure, az):
    root = installed
    az.set(propagation_seconds=0.5)
    old_key, keys = az.key_of(SECRET), az.keys()
    rename_key(az, old_key, f"onedesk-azuread {OTHER_HOST} 2026-01-05")
    result = bed_rotate(root, az, "rotate", "--tenant", TENANT, "--authority-host", azure.url,
                        "--retire-old")
    assert result.exit_code == 1
    key, secret = new_secret(az, keys)
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"Error: rotated: the new secret {key} is in use and applied, "
                              f"but the old secret was NOT retired: the old secret {old_key} ")
    assert f"name it: --retire-key {old_key}" in message
    assert old_key in az.keys() and accepted(az, SECRET) and "delete" not in az.verbs()
    assert bash_reads(root.settings, "AZUREAD_CIS") == [secret]
    status = bed_rotate(root, az, "status", "--json")
    assert status.exit_code == 0, status.stdout  # nothing unfinished: it said what it kept
    assert json.loads(status.stdout)["unfinished_rotation"] is None


def test_a_rotation_killed_while_retiring_is_finished_by_finish(installed, azure, az):
    import subprocess

    root = installed
    az.set(propagation_seconds=0.5, hang={"delete": 600})
    old_key, keys = az.key_of(SECRET), az.keys()
    env = dict(root.env, PATH=f"{az.bin}{os.pathsep}{root.env['PATH']}",
               FAKE_AZ_STATE=az.state, FAKE_AZ_LOG=az.log,
               REQUESTS_CA_BUNDLE=os.environ["REQUESTS_CA_BUNDLE"], NO_PROXY="127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from onedesk_azuread.cli import main; main()", "--root",
         root.path, "rotate", "--tenant", TENANT, "--authority-host", azure.url,
         "--retire-old"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    output = kill_when(proc, lambda: "delete" in az.verbs(), limit=300)
    key, secret = new_secret(az, keys)
    assert journal_of(root.path)["phase"] == "applied"
    report = bed_rotate(root, az, "status")
    assert report.exit_code == 1
    assert (f"the new secret {key} is written and applied; the old secret {old_key} was not "
            f"retired; finish it with: onedesk-azuread --root {root.path} rotate --finish "
            f"(retires the old secret {old_key}, then forgets it)") in report.stdout
    az.set(hang={})
    done = bed_rotate(root, az, "rotate", "--finish")
    assert done.exit_code == 0, done.stderr
    assert (f"is complete (the new secret {key} is in use; the old secret {old_key} was "
            f"retired)") in done.stderr
    assert old_key not in az.keys() and key in az.keys() and journal_of(root.path) is None
    after = bed_rotate(root, az, "status", "--json")
    assert after.exit_code == 0 and json.loads(after.stdout)["unfinished_rotation"] is None
    assert_never_leaked(root.path, az, done, SECRET, secret)
    assert secret not in output
