"""azcli: Graph's timestamps and credential lists as az prints them, the last day a secret
works, which az is run, and the one `credential reset` command line (run, shown, scripted)."""

import os
import shutil
import subprocess
from datetime import date, datetime, timezone

import pytest

from onedesk_azuread import azcli
from onedesk_azuread.azcli import Credential, parse_time
from onedesk_azuread.errors import AzError

from .conftest import CLIENT_ID

KEY = "6b1c7a50-2f0e-4f3a-9a86-1f2d3c4b5a69"


def cred(key, hint, end, name=None):
    return Credential(key, hint, name, None, parse_time(end))


def test_graph_times_with_7_digits_and_offsets():
    assert parse_time("2026-12-02T00:37:39.6171427Z") == datetime(
        2026, 12, 2, 0, 37, 39, 617142, tzinfo=timezone.utc)
    assert parse_time("2026-12-02T01:00:00+01:00").hour == 0
    assert parse_time("2026-12-02T00:37:39") == datetime(2026, 12, 2, 0, 37, 39,
                                                         tzinfo=timezone.utc)
    assert parse_time("yesterday") is None
    assert parse_time("2026-02-30T00:00:00Z") is None
    assert parse_time(None) is None


def test_the_last_day_a_key_works():
    # az's --end-date D: endDateTime DT00:00:00Z, the last day is D-1; --years N ends in a day.
    assert cred("a", "x", "2027-12-03T00:00:00Z").last_day == date(2027, 12, 2)
    assert cred("a", "x", "2027-12-03T10:22:31Z").last_day == date(2027, 12, 3)
    assert cred("a", "x", "2027-12-03T00:00:00.5Z").last_day == date(2027, 12, 3)
    assert cred("a", "x", None).last_day is None


def test_a_recorded_expiry_is_the_last_day_or_endDateTimes_own_date():
    ends_at_midnight = cred("a", "x", "2027-12-03T00:00:00Z")
    assert ends_at_midnight.ends_on(date(2027, 12, 2)) and ends_at_midnight.ends_on(
        date(2027, 12, 3))
    assert not ends_at_midnight.ends_on(date(2027, 12, 4))
    assert not cred("a", "x", None).ends_on(date(2027, 12, 3))


def test_the_server_named_in_a_display_name():
    assert cred("a", "x", None, "onedesk-azuread web1.example 2026-12-03").host == "web1.example"
    for name in ("onedesk-azuread 2026-12-03", "Password uploaded on Tue", "", None,
                 "other web1 2026-12-03"):
        assert cred("a", "x", None, name).host is None


def test_credential_lists_as_az_prints_them():
    listed = azcli.parse_credentials([
        {"keyId": KEY, "hint": "Xk7", "displayName": "onedesk-azuread h 2026-12-03",
         "startDateTime": "2026-12-03T10:00:00Z", "endDateTime": "2027-12-03T00:00:00Z",
         "secretText": None, "customKeyIdentifier": None},
        {"keyId": "k2", "hint": None, "displayName": 7},
    ], "ad app credential list")
    assert listed[0] == Credential(KEY, "Xk7", "onedesk-azuread h 2026-12-03",
                                   datetime(2026, 12, 3, 10, tzinfo=timezone.utc),
                                   datetime(2027, 12, 3, tzinfo=timezone.utc))
    assert listed[1] == Credential("k2", None, None, None, None)
    assert azcli.parse_credentials([], "list") == []


@pytest.mark.parametrize("data, why", [
    ({"keyId": KEY}, "not a list of credentials"),
    (["x"], "not a list of credentials"),
    ([{"hint": "Xk7"}], "a credential without a keyId"),
    ([{"keyId": ""}], "a credential without a keyId"),
])
def test_anything_else_is_not_what_az_prints(data, why):
    with pytest.raises(AzError) as caught:
        azcli.parse_credentials(data, "ad app credential list --id X")
    assert str(caught.value) == ("`az ad app credential list --id X` printed something that is "
                                 f"not the JSON the Azure CLI prints ({why})")


def test_which_az_is_run(monkeypatch, tmp_path):
    path = os.environ["PATH"]
    monkeypatch.delenv(azcli.AZ_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert azcli.command() is None
    assert azcli.missing() == "the Azure CLI (az) was not found on PATH"
    az = tmp_path / "az"
    az.write_text("#!/bin/sh\n")
    az.chmod(0o755)
    assert azcli.command() == [str(az)]
    # $ONEDESK_AZUREAD_AZ is split like a shell would; its program is looked up on PATH.
    monkeypatch.setenv("PATH", path + os.pathsep + str(tmp_path))
    monkeypatch.setenv(azcli.AZ_ENV, "sh -c 'exec az \"$@\"' az")
    assert azcli.command() == [shutil.which("sh"), "-c", 'exec az "$@"', "az"]
    monkeypatch.setenv(azcli.AZ_ENV, "no-such-az --flag")
    assert azcli.command() is None
    assert azcli.missing() == ("the Azure CLI (no-such-az --flag) was not found "
                               "($ONEDESK_AZUREAD_AZ)")
    monkeypatch.setenv(azcli.AZ_ENV, "az 'unclosed")
    with pytest.raises(AzError, match="cannot be split like a shell would"):
        azcli.command()


def test_rotate_adds_with_append_and_reads_the_json_answer():
    assert azcli.Az(["az"], CLIENT_ID).reset_args("onedesk-azuread h 2026-12-03", None, None) == [
        "ad", "app", "credential", "reset", "--id", CLIENT_ID, "--append",
        "--display-name", "onedesk-azuread h 2026-12-03", "--years", "1", "-o", "json"]
    args = azcli.reset_args(CLIENT_ID, "n", years=2, end_date=date(2028, 5, 31))
    assert args[args.index("--end-date") + 1] == "2028-05-31" and "--years" not in args
    assert azcli.reset_args(CLIENT_ID, "n", years=2)[-4:] == ["--years", "2", "-o", "json"]


def test_an_administrator_pipes_the_password_alone():
    line = azcli.shell_line(["az", *azcli.reset_args(
        CLIENT_ID, "onedesk-azuread h 2026-12-03", end_date=date(2028, 5, 31),
        password_only=True)])
    assert line == (f"az ad app credential reset --id {CLIENT_ID} --append --display-name "
                    "'onedesk-azuread h 2026-12-03' --end-date 2028-05-31 --query password "
                    "-o tsv")


def test_a_script_renders_it_with_its_own_shell_words():
    name = azcli.Shell('"onedesk-azuread ${HOST:-localhost} $(date +%Y-%m-%d)"')
    line = azcli.shell_line(["az", *azcli.reset_args(
        azcli.Shell('"$APP_ID"'), name, end_date=azcli.Shell('"$END"'), password_only=True)],
        breaks=("--display-name", "--end-date"))
    assert line == ('az ad app credential reset --id "$APP_ID" --append \\\n'
                    '  --display-name "onedesk-azuread ${HOST:-localhost} $(date +%Y-%m-%d)" '
                    '\\\n  --end-date "$END" --query password -o tsv')
    # What the shell makes of it: the words az is given.
    shown = subprocess.run(
        ["sh", "-c", f'date() {{ echo 2026-12-03; }}; set -- {line.replace("az ", "", 1)}; '
                     'printf "%s\\n" "$@"'],
        env={"APP_ID": CLIENT_ID, "END": "2028-05-31", "HOST": "h",
             "PATH": os.environ["PATH"]},
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert shown == azcli.reset_args(CLIENT_ID, "onedesk-azuread h 2026-12-03",
                                     end_date=date(2028, 5, 31), password_only=True)
