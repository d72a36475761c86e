"""Errors a user can cause and fix. Their text is one line and never holds a secret."""

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
