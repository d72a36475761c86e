"""Will OneDesk's install scripts get correct values from this file as it stands?

Pure: findings are computed from parsed text and plain facts (file mode and
owner, the recorded expiry, today's date). The two values are checked by our
own check functions, called directly: every guarded dnf transaction validates
the file, and configobj's import alone was 23 ms of the 35 ms the plugin added
to one (`make bench`). configobj's ``Validator`` is ``configspec``'s: for
check.conf, a configuration file, which is its own ground. The syntax and
file-level findings come from the parser's facts.
"""

from __future__ import annotations

import re
from collections import namedtuple  # not typing.NamedTuple: 4-20 ms more for the dnf hooks
from datetime import date

from . import CLIENT_ID, KEYS, SECRET, shellfile
from .trust import printable

ERROR = "error"
WARNING = "warning"

# --- Finding codes: stable identifiers, the README's findings table lists each -----------------
# The scanner's problems with an entry's line are findings as they are: shellfile names them.
CRLF, BOM, SPACED = shellfile.CRLF, shellfile.BOM, shellfile.SPACED
EXPANSION, TRAILING = shellfile.EXPANSION, shellfile.TRAILING
UNSUPPORTED = "unsupported-construct"
BASH_SYNTAX = "bash-syntax"
DUPLICATE = "duplicate"
MISSING = "missing"
EMPTY = "empty"
CLIENT_ID_NOT_GUID = "client-id-not-guid"
CLIENT_ID_BRACES = "client-id-braces"
SECRET_IS_SECRET_ID = "secret-is-secret-id"
SECRET_LENGTH = "secret-length"
SECRET_CHARSET = "secret-charset"
SECRET_FORMAT = "secret-format"
HARD_LINKS = "hard-links"
FILE_MODE = "file-mode"
FILE_OWNER = "file-owner"
ACL_GRANTS_ACCESS = "acl-grants-access"
EXPIRED = "secret-expired"
EXPIRES_SOON = "secret-expires-soon"
EXPIRY_UNREADABLE = "expiry-unreadable"  # made by operations, which reads the record
CODES = (CRLF, BOM, SPACED, EXPANSION, TRAILING, UNSUPPORTED, BASH_SYNTAX, DUPLICATE, MISSING,
         EMPTY, CLIENT_ID_NOT_GUID, CLIENT_ID_BRACES, SECRET_IS_SECRET_ID, SECRET_LENGTH,
         SECRET_CHARSET, SECRET_FORMAT, HARD_LINKS, FILE_MODE, FILE_OWNER, ACL_GRANTS_ACCESS,
         EXPIRED, EXPIRES_SOON, EXPIRY_UNREADABLE)

EXPIRY_WARNING_DAYS = 30
SECRET_MIN, SECRET_MAX = 16, 64

# What may be shown of a secret: Azure's own portal lists secrets by their first 3 characters.
HINT_LENGTH = 3

GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
# Secrets issued since 2021: a 3-character hint, a digit, "Q~", then the rest.
CURRENT_SECRET = re.compile(r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}")
_FORBIDDEN_IN_SECRET = re.compile(r"[\s\x00-\x1f\x7f]|[^\x00-\x7f]")

FIX_REWRITE = "onedesk-azuread check --fix"
FIX_CLIENT_ID = "onedesk-azuread set --client-id ID"
FIX_SECRET = "onedesk-azuread set --secret-prompt"
SET_COMMAND = {CLIENT_ID: FIX_CLIENT_ID, SECRET: FIX_SECRET}


class Finding(namedtuple("Finding", "code severity key message repairable line",
                         defaults=(None,))):
    """One answer to "will OneDesk get correct values?", with its fix."""

    __slots__ = ()
    # code: str; stable identifier, documented in the README
    # severity: str; ERROR or WARNING
    # key: str | None; the entry concerned, None for the file itself
    # message: str; what is wrong and the command that fixes it
    # repairable: bool; whether `check --fix` repairs it
    # line: int | None

    def describe(self, path: str) -> str:
        """One line: a message may quote the file (a command name, bash's words), whose
        control characters are shown escaped (trust.printable). The path is the
        administrator's own (--file, --root, or a hook's configuration, which refuses
        control characters): it is named as given, byte for byte in any locale."""
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.severity}: {printable(self.message)}"

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "key": self.key,
            "line": self.line,
            "message": self.message,
            "repairable": self.repairable,
        }


