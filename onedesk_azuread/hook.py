"""What a package transaction that installs OneDesk does with the Azure AD entries.

Every decision of the two package managers' adapters, the dnf 4 plugin
(dnf-plugin/onedesk_azuread.py) and the dnf 5 hook (dnf5hook.py), which decide
themselves, with nothing but dnf, whether a transaction installs a trigger
package, and only translate what this module says into dnf's logger or the
actions plugin's output lines. Here: which settings path their configuration
may name; check the entries before anything is downloaded and what to say
about them (``verdict``); just before the packages are installed, check them
again under the write lock and leave the file the install scripts source valid
and canonical; record what was applied; any failure as one line
(``failure_line``). The values are never exported: the scripts read the file.
Nothing here imports dnf.
"""

from __future__ import annotations

from collections import namedtuple

from . import CLIENT_ID, KEYS, SECRET, state
from .errors import Blocked, OnedeskError
from .paths import DEFAULT_FILE, Paths

# operations and validation (and through them the bash scanner: about 10 ms to import) are
# imported in the functions that check the entries: dnf 5's post_transaction is a process of
# its own that needs only failure_line and the messages, on every OneDesk transaction. (Not
# typing.TYPE_CHECKING either: importing typing costs that process a few ms more.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .validation import Finding

PLUGIN_CONF = "onedesk_azuread.conf"

PREFIX = "onedesk-azuread: "
# The levels of what the adapters say: dnf's logger.info/warning, the actions plugin's
# log.INFO=/log.WARNING= lines.
INFO, WARNING = "info", "warning"

# What both package managers' adapters say (the dnf 4 plugin through dnf's logger, the dnf 5
# hook through the actions plugin), written once so that both generations say the same.
MSG_TRIGGERED = "onedesk-azuread: checking the Azure AD settings for %s"
MSG_NO_ENTRIES = ("onedesk-azuread: %s has no Azure AD entries; OneDesk is installed without "
                  "Azure AD sign-in")
MSG_NO_ENTRIES_REQUIRED = ("onedesk-azuread: %s has no Azure AD entries and require = 1; "
                           "set them first with: onedesk-azuread set")
MSG_NOTE = "onedesk-azuread: %s"
MSG_EXPIRED = ("onedesk-azuread: %s: %s%s (installing anyway; Azure AD sign-in fails until "
               "the secret is replaced)")
MSG_EXPIRY_UNREADABLE = ("onedesk-azuread: %s%s (installing anyway; nothing warns before the "
                         "secret expires until its expiry is recorded again)")
MSG_REPAIRED = "onedesk-azuread: repaired %s in %s"
MSG_VALIDATED = ("onedesk-azuread: %s is validated and canonical for the install scripts of %s "
                 "(checked again under the lock just now)")
MSG_FAILED = "onedesk-azuread: %s"
MSG_UNEXPECTED = ("onedesk-azuread: unexpected %s while handling the Azure AD settings; "
                  "nothing was installed. Run: onedesk-azuread check")
MSG_NOT_RECORDED = ("onedesk-azuread: the packages were installed, but what was applied could "
                    "not be recorded (%s); `onedesk-azuread status` will not say \"in sync\"")
# A settings path the configuration must not name; {option} is how the adapter's
# configuration spells it (the plugin's `file = `, the actions file's `--settings=`).
SETTINGS_PATH = ("{option}{value} is not an absolute path without \"..\" or control characters; "
                 "give the settings file as seen inside the installroot: {option}" + DEFAULT_FILE)


# A passed expiry date is an error for `check` and `status`, but never stops the
# package manager: the file did not change, and holding back every upgrade that
# includes onedesk-db-utils (security updates too) would not make the secret valid.
# Nor does an expiry record the tool cannot read: it says nothing about the entries.
def is_alert(finding: Finding) -> bool:
    from . import validation

    return finding.code in (validation.EXPIRED, validation.EXPIRY_UNREADABLE)


def settings_path_problem(value: str, option: str, shown: str) -> str | None:
    """Why the configuration may not name ``value`` as the settings file, or None.

    It must be absolute and stay inside the installroot (no ".."), and be printable: it is
    named in dnf's output and log lines. ``shown`` is ``value`` as the message quotes it.
    """
    if value.startswith("/") and ".." not in value.split("/") and value.isprintable():
        return None
    return SETTINGS_PATH.format(option=option, value=shown)


class Preflight(namedtuple("Preflight", "present blocking notes alerts")):
    """The entries' check before a OneDesk transaction downloads anything."""

    __slots__ = ()
    # present: bool; any Azure AD entry at all
    # blocking: list[Finding]; errors the canonical rewrite cannot repair
    # notes: list[Finding]; repairable errors and warnings: logged, not blocking
    # alerts: list[Finding]; errors that do not stop a transaction (a passed expiry, an
    #   expiry record that cannot be read): logged as warnings (``alert``)


