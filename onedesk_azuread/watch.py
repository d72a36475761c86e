"""The expiry watch: `check --scheduled` (the systemd timer's daily run) and `check --metrics`.

One run: the offline check, the online check when check.conf names a tenant (never
when the offline check found errors: that result is "skipped"), whether the
entries were applied (status), and the expiry. Every finding becomes one line
with a syslog priority (sd-daemon(3): `<3>` error, `<4>` warning, `<5>` notice,
`<6>` info), prefixed only when stderr is the journal. An expiry within 30 days
is a warning on the first run at or below each of 30, 14, 7 and 1 days left
(the last threshold warned is kept in watch.json beside the expiry record, once
the warning was written) and a notice on the days between; a passed expiry is an
error on every run. check.conf counts only when root alone can change it.

The metrics file is node_exporter's textfile-collector format, written atomically
and readable by everyone (node_exporter does not run as root): it holds facts
about the entries, never the secret or its hint.
"""

from __future__ import annotations

import math
import os
import stat
from collections import namedtuple
from datetime import date, datetime, timedelta, timezone

from . import SECRET, operations, state, trust, validation, verify
from .errors import OnedeskError, StateError
from .fsutil import replace_file
from .paths import Paths

# --- Journal priorities (sd-daemon(3)) ---------------------------------------------------------

ERR, WARNING, NOTICE, INFO = 3, 4, 5, 6
JOURNAL_STREAM = "JOURNAL_STREAM"


