"""The daily check: `check --scheduled` (the systemd timer's run), and `check --metrics`.

One run: check.conf (checkconf), the offline check, the online check when
check.conf names a tenant (never when the offline check found errors: that
result is "skipped"), whether the entries were applied (status), and the expiry.
Every finding becomes one line with a syslog priority (sd-daemon(3): `<3>` error,
`<4>` warning, `<5>` notice, `<6>` info), prefixed only when stderr is the
journal. An expiry within 30 days is a warning on the first run at or below each
of 30, 14, 7 and 1 days left (the last threshold warned is kept in watch.json
beside the expiry record, once the warning was written) and a notice on the days
between; a passed expiry is an error on every run. The run's facts go into the
metrics file (metrics) when check.conf or --metrics names one.
"""

from __future__ import annotations

import os
from collections import namedtuple
from datetime import date, datetime, timezone

from . import SECRET, checkconf, fsutil, operations, state, status, trust, validation, verify
from .errors import OnedeskError, StateError
from .metrics import Outcome, metrics_text, write_metrics
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


# --- Expiry warnings at 30, 14, 7 and 1 days -------------------------------------------------

THRESHOLDS = (30, 14, 7, 1)
assert THRESHOLDS[0] == validation.EXPIRY_WARNING_DAYS  # one window for check and the watch
WATCH_FILE = "watch.json"
FIX_WATCH = "delete it (the next scheduled check warns again at the current threshold)"

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


# --- One run's facts ---------------------------------------------------------------------------

def _sync(paths: Paths) -> tuple[str | None, Line | None]:
    """status' answer (in sync, pending, ...) and its line; (None, error line) if unknown."""
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
    outcome = Outcome(inspection.findings, inspection.expires, online, sync,
                      datetime.now(timezone.utc))
    with state.locked(paths.state_dir):  # one writer at a time, as for every file of ours
        write_metrics(metrics, metrics_text(outcome))


# --- The scheduled check ---------------------------------------------------------------------

MSG_NO_TENANT = ("online: not configured (set tenant = TENANT in {conf} to have Azure AD "
                 "prove the pair daily)")
MSG_METRICS = "metrics written to {path}"
ONLINE_PRIORITY = {verify.VALID: INFO, verify.INVALID: ERR, verify.UNVERIFIED: WARNING,
                   verify.SKIPPED: NOTICE}


def exit_code(outcome: Outcome) -> int:
    """1: broken, expired or refused (the unit fails); 3: the online check could not be made
    (the unit's SuccessExitStatus=3: logged as a warning, not a failure); 0."""
    if outcome.errors or outcome.sync is None:
        return 1
    if outcome.online is not None and outcome.online.status == verify.INVALID:
        return 1
    if outcome.online is not None and outcome.online.status == verify.UNVERIFIED:
        return 3
    return 0


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
    ``metrics`` (a path inside the root). Raises checkconf.ConfError for a bad check.conf.
    """
    conf = checkconf.load_conf(paths.check_conf, paths.root)
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
             for f in findings if f.code != validation.EXPIRES_SOON]
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
    outcome = Outcome(findings, checked.expires, online, sync, datetime.now(timezone.utc))
    target = metrics or (paths.inside_root(conf.metrics) if conf.metrics else None)
    code = exit_code(outcome)
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
        warnings = any(f.code != validation.EXPIRES_SOON for f in findings)
        lines.append(Line(WARNING if warnings else INFO, summary))
    return Report(outcome, lines, code, paths.state_dir, expiry.warned if expiry else None)


def run_scheduled(paths: Paths, metrics: str | None, say) -> int:
    """`check --scheduled` for the CLI: every line through ``say`` (stderr), prefixed when
    that is the journal; a failure (check.conf, the state) is one `<3>` line and exit 1."""
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