class _Invalid(Exception):
    """A value check failed. Carries a code, never the value itself."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(code)
        self.code = code
        self.detail = detail


def secret_hint(secret: str) -> str:
    """The part of a secret that may be shown (Azure's "hint")."""
    return secret[:HINT_LENGTH]


def normalize_client_id(value: str) -> str:
    """The client ID as the rewrite stores it: no surrounding space or braces."""
    stripped = value.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        stripped = stripped[1:-1].strip()
    return stripped


def _check_client_id(value: str) -> str:
    if not value.strip():
        raise _Invalid(EMPTY)
    bare = normalize_client_id(value)
    if not GUID.fullmatch(bare):
        raise _Invalid(CLIENT_ID_NOT_GUID)
    return bare


def _check_secret(value: str) -> str:
    if not value:
        raise _Invalid(EMPTY)
    if GUID.fullmatch(value.strip()):
        raise _Invalid(SECRET_IS_SECRET_ID)
    if not SECRET_MIN <= len(value) <= SECRET_MAX:
        raise _Invalid(SECRET_LENGTH, str(len(value)))
    if _FORBIDDEN_IN_SECRET.search(value):
        raise _Invalid(SECRET_CHARSET)
    return value


_CHECKS = {CLIENT_ID: _check_client_id, SECRET: _check_secret}


def _check_values(values: dict[str, str]) -> dict[str, object]:
    """key -> normalized value, or the _Invalid saying why not."""
    results: dict[str, object] = {}
    for key, value in values.items():
        try:
            results[key] = _CHECKS[key](value)
        except _Invalid as exc:
            results[key] = exc
    return results


def configspec(values: dict[str, str], spec: list[str], checks: dict) -> dict[str, object]:
    """configobj's Validator over ``values`` with the configspec ``spec`` and our ``checks``
    (name -> function(value) -> normalized value, raising ValueError with the reason):
    key -> normalized value, or the ValueError. Pure."""
    # Here, not at the top: configobj's validate costs `show`, which never validates, 7 ms.
    from configobj import ConfigObj

    try:
        from configobj.validate import ValidateError, Validator
    except ImportError:  # configobj 5.0.6 (EL 9) ships validate as a top-level module
        from validate import ValidateError, Validator

    def as_validate_error(check):
        def run(value):
            try:
                return check(value)
            except ValueError as exc:  # Validator collects only its own error type
                raise ValidateError(exc) from None
        return run

    validator = Validator({name: as_validate_error(fn) for name, fn in checks.items()})
    config = ConfigObj(values, configspec=spec, interpolation=False, list_values=False)
    outcome = config.validate(validator, preserve_errors=True)
    results: dict[str, object] = {}
    for key in values:
        verdict = True if outcome is True else outcome.get(key, True)
        results[key] = config[key] if verdict is True else verdict.args[0]
    return results


def canonical_values(doc: shellfile.Document) -> dict[str, str]:
    """The values the canonical rewrite writes for entries present with a known value."""
    values = {}
    for key in KEYS:
        value = doc.value(key)
        if value is None:
            continue
        values[key] = normalize_client_id(value) if key == CLIENT_ID else value
    return values


def _syntax_findings(doc: shellfile.Document) -> list[Finding]:
    texts = {
        CRLF: (ERROR, True, "{key} ends in a Windows line ending (CRLF); bash keeps "
                         "the carriage return in the value. Fix: " + FIX_REWRITE),
        BOM: (ERROR, True, "{key} has a UTF-8 byte order mark glued to it, so bash "
                        "does not see the assignment. Fix: " + FIX_REWRITE),
        SPACED: (ERROR, True, "{key} has spaces around '=', so bash runs it as a "
                           "command and never sets it. Fix: " + FIX_REWRITE),
        EXPANSION: (ERROR, False, "{key} uses shell expansion ($, ` or a leading ~), "
                              "so its value is not what is written. Fix: {set}"),
        TRAILING: (ERROR, False, "{key} has more shell words after the value, so bash "
                             "does not set it. Fix: {set}"),
    }
    findings = []
    for key in KEYS:
        if doc.unsupported_for(key):
            continue  # only a hand edit helps; its findings say which line
        entries = doc.entries_for(key)
        if len(entries) > 1:
            lines = ", ".join(str(e.line) for e in entries)
            findings.append(Finding(
                DUPLICATE, WARNING, key,
                f"{key} is defined {len(entries)} times (lines {lines}); bash uses the last. "
                f"Fix: {FIX_REWRITE}", True, entries[-1].line))
        for entry in entries:
            for problem in entry.problems:
                severity, repairable, text = texts[problem]
                if not repairable and entry is not entries[-1]:
                    continue  # an earlier definition that is overridden anyway
                findings.append(Finding(problem, severity, key,
                                        text.format(key=key, set=SET_COMMAND[key]),
                                        repairable, entry.line))
    return findings


def _value_findings(doc: shellfile.Document) -> list[Finding]:
    findings = []
    present = {}
    for key in KEYS:
        last = doc.last(key)
        if doc.unsupported_for(key):
            continue  # no known value to check
        if last is None:
            findings.append(Finding(MISSING, ERROR, key,
                                    f"{key} is not set. Fix: {SET_COMMAND[key]}", False))
        elif last.value is not None:
            present[key] = last.value
    results = _check_values(present)
    for key, result in results.items():
        line = doc.last(key).line
        if isinstance(result, _Invalid):
            findings.append(Finding(result.code, ERROR, key,
                                    _value_message(key, result), False, line))
        elif key == CLIENT_ID and result != present[key]:
            findings.append(Finding(
                CLIENT_ID_BRACES, ERROR, key,
                f"{key} has braces or spaces around the GUID, which OneDesk does not strip. "
                f"Fix: {FIX_REWRITE}", True, line))
        elif key == SECRET and not CURRENT_SECRET.fullmatch(result):
            findings.append(Finding(
                SECRET_FORMAT, WARNING, key,
                f"{key} is not in the current Azure format (about 40 characters with 'Q~' "
                "after the first four); older secrets still work, but make sure it is the "
                "secret's Value", False, line))
    return findings


UNFOLLOWED = ("this tool cannot follow the file here ({message}), though bash may: it reports "
              "no value set from this statement on and changes nothing in this file. Fix: "
              + shellfile.UNFOLLOWED_FIX)


def _construct_findings(doc: shellfile.Document) -> list[Finding]:
    """Statements this tool cannot edit safely, and where bash stops parsing."""
    findings = [Finding(
        UNSUPPORTED, ERROR, u.key,
        f"{u.key} is set {u.reason}, which only bash can follow: this tool reports no value "
        f"for it and changes nothing in this file. Fix: " + shellfile.UNSUPPORTED_FIX.format(
            key=u.key), False, u.line) for u in doc.unsupported]
    if doc.unfollowed:
        findings.append(Finding(UNSUPPORTED, ERROR, None, UNFOLLOWED.format(
            message=doc.unfollowed.message), False, doc.unfollowed.line))
    if doc.syntax_error:
        problem = doc.syntax_error
        findings.append(Finding(
            BASH_SYNTAX, ERROR, None,
            f"bash cannot parse the file here ({problem.message}); when OneDesk's install "
            f"scripts source it, nothing from this line on is read. Fix the line by hand "
            f"(check with: bash -n FILE)", False, problem.line))
    return findings


def _value_message(key: str, error: _Invalid) -> str:
    fix = SET_COMMAND[key]
    if error.code == EMPTY:
        return f"{key} is empty. Fix: {fix}"
    if error.code == CLIENT_ID_NOT_GUID:
        return (f"{key} is not a GUID; copy the 'Application (client) ID' from the app's "
                f"Overview page in Azure. Fix: {fix}")
    if error.code == SECRET_IS_SECRET_ID:
        return (f"{key} holds a GUID: the Secret ID was pasted, not the Secret Value. Create a "
                f"new client secret in Azure, copy its Value, then run: {fix}")
    if error.code == SECRET_LENGTH:
        return (f"{key} is {error.detail} characters long; a client secret value has "
                f"{SECRET_MIN} to {SECRET_MAX}. Fix: {fix}")
    return (f"{key} contains whitespace, control or non-ASCII characters, which no client "
            f"secret has. Fix: {fix}")


MSG_ACL_GRANTS_ACCESS = ("a POSIX ACL lets {who} {access} the file, which holds the secret; "
                     "nothing is written while it does (a new file would keep that access or "
                     "silently drop it). Fix: setfacl -b {path}")


def _acl_findings(acl, path: str) -> list[Finding]:
    return [Finding(ACL_GRANTS_ACCESS, ERROR, None, MSG_ACL_GRANTS_ACCESS.format(
        who=grant.who, access=grant.access, path=path), False) for grant in acl]


def _file_findings(mode: int | None, uid: int | None, nlink: int | None) -> list[Finding]:
    findings = []
    if nlink is not None and nlink > 1:
        # Every name of the file is the same inode: whoever can reach the other name
        # (maybe in a directory anyone can read) reads the secret whatever this one's mode.
        findings.append(Finding(
            HARD_LINKS, ERROR, None,
            f"the file has {nlink} hard links (names), and a chmod cannot protect the other "
            f"name; it is not written until only one is left. Fix: remove the other link "
            f"(find it with: find / -xdev -samefile FILE)", False))
    if mode is not None and mode & 0o077:
        findings.append(Finding(
            FILE_MODE, WARNING, None,
            f"the file is readable or writable by group or others (mode {mode & 0o7777:04o}) "
            f"and holds a secret. Fix: {FIX_REWRITE}", True))
    if uid is not None and uid != 0:
        findings.append(Finding(FILE_OWNER, WARNING, None,
                                f"the file is owned by uid {uid}, not root. Fix: {FIX_REWRITE}",
                                True))
    return findings


def _expiry_findings(expires: date | None, today: date) -> list[Finding]:
    if expires is None:
        return []
    renew = f"create a new client secret in Azure, then run: {FIX_SECRET} --expires YYYY-MM-DD"
    days = (expires - today).days
    if days < 0:
        return [Finding(EXPIRED, ERROR, SECRET,
                        f"the client secret expired on {expires.isoformat()}; {renew}", False)]
    if days <= EXPIRY_WARNING_DAYS:
        return [Finding(EXPIRES_SOON, WARNING, SECRET,
                        f"the client secret expires on {expires.isoformat()} (in {days} days); "
                        f"{renew}", False)]
    return []


class FileFacts(namedtuple("FileFacts", "mode uid nlink acl", defaults=(None, None, None, ()))):
    """What the file system says of the settings file (None: not known, not checked)."""

    __slots__ = ()
    # mode: int | None; the permission bits
    # uid: int | None; the owner
    # nlink: int | None; its number of names
    # acl: the fsutil.AclGrant records of its POSIX ACL


def validate(doc: shellfile.Document, facts: FileFacts | None = None, *,
             expires: date | None = None, today: date | None = None) -> list[Finding]:
    """All findings for a parsed settings file; errors first, then warnings."""
    facts = facts or FileFacts()
    findings = (_construct_findings(doc) + _syntax_findings(doc) + _value_findings(doc)
                + _file_findings(facts.mode, facts.uid, facts.nlink)
                + _acl_findings(facts.acl, doc.path)
                + _expiry_findings(expires, today or date.today()))
    return sorted(findings, key=lambda f: (f.severity != ERROR, f.line or 0))


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == ERROR]


def unrepairable_errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == ERROR and not f.repairable]
