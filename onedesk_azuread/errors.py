"""Errors a user can cause and fix. Their text is one line and never holds a secret.

Every error the library raises for the user is one of these: the CLI turns them
into one line and their exit code, the dnf plugin into dnf.exceptions.Error.
"""

from __future__ import annotations


class OnedeskError(Exception):
    """Base of every error that should reach the user as a one-line message."""

    exit_code = 1


class ParseError(OnedeskError):
    """The settings file cannot be read reliably."""


class SettingsError(OnedeskError):
    """The settings file cannot be read or written."""


class StateError(OnedeskError):
    """The tool's own state cannot be read or written."""


class UnreadableRecord(StateError):
    """A state file is there but is not a record we can read: garbage inside, a record of a
    newer version, or not a private regular file of ours. Its directory is sound."""


class BashUnavailable(OnedeskError):
    """bash, the oracle for what the settings file means, could not be asked."""


class Refused(OnedeskError):
    """Validation found errors in what would be written; nothing was written.

    ``findings`` are printed, one line each, before the error itself.
    """

    # What `set` and `check --fix` can be told; apply and rotate have no --force.
    FIX_OR_FORCE = "fix them, or write anyway with --force"
    FIX_FIRST = "fix them first"

    def __init__(self, path: str, findings: list, fix: str = FIX_OR_FORCE):
        self.path = path
        self.findings = findings
        count = sum(1 for f in findings if f.severity == "error")
        super().__init__(f"{path}: not changed: {count} error{'s' if count != 1 else ''} "
                         f"({fix})")


class VerificationFailed(OnedeskError):
    """Azure AD did not confirm the pair (or could not be asked); nothing was written."""

    def __init__(self, path: str, result):
        self.result = result  # verify.Result: printed before the error
        self.exit_code = result.exit_code
        super().__init__(f"{path}: not changed: {result.message} "
                         f"(write anyway with --force)")


class Blocked(OnedeskError):
    """The entries failed the check under the lock, just before the install: nothing installed."""


class AzError(OnedeskError):
    """An `az` call failed; its message is one line and never holds a secret."""

    def __init__(self, message: str, not_logged_in: bool = False):
        super().__init__(message)
        self.not_logged_in = not_logged_in


class RotationFailed(OnedeskError):
    """A step of `rotate` failed. The message says what state Azure and the server are in
    and the one command that finishes the job; ``result`` (rotate.Rotated) is what had
    been done."""

    def __init__(self, message: str, result):
        super().__init__(message)
        self.result = result
