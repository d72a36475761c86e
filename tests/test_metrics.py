"""`check --metrics` and the daily check's metrics file: node_exporter's textfile-collector
format, checked by the real promtool, written atomically, readable by node_exporter, and
never holding the secret.
"""

import os
import stat
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from onedesk_azuread.metrics import METRICS, ONLINE_STATES

from .conftest import CLIENT_ID, SECRET, TENANT, expire_in, no_traceback, write_conf
from .rpmbed import cli

GOOD = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
HINT = SECRET[:3]


def _promtool(text):
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, check=False)


# The host's promtool, as a fixture: the Debian 11 stages (tools/debian-root.sh) have none and
# deselect the tests that use it (Makefile: HOST_TOOLS); the host stages run them.
@pytest.fixture
def promtool():
    return _promtool


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
    for name in METRICS:
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
    assert [got[f'onedesk_azuread_online_result{{result="{s}"}}'] for s in ONLINE_STATES] \
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
