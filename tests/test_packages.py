"""packages: the rpm and dnf command lines, and what a failed command says."""

import pytest

from onedesk_azuread import packages
from onedesk_azuread.errors import OnedeskError


def test_the_command_lines_name_the_root_only_when_it_is_not_slash(monkeypatch, tmp_path):
    monkeypatch.delenv(packages.DNF_ENV, raising=False)
    assert packages.dnf_command("/") == ["dnf"]
    assert packages.rpm_command("/") == ["rpm"]
    assert packages.dnf_command(str(tmp_path)) == ["dnf", f"--installroot={tmp_path}"]
    assert packages.rpm_command(str(tmp_path)) == ["rpm", "--root", str(tmp_path)]


def test_the_dnf_command_can_be_replaced_with_its_words(monkeypatch):
    monkeypatch.setenv(packages.DNF_ENV, "/usr/bin/python3 -s '/opt/my dnf'")
    assert packages.dnf_command("/") == ["/usr/bin/python3", "-s", "/opt/my dnf"]


def test_a_missing_command_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv(packages.DNF_ENV, "/nonexistent/dnf")
    with pytest.raises(OnedeskError) as err:
        packages.dnf("/", "--version")
    assert str(err.value) == (f"/nonexistent/dnf: command not found; install it or set "
                              f"{packages.DNF_ENV}")


@pytest.mark.parametrize("stdout, stderr, last", [
    ("", "Last metadata expiration\nError: Unable to find a match: x\n",
     "Error: Unable to find a match: x"),
    ("Problem: conflicting requests\n - nothing provides y\n", "",
     "Problem: conflicting requests"),
    ("working\nstill working\n", "", "still working"),
    ("", "", "exit status 1"),
])
def test_last_error_is_dnf_s_own_last_words(stdout, stderr, last):
    assert packages.Completed(["dnf"], 1, stdout, stderr).last_error() == last