def blocking(findings: list[Finding]) -> list[Finding]:
    """The findings that stop a OneDesk transaction."""
    from . import validation

    return [f for f in validation.unrepairable_errors(findings) if not is_alert(f)]


def preflight(paths: Paths, require: bool) -> Preflight:
    """Check the entries before anything is downloaded or installed."""
    from . import operations

    info = operations.inspect(paths)
    doc = info.snapshot.doc
    # An entry the tool cannot read (unsupported-construct) is still an entry: it blocks.
    present = any(doc.entries_for(key) or doc.unsupported_for(key) for key in KEYS)
    if not present:
        return Preflight(False, info.findings if require else [], [], [])
    stops = blocking(info.findings)
    alerts = [f for f in info.findings if is_alert(f)]
    notes = [f for f in info.findings if f not in stops and f not in alerts]
    return Preflight(True, stops, notes, alerts)


class Verdict(namedtuple("Verdict", "present said stop")):
    """What an adapter says before a OneDesk transaction downloads anything."""

    __slots__ = ()
    # present: bool; any Azure AD entry at all (none: nothing to check again or record)
    # said: list[tuple[str, str]]; (INFO or WARNING, message), in order
    # stop: str | None; the message that stops the transaction


def verdict(paths: Paths, require: bool) -> Verdict:
    """``preflight``, and what to say about it: the notes at their severity's level
    (warnings, such as an expiry within 30 days, even with dnf -q), the alerts as warnings
    (loud, never a stop), and the stop message."""
    result = preflight(paths, require)
    if not result.present:
        if result.blocking:
            return Verdict(False, [], MSG_NO_ENTRIES_REQUIRED % paths.settings)
        return Verdict(False, [(INFO, MSG_NO_ENTRIES % paths.settings)], None)
    said = [(WARNING if finding.severity == "warning" else INFO,
             MSG_NOTE % finding.describe(paths.settings)) for finding in result.notes]
    said += [(WARNING, alert(paths, finding)) for finding in result.alerts]
    stop = blocking_message(paths, result.blocking, paths.root) if result.blocking else None
    return Verdict(True, said, stop)


def failure_line(exc: Exception, recording: bool = False) -> str:
    """Any failure of a hook step as one line, never a traceback on dnf's terminal:
    the library's own refusals as they are, anything else by its type's name.
    ``recording``: the failure came after the packages were installed."""
    if not isinstance(exc, OnedeskError):
        return (MSG_NOT_RECORDED if recording else MSG_UNEXPECTED) % type(exc).__name__
    message = str(exc)
    if recording:
        return MSG_NOT_RECORDED % message
    return message if message.startswith(PREFIX) else MSG_FAILED % message


def alert(paths: Paths, finding: Finding) -> str:
    """The warning line for one of preflight's alerts, with the ``--root`` its fix needs."""
    from . import validation

    if finding.code == validation.EXPIRY_UNREADABLE:
        return MSG_EXPIRY_UNREADABLE % (finding.message, with_root(paths))
    return MSG_EXPIRED % (paths.settings, finding.message, with_root(paths))


def with_root(paths: Paths) -> str:
    """The ``--root`` the commands in a message need, for a transaction in an installroot."""
    return f" --root {paths.root}" if paths.root not in ("", "/") else ""


def blocking_message(paths: Paths, stops: list[Finding], root: str,
                     changed: bool = False) -> str:
    what = "changed after dnf checked it and now would give" if changed else "would give"
    lines = [f"onedesk-azuread: {paths.settings} {what} OneDesk wrong Azure AD settings; "
             f"nothing was installed:"]
    lines += [f"  {finding.describe(paths.settings)}" for finding in stops]
    if root not in ("", "/"):
        lines.append(f"  (run the onedesk-azuread commands above with --root {root})")
    return "\n".join(lines)


def inject(paths: Paths) -> tuple[list[Finding], dict[str, str]]:
    """Make the file the install scripts source valid and canonical, just before they run.

    Under the write lock: read the file again, validate it, raise Blocked on an
    error the rewrite cannot repair (nothing written), otherwise apply `check
    --fix`'s repairs. Returns the repairs and the pair exactly as validated and
    written there: what `record` may call applied.
    """
    from . import operations

    def refuse(current: operations.Inspection) -> None:
        stops = blocking(current.findings)
        if stops:
            raise Blocked(blocking_message(paths, stops, paths.root, changed=True))

    result = operations.check(paths, fix=True, refuse=refuse)
    values = {key: result.values[key] for key in KEYS if result.values[key] is not None}
    return result.repaired, values


def record(paths: Paths, values: dict[str, str], packages: list[str]) -> None:
    """Record that ``packages`` were installed with the pair ``inject`` checked."""
    if CLIENT_ID in values and SECRET in values:
        state.record_applied(paths.state_dir, values[CLIENT_ID], values[SECRET], packages)
