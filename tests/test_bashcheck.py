"""bashcheck: bash -n as the judge of every text written, its verdict kept free of the text."""

import os
import subprocess

import pytest

from onedesk_azuread import bashcheck, settings
from onedesk_azuread.errors import BashUnavailable, OnedeskError

from .conftest import CLIENT_ID, SECRET

CID = f"AZUREAD_CID={CLIENT_ID}\n"
CIS = f"AZUREAD_CIS={SECRET}\n"


def test_bash_messages_never_carry_the_text():
    problem = bashcheck.check(f"f() AZUREAD_CIS={SECRET}\n")
    assert problem.line == 1
    assert problem.message == "syntax error near unexpected token `…'"
    assert bashcheck.check(CID + CIS) is None
    assert bashcheck.check("A=1\nif then\n") == (2, "syntax error near unexpected token `then'")


def test_bash_gets_the_text_on_stdin_only(paths, settings_path, monkeypatch):
    calls = []
    real = subprocess.run

    def spy(argv, *args, **kwargs):
        calls.append((argv, kwargs.get("env")))
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    settings.update(str(settings_path), lambda snapshot: settings.Edit(CID + CIS),
                    state_dir=paths.state_dir)
    assert len(calls) == 1
    argv, env = calls[0]
    assert argv[1:] == ["-n", "/dev/stdin"]
    assert SECRET not in " ".join(argv) and SECRET not in " ".join(env.values())
    assert "BASH_ENV" not in env


def test_without_dev_stdin_bash_still_gives_its_verdict(monkeypatch):
    # A chroot without /proc has no /dev/stdin (the dnf 5 bed's sid root): bash then reads
    # the text as its script on stdin, and its messages carry no line number.
    real = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: p != "/dev/stdin" and real(p))
    assert bashcheck.check(CID + CIS) is None
    problem = bashcheck.check(CID + "if true; then\n" + CIS)
    assert problem is not None and problem.line is None
    assert "unexpected end of file" in problem.message
    assert bashcheck.check(CID + "[[ a b ]]\n") is not None  # printed, though bash exits 0


def test_bash_is_asked_once_about_an_unchanged_text(monkeypatch):
    # The dnf plugin checks the same file in resolved and again under the lock.
    calls = []
    real = subprocess.run

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(subprocess, "run", counting)
    assert bashcheck.check(CID + CIS) is None
    assert bashcheck.check(CID + CIS) is None
    assert len(calls) == 1
    assert bashcheck.check(CID + "if\n") is not None  # another text: asked again
    assert len(calls) == 2


def test_refuse_unparsable_names_the_file_and_bash_s_line_in_one_line():
    bashcheck.refuse_unparsable("/root/.OneDesk", CID + CIS)  # parses: no error
    with pytest.raises(OnedeskError) as err:
        bashcheck.refuse_unparsable("/root/.OneDesk", "A=1\nif then\n")
    message = str(err.value)
    assert message.startswith("/root/.OneDesk: not changed: bash could not parse the result "
                              "(line 2: syntax error near unexpected token `then')")
    assert "bash -n /root/.OneDesk" in message and "\n" not in message


def test_without_bash_there_is_no_verdict(monkeypatch):
    monkeypatch.setattr(bashcheck, "SEARCH_PATH", "/nonexistent")
    with pytest.raises(BashUnavailable, match="bash is not installed"):
        bashcheck.check(CID + CIS)
