"""apply's own messages and commands; the reinstall itself, against real rpm and dnf, is
test_apply_faults.py's (the rpm bed)."""

import signal
from collections import namedtuple

from onedesk_azuread import apply
from onedesk_azuread.paths import Paths

After = namedtuple("After", "sync")  # what the messages read of the status after the reinstall


def test_the_install_command_names_the_installroot_only_when_there_is_one(tmp_path):
    assert apply.install_command("/", ["a", "b"]) == "dnf install a b"
    assert apply.install_command(str(tmp_path), ["a"]) == \
        f"dnf --installroot={tmp_path} install a"


def test_a_package_not_back_says_how_to_install_it(tmp_path):
    line = apply.NotBack("perl-DBI", "Error: nothing provides x").line(str(tmp_path))
    assert line.startswith("perl-DBI was removed with onedesk-db-utils and could not be "
                           "installed again (Error: nothing provides x)")
    assert f"dnf --installroot={tmp_path} install perl-DBI" in line and "\n" not in line


def test_not_back_error_agrees_in_number(tmp_path):
    paths = Paths.under(str(tmp_path))
    one = str(apply.not_back_error(paths, [apply.NotBack("a", "x")], After("in sync")))
    two = str(apply.not_back_error(paths, [apply.NotBack("a", "x"), apply.NotBack("b", "y")],
                                   After("in sync")))
    assert "a was removed" in one and "a, b were removed" in two
    assert "install a b" in two and "\n" not in two


def test_an_interrupted_apply_exits_as_the_signal_would_and_names_it():
    error = apply.interrupted_error([signal.SIGTERM, signal.SIGINT], After("in sync"))
    assert error.exit_code == 128 + signal.SIGTERM
    assert str(error) == ("interrupted by SIGTERM during the reinstall: apply finished the job "
                          "first (in sync)")