def stderr_is_journal(fd: int = 2) -> bool:
    """True when ``fd`` is the stream systemd connected to the journal ($JOURNAL_STREAM is
    its "DEVICE:INODE"; a child whose stderr was redirected inherits the variable, so the
    fd itself is compared, as sd_journal_stream_fd(3) says)."""
    device, _, inode = os.environ.get(JOURNAL_STREAM, "").partition(":")
    try:
        st = os.fstat(fd)
        return (int(device), int(inode)) == (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        return False


class Line(namedtuple("Line", "priority text")):
    """One message of the scheduled check, with its syslog priority."""

    __slots__ = ()
    # priority: int; ERR, WARNING, NOTICE or INFO
    # text: str; one line, never the secret

    def render(self, journal: bool) -> str:
        # Escaped here as well as where values enter: whatever a message holds, it stays
        # one journal line at its own priority.
        text = trust.printable(self.text)
        return f"<{self.priority}>{text}" if journal else text


# --- check.conf ------------------------------------------------------------------------------

CONF_KEYS = ("tenant", "cloud", "authority_host", "timeout", "metrics")
CONF_LIMIT = 64 * 1024
CONF_FIX_SYNTAX = ("write one `key = value` a line (comments on lines of their own, "
                   "starting with #)")
CONF_UNKNOWN = ("{where}: {key!r} is not a setting of the scheduled check ({keys}); correct "
                "its name or remove the line")
CONF_DUPLICATE = "{where}: {key} is set twice (first on line {first}); keep one"
CONF_SECTION = "{where}: sections are not used here; remove the line {text!r}"
CONF_NOT_KEY_VALUE = "{where}: {text!r} is not `key = value`; " + CONF_FIX_SYNTAX
CONF_QUOTED = "{where}: {key} = {value}: write the value without quotes"
CONF_COMMENT = ("{where}: {key} = {value!r} has a comment after the value; put it on a line "
                "of its own")
CONF_EMPTY = "{where}: {key} is empty; give a value or comment the line out"
CONF_TENANT = "tenant = {value}: {reason}"
CONF_CLOUD = "cloud = {value!r} is not one of {clouds}"
CONF_HOST = "authority_host = {value!r} {reason}"
CONF_TIMEOUT = ("timeout = {value!r} is not a number of seconds from 0.1 to 300; "
                "set for example timeout = 10")
CONF_NEEDS_TENANT = ("{path}: {key} is set but tenant is not, so there is no online check for "
                     "it to change; set tenant = TENANT or comment {key} out")
CONF_UNREADABLE = ("{path}: cannot be read: {reason}; fix its permissions or restore it from "
                   "the package")
CONF_NOT_REGULAR = ("{path}: is not a regular file; restore it from the package "
                    "(rpm -V onedesk-azuread)")
CONF_NOT_UTF8 = "{path}: is not UTF-8 text; restore it from the package"
CONF_TOO_BIG = "{path}: is more than {limit} bytes, which no check.conf is; restore it"
CONF_REPLACED = "it was replaced while being read; run the check again"
METRICS_SUFFIX = ".prom"
METRICS_PATH = ("{value!r} is not an absolute path of a *.prom file (node_exporter's "
                "textfile collector reads only those), without ..; for example: "
                "/var/lib/node_exporter/textfile_collector/onedesk_azuread.prom")


class ConfError(OnedeskError):
    """check.conf cannot be used: one line naming the file, the line or key, and the fix."""


class CheckConf(namedtuple("CheckConf", "path exists tenant cloud authority_host timeout metrics",
                           defaults=(None, "public", None, verify.DEFAULT_TIMEOUT, None))):
    """The scheduled check's settings, validated."""

    __slots__ = ()
    # path: str; the file as read
    # exists: bool
    # tenant: str | None; None: no online check
    # cloud: str; a key of verify.CLOUDS
    # authority_host: str | None
    # timeout: float
    # metrics: str | None; as written in the file (a path inside the root)


def metrics_path_problem(value: str) -> bool:
    """Whether ``value`` cannot be a textfile-collector file: not absolute, not *.prom, or '..'."""
    return (not value.startswith("/") or not value.endswith(METRICS_SUFFIX)
            or ".." in value.split("/") or os.path.basename(value) == METRICS_SUFFIX)


def parse_conf(text: str, path: str) -> CheckConf:
    """check.conf's text, strictly: `key = value` lines, # comments, nothing else (pure)."""
    seen: dict[str, int] = {}
    values: dict[str, object] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{path}:{number}"
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            raise ConfError(CONF_SECTION.format(where=where, text=line))
        key, equals, value = (part.strip() for part in line.partition("="))
        if not equals or not key:
            raise ConfError(CONF_NOT_KEY_VALUE.format(where=where, text=line))
        if key not in CONF_KEYS:
            raise ConfError(CONF_UNKNOWN.format(where=where, key=key, keys=", ".join(CONF_KEYS)))
        if key in seen:
            raise ConfError(CONF_DUPLICATE.format(where=where, key=key, first=seen[key]))
        seen[key] = number
        if not value:
            raise ConfError(CONF_EMPTY.format(where=where, key=key))
        if value[0] in "'\"":
            raise ConfError(CONF_QUOTED.format(where=where, key=key, value=value))
        if " #" in value or "\t#" in value:
            raise ConfError(CONF_COMMENT.format(where=where, key=key, value=value))
        values[key] = value
    for key, checked in validation.configspec(values, CONF_SPEC, CONF_CHECKS).items():
        if isinstance(checked, ValueError):
            raise ConfError(f"{path}:{seen[key]}: {checked}")
        values[key] = checked
    if "tenant" not in values:
        for key in ("cloud", "authority_host", "timeout"):
            if key in values:
                raise ConfError(CONF_NEEDS_TENANT.format(path=path, key=key))
    return CheckConf(path, True, **values)


# check.conf's values: configobj's Validator with this configspec and these checks. Each
# check returns the value to use or raises ValueError with the reason (the caller adds the
# file and line).
CONF_SPEC = ["tenant = tenant()", "cloud = cloud()", "authority_host = https_url()",
             "timeout = seconds()", "metrics = prom_file()"]


def _tenant(value: str) -> str:
    try:
        return verify.check_tenant(value)
    except ValueError as exc:
        raise ValueError(CONF_TENANT.format(value=value, reason=exc)) from None


def _cloud(value: str) -> str:
    if value not in verify.CLOUDS:
        raise ValueError(CONF_CLOUD.format(value=value, clouds=", ".join(verify.CLOUDS)))
    return value


def _https_url(value: str) -> str:
    try:
        return verify.check_authority_host(value)
    except ValueError as exc:
        raise ValueError(CONF_HOST.format(value=value, reason=exc)) from None


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0.1 <= seconds <= 300:  # also refuses nan and inf
        raise ValueError(CONF_TIMEOUT.format(value=value))
    return seconds


def _prom_file(value: str) -> str:
    if metrics_path_problem(value):
        raise ValueError(METRICS_PATH.format(value=value))
    return value


CONF_CHECKS = {"tenant": _tenant, "cloud": _cloud, "https_url": _https_url,
               "seconds": _seconds, "prom_file": _prom_file}


def load_conf(path: str, top: str = "/") -> CheckConf:
    """check.conf from disk; absent means every default (offline check only).

    It decides where the client secret is sent, so it counts only when root alone can
    change it (trust.root_only): the file, every directory on the way and every symlink
    (configuration management links files into /etc) are root's and not writable by group
    or others; otherwise ConfError and nothing is read. ``top``: the --root, whose parents
    are not judged.
    """
    try:
        real, st, problem = trust.root_only(path, top)
    except FileNotFoundError:
        return CheckConf(path, False)
    except OSError as exc:
        raise ConfError(CONF_UNREADABLE.format(path=path, reason=exc.strerror)) from None
    if problem is not None:
        raise ConfError(problem.message(path))
    if not stat.S_ISREG(st.st_mode):
        raise ConfError(CONF_NOT_REGULAR.format(path=path))
    try:
        # The walk's last component, not the name: no symlink is followed here.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfError(CONF_UNREADABLE.format(path=path, reason=exc.strerror)) from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            raise ConfError(CONF_UNREADABLE.format(path=path, reason=CONF_REPLACED))
        data = os.read(fd, CONF_LIMIT + 1)
    except OSError as exc:
        raise ConfError(CONF_UNREADABLE.format(path=path, reason=exc.strerror)) from None
    finally:
        os.close(fd)
    if len(data) > CONF_LIMIT:
        raise ConfError(CONF_TOO_BIG.format(path=path, limit=CONF_LIMIT))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfError(CONF_NOT_UTF8.format(path=path)) from None
    return parse_conf(text, path)


# --- Expiry warnings at 30, 14, 7 and 1 days -------------------------------------------------

THRESHOLDS = (30, 14, 7, 1)
assert THRESHOLDS[0] == validation.EXPIRY_WARNING_DAYS  # one window for check and the watch
WATCH_FILE = "watch.json"
FIX_WATCH = "delete it (the next scheduled check warns again at the current threshold)"
EXPIRES_SOON = "secret-expires-soon"
EXPIRED = "secret-expired"

MSG_EXPIRY_WARNED = ("the client secret expires on {expires} (in {days} days); create a new "
                     "client secret in Azure, then run: {renew} (warnings come at {thresholds} "
                     "days left)")
MSG_EXPIRY_COUNTDOWN = ("the client secret expires on {expires} (in {days} days); warned at "
                        "{threshold} days left, next at {next}")
MSG_EXPIRY_LAST = ("the client secret expires on {expires} (in {days} days); warned at "
                   "{threshold} day left, next: an error once it has expired")
MSG_EXPIRY_FAR = "the client secret expires on {expires} (in {days} days)"
MSG_NO_EXPIRY = ("no expiry is recorded for the client secret, so it cannot be warned of "
                 "before it expires; record it with: onedesk-azuread set --expires YYYY-MM-DD")
RENEW = validation.FIX_SECRET + " --expires YYYY-MM-DD"


def threshold(days: int) -> int | None:
    """The smallest threshold at or above ``days`` left (None beyond 30 days)."""
    under = [t for t in THRESHOLDS if days <= t]
    return min(under) if under else None


def _watch_record(state_dir: str, secret: str, expires: date) -> int | None:
    """The threshold last warned for this secret and this expiry date, or None."""
    record = state._load(os.path.join(state_dir, WATCH_FILE), FIX_WATCH)
    if record is None:
        return None
    hint, length = state.secret_label(secret)
    warned = record.get("warned_days")
    if not (type(warned) is int and isinstance(record.get("expires"), str)):
        raise StateError(f"{os.path.join(state_dir, WATCH_FILE)}: is not a watch record; "
                         f"{FIX_WATCH}")
    same = (record.get("secret_hint"), record.get("secret_length"), record["expires"]) == (
        hint, length, expires.isoformat())
    return warned if same else None  # a new secret, or a new date: warn afresh


class Expiry(namedtuple("Expiry", "line warned", defaults=(None,))):
    """The expiry's line for the scheduled check, and what to record once it was given."""

    __slots__ = ()
    # line: Line
    # warned: dict | None; watch.json's record of this warning: saved only after the line
    #   was written (Report.give), so a run killed in between warns again next time


def expiry_line(state_dir: str, secret: str | None, expires: date | None,
                today: date) -> Expiry | None:
    """The expiry's line for the scheduled check (nothing is written here)."""
    if not secret:
        return None
    if expires is None:
        return Expiry(Line(NOTICE, MSG_NO_EXPIRY))
    days = (expires - today).days
    if days < 0:
        return None  # the secret-expired finding: an error on every run
    due = threshold(days)
    if due is None:
        return Expiry(Line(INFO, MSG_EXPIRY_FAR.format(expires=expires.isoformat(), days=days)))
    warned = _watch_record(state_dir, secret, expires)  # replaced atomically: no lock to read
    if warned is not None and warned <= due:
        later = [t for t in THRESHOLDS if t < warned]
        text = (MSG_EXPIRY_COUNTDOWN.format(expires=expires.isoformat(), days=days,
                                            threshold=warned, next=f"{later[0]} days")
                if later else
                MSG_EXPIRY_LAST.format(expires=expires.isoformat(), days=days,
                                       threshold=warned))
        return Expiry(Line(NOTICE, text))
    hint, length = state.secret_label(secret)
    record = {"expires": expires.isoformat(), "secret_hint": hint, "secret_length": length,
              "warned_days": due}
    return Expiry(Line(WARNING, MSG_EXPIRY_WARNED.format(
        expires=expires.isoformat(), days=days, renew=RENEW,
        thresholds=", ".join(str(t) for t in THRESHOLDS[:-1]) + f" and {THRESHOLDS[-1]}")),
        record)


def record_warned(state_dir: str, warned: dict) -> None:
    """Record a threshold as warned, after its line went out."""
    with state.locked(state_dir):
        state.save_json(state_dir, WATCH_FILE, {
            **warned, "warned": datetime.now(timezone.utc).isoformat(timespec="seconds")})


# --- One run's facts, and the metrics file ---------------------------------------------------

class Outcome(namedtuple("Outcome", "path findings expires online sync checked")):
    """What a check found: the facts the lines and the metrics are made of (no secret)."""

    __slots__ = ()
    # path: str; the settings file
    # findings: list[Finding]
    # expires: date | None; the recorded expiry of the current secret
    # online: verify.Result | None; None when not asked (no tenant)
    # sync: str | None; status' state (state.IN_SYNC, ...); None when it could not be told
    # checked: datetime; when (UTC)

    @property
    def errors(self) -> list:
        return validation.errors(self.findings)

    @property
    def exit_code(self) -> int:
        """1: broken, expired or refused (the unit fails); 3: the online check could not be
        made (the unit's SuccessExitStatus=3: logged as a warning, not a failure); 0."""
        if self.errors or self.sync is None:
            return 1
        if self.online is not None and self.online.status == verify.INVALID:
            return 1
        if self.online is not None and self.online.status == verify.UNVERIFIED:
            return 3
        return 0

    def as_dict(self) -> dict:
        return {
            "file": self.path,
            "valid": not self.errors,
            "errors": [f.code for f in self.errors],
            "expires": self.expires.isoformat() if self.expires else None,
            "state": self.sync,
            "online": self.online.as_dict() if self.online else None,
            "checked": self.checked.isoformat(timespec="seconds"),
        }


SKIPPED = verify.SKIPPED
ONLINE_STATES = (verify.VALID, verify.INVALID, verify.UNVERIFIED, SKIPPED)
PREFIX = "onedesk_azuread_"
# name -> (TYPE, HELP): written once, for every state.
METRICS = {
    "secret_expiry_recorded": ("gauge", "1 when an expiry date is recorded for the current "
                                        "client secret (onedesk-azuread set --expires), else 0."),
    "secret_expiry_timestamp_seconds": ("gauge", "When the client secret expires: the end of "
                                                 "the recorded day, 00:00 UTC of the next day "
                                                 "(Unix time). Absent when none is recorded."),
    "entries_valid": ("gauge", "1 when AZUREAD_CID and AZUREAD_CIS have no error (an expired "
                               "secret is an error), else 0."),
    "entries_applied": ("gauge", "1 when the installed OneDesk packages were set up with the "
                                 "current entries (onedesk-azuread status: in sync), else 0."),
    "online_result": ("gauge", "1 for the online check's result (valid, invalid, unverified: "
                               "could not ask, skipped: offline errors), 0 for the others. "
                               "Absent when no tenant is configured."),
    "check_timestamp_seconds": ("gauge", "When this check ran (Unix time)."),
}


def _expiry_timestamp(expires: date) -> int:
    end = datetime.combine(expires + timedelta(days=1), datetime.min.time(), timezone.utc)
    return int(end.timestamp())


def metrics_text(outcome: Outcome) -> str:
    """The textfile-collector file for one outcome (pure): HELP and TYPE for each metric."""
    samples: dict[str, list[str]] = {name: [] for name in METRICS}
    samples["secret_expiry_recorded"].append(f" {int(outcome.expires is not None)}")
    if outcome.expires is not None:
        samples["secret_expiry_timestamp_seconds"].append(
            f" {_expiry_timestamp(outcome.expires)}")
    samples["entries_valid"].append(f" {int(not outcome.errors)}")
    samples["entries_applied"].append(f" {int(outcome.sync == state.IN_SYNC)}")
    if outcome.online is not None:
        for name in ONLINE_STATES:
            samples["online_result"].append(
                f'{{result="{name}"}} {int(outcome.online.status == name)}')
    samples["check_timestamp_seconds"].append(f" {int(outcome.checked.timestamp())}")
    lines = []
    for name, (kind, text) in METRICS.items():
        if not samples[name]:
            continue
        lines += [f"# HELP {PREFIX}{name} {text}", f"# TYPE {PREFIX}{name} {kind}"]
        lines += [f"{PREFIX}{name}{sample}" for sample in samples[name]]
    return "\n".join(lines) + "\n"


METRICS_NO_DIRECTORY = ("{path}: cannot write the metrics: the directory {directory} does not "
                        "exist; create it (node_exporter's --collector.textfile.directory) or "
                        "give another path")
METRICS_READ_ONLY = ("{path}: cannot write the metrics: {directory} is read-only here; under "
                     "systemd add it with `systemctl edit onedesk-azuread-check.service`: "
                     "[Service] ReadWritePaths={directory}")
METRICS_NOT_PROM = ("{path}: is not a *.prom file (node_exporter's textfile collector reads "
                    "only those); name it for example onedesk_azuread.prom")
METRICS_MODE = 0o644  # node_exporter runs as its own user: it must read the file


def write_metrics(path: str, text: str) -> None:
    """Write the metrics atomically: a temp file in the same directory (so node_exporter
    never reads half a file, and never a *.prom of ours that is incomplete), then rename."""
    if not path.endswith(METRICS_SUFFIX) or os.path.basename(path) == METRICS_SUFFIX:
        raise OnedeskError(METRICS_NOT_PROM.format(path=path))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OnedeskError(METRICS_NO_DIRECTORY.format(path=path, directory=directory))
    try:
        read_only = os.statvfs(directory).f_flag & os.ST_RDONLY  # systemd's ProtectSystem
    except OSError:
        read_only = False
    if read_only:
        raise OnedeskError(METRICS_READ_ONLY.format(path=path, directory=directory))
    # fsutil's atomic replace: its temp name (.NAME.*.tmp) does not end in .prom, so the
    # collector ignores it until the rename.
    replace_file(path, text.encode("utf-8"), mode=METRICS_MODE, error=OnedeskError,
                 action="write the metrics")


def _sync(paths: Paths) -> tuple[str | None, Line | None]:
    """status' answer (in sync, pending, ...) and its line; (None, error line) if unknown."""
    from . import status

    try:
        now = status.status(paths, unfinished_too=False)
    except OnedeskError as exc:
        return None, Line(ERR, f"applied: cannot tell: {exc}")
    quiet = now.sync in (state.IN_SYNC, status.NOT_INSTALLED)
    return now.sync, Line(INFO if quiet else WARNING, f"applied: {now.explain()}")


def check_metrics(paths: Paths, metrics: str, inspection: operations.Inspection,
                  online: verify.Result | None) -> None:
    """`check --metrics FILE` without --scheduled: the metrics of the check just made."""
    sync, _ = _sync(paths)
    outcome = Outcome(inspection.snapshot.path, inspection.findings, inspection.expires,
                      online, sync, datetime.now(timezone.utc))
    with state.locked(paths.state_dir):  # one writer at a time, as for every file of ours
        write_metrics(metrics, metrics_text(outcome))


# --- The scheduled check ---------------------------------------------------------------------

MSG_NO_TENANT = ("online: not configured (set tenant = TENANT in {conf} to have Azure AD "
                 "prove the pair daily)")
MSG_METRICS = "metrics written to {path}"
ONLINE_PRIORITY = {verify.VALID: INFO, verify.INVALID: ERR, verify.UNVERIFIED: WARNING,
                   SKIPPED: NOTICE}


class Report(namedtuple("Report", "outcome lines exit_code state_dir warned",
                        defaults=(None, None))):
    """What the scheduled check found and says."""

    __slots__ = ()
    # outcome: Outcome
    # lines: list[Line]
    # exit_code: int
    # state_dir: str | None; where ``warned`` is recorded
    # warned: dict | None; the expiry warning among the lines, recorded once they are given

    def render(self, journal: bool | None = None) -> list[str]:
        """The lines for stderr: with `<N>` prefixes when stderr is the journal."""
        if journal is None:
            journal = stderr_is_journal()
        return [line.render(journal) for line in self.lines]

    def give(self, say, journal: bool | None = None) -> None:
        """Every line through ``say``, and only then record the expiry warning as given:
        a run killed before its warning reached the journal warns again next time."""
        for line in self.render(journal):
            say(line)
        if self.warned is not None:
            record_warned(self.state_dir, self.warned)


def online_line(result: verify.Result) -> Line:
    return Line(ONLINE_PRIORITY[result.status], operations.online_line(result))


def scheduled(paths: Paths, metrics: str | None = None, today: date | None = None) -> Report:
    """The daily check: check.conf, the offline check, the online one when a tenant is set,
    status, the expiry countdown and (when asked) the metrics file.

    ``metrics`` (the --metrics option, a path on this machine) overrides check.conf's
    ``metrics`` (a path inside the root). Raises ConfError for a bad check.conf.
    """
    conf = load_conf(paths.check_conf, paths.root)
    today = today or date.today()
    ask = None
    if conf.tenant is not None:
        def ask(client_id: str, secret: str) -> verify.Result:
            return verify.verify(client_id, secret, verify.Authority(
                conf.tenant, conf.cloud, conf.authority_host, conf.timeout))
    result = operations.check(paths, today=today, online=ask)
    checked = result.inspection
    findings = checked.findings
    path = checked.snapshot.path
    lines = [Line(ERR if f.severity == validation.ERROR else WARNING, f.describe(path))
             for f in findings if f.code != EXPIRES_SOON]
    secret = checked.values[SECRET]
    expiry = expiry_line(paths.state_dir, secret, checked.expires, today)
    if expiry is not None:
        lines.append(expiry.line)
    online = result.online  # asked only when a tenant is set, skipped after offline errors
    if online is None:
        lines.append(Line(INFO, MSG_NO_TENANT.format(conf=conf.path)))
    else:
        lines.append(online_line(online))
    sync, sync_line = _sync(paths)
    lines.append(sync_line)
    outcome = Outcome(checked.snapshot.path, findings, checked.expires, online, sync,
                      datetime.now(timezone.utc))
    target = metrics or (paths.inside_root(conf.metrics) if conf.metrics else None)
    code = outcome.exit_code
    if target is not None:
        try:
            with state.locked(paths.state_dir):
                write_metrics(target, metrics_text(outcome))
            lines.append(Line(INFO, MSG_METRICS.format(path=target)))
        except OnedeskError as exc:
            lines.append(Line(ERR, str(exc)))
            code = 1
    # check's own summary line, at the priority of what it sums up
    summary = result.lines()[-2 if online is not None else -1]
    if validation.errors(findings):
        lines.append(Line(ERR, summary))
    else:
        lines.append(Line(WARNING if any(f.code != EXPIRES_SOON for f in findings) else INFO,
                          summary))
    return Report(outcome, lines, code, paths.state_dir, expiry.warned if expiry else None)


def run_scheduled(paths: Paths, metrics: str | None, say) -> int:
    """`check --scheduled` for the CLI: every line through ``say`` (stderr), prefixed when
    that is the journal; a failure (check.conf, the state) is one `<3>` line and exit 1."""
    from . import fsutil

    journal = stderr_is_journal()
    # "waiting for the lock", "repaired the state directory": notices, in the journal too.
    fsutil.set_notifier(lambda message: say(Line(NOTICE, message).render(journal)))
    try:
        report = scheduled(paths, metrics)
        report.give(say, journal)
    except OnedeskError as exc:
        say(Line(ERR, str(exc)).render(journal))
        return 1
    return report.exit_code
