"""The `onedesk-azuread` command: a thin click layer over the library.

Data goes to stdout, messages to stderr. json and the registration data are
imported by the commands that use them, to keep `show` as quick as a bare
click program (`make bench`). Exit codes: 0 success, 1 problem
found or operation failed, 2 usage error, 3 could not check (network).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import sys
from datetime import date

import click

from . import CLIENT_ID, SECRET, __version__, fsutil, operations, state, verify
from .errors import OnedeskError
from .paths import Paths
from .validation import ERROR, Finding

EXIT_PROBLEM = 1

NEXT_STEP = """\
Next: reinstall the OneDesk packages so their install scripts apply the change:
  onedesk-azuread apply        (the vendor's dnf remove + dnf install, done safely)"""


class _Group(click.Group):
    """Turns the library's user errors into one-line messages, never tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except operations.Refused as exc:
            for finding in exc.findings:
                _say(finding.describe(exc.path))
            raise _Failure(str(exc)) from None
        except OnedeskError as exc:
            raise _Failure(str(exc), exc.exit_code) from None
        except OSError as exc:  # a system error the library did not foresee: still one line
            if exc.filename is None and exc.errno in (errno.EBADF, errno.EPIPE, errno.ENOSPC,
                                                      errno.EIO):
                # Writing the output failed (stdout closed, full, gone): say so, exit 1.
                raise _Failure(f"cannot write the output to stdout: {exc.strerror}") from None
            where = f"{exc.filename}: " if exc.filename else ""
            raise _Failure(f"{where}{exc.strerror or exc}") from None


class _Failure(click.ClickException):
    def __init__(self, message: str, exit_code: int = EXIT_PROBLEM):
        super().__init__(message)
        self.exit_code = exit_code


def _json(data: object) -> str:
    import json

    return json.dumps(data, indent=2)


def _say(message: str) -> None:
    click.echo(message, err=True)


def _paths(ctx: click.Context) -> Paths:
    return ctx.find_object(Paths)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", metavar="DIR", type=click.Path(file_okay=False),
              help="Work on the system installed under DIR, like `rpm --root`.")
@click.option("--file", "settings_file", metavar="PATH", type=click.Path(),
              help="The settings file (default: /root/.OneDesk under the root).")
@click.version_option(__version__, prog_name="onedesk-azuread")
@click.pass_context
def cli(ctx: click.Context, root: str | None, settings_file: str | None) -> None:
    """Manage the Azure AD sign-in settings (AZUREAD_CID, AZUREAD_CIS) of an
    on-premise OneDesk server, safely."""
    ctx.obj = Paths.under(root, settings_file)
    fsutil.set_notifier(_say)  # "waiting for the lock", "repaired the state directory"


class _Date(click.ParamType):
    name = "date"

    def convert(self, value, param, ctx):
        if isinstance(value, date):
            return value
        try:
            return state.parse_date(value)  # exactly YYYY-MM-DD on every Python
        except ValueError:
            self.fail(f"{value!r} is not a date written YYYY-MM-DD", param, ctx)


def _read_secret_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise click.BadParameter(f"{path}: {exc.strerror}", param_hint="--secret-file") from None
    return _decode_secret(data, path, "--secret-file")


def _prompt(text: str, **options) -> str:
    try:
        return click.prompt(text, err=True, **options)
    except OSError as exc:  # stdin or the terminal closed
        raise click.UsageError(f"cannot ask ({exc.strerror}); give the values with options "
                               f"instead (see --help)") from None


def _read_stdin() -> bytes:
    try:
        return sys.stdin.buffer.read()
    except (AttributeError, OSError, ValueError) as exc:  # closed (main) or not a byte stream
        reason = getattr(exc, "strerror", None) or "it is closed"
        raise click.BadParameter(f"cannot read the secret from stdin: {reason}; pipe it in, "
                                 f"for example: onedesk-azuread set --secret-stdin < FILE",
                                 param_hint="--secret-stdin") from None


def _decode_secret(data: bytes, source: str, option: str) -> str:
    """Bytes as given (no newline translation), less the line end that `echo` adds."""
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise click.BadParameter(f"{source} is not UTF-8 text", param_hint=option) from None


def _online_options(command):
    """--tenant, --cloud, --authority-host, --timeout: where and how long to ask Azure AD."""
    options = [
        click.option("--tenant", metavar="TENANT",
                     help="The tenant the app lives in: its ID (GUID) or a domain."),
        click.option("--cloud", type=click.Choice(list(verify.CLOUDS)), default="public",
                     show_default=True, help="Which Azure cloud's login host to ask."),
        click.option("--authority-host", metavar="URL",
                     help="Another login host (https URL); overrides --cloud's."),
        click.option("--timeout", type=click.FloatRange(0.1, 300), default=verify.DEFAULT_TIMEOUT,
                     show_default=True, metavar="SECONDS", help="The most the check may take."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _verifier(enabled: bool, flag: str, tenant, cloud, authority_host, timeout):
    """A function (client_id, secret) -> verify.Result, or None; usage errors exit 2."""
    if not enabled:
        if tenant or authority_host:
            raise click.UsageError(f"--tenant and --authority-host go with {flag}")
        return None
    if not tenant:
        raise click.UsageError(f"{flag} needs --tenant TENANT (the tenant ID or a domain)")
    try:
        tenant = verify.check_tenant(tenant)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tenant") from None
    try:
        host = verify.check_authority_host(authority_host) if authority_host else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--authority-host") from None

    def check(client_id: str, secret: str) -> verify.Result:
        return verify.verify(client_id, secret, tenant, cloud=cloud, authority_host=host,
                             timeout=timeout)
    return check


def _say_online(result: verify.Result) -> None:
    text = f"online: {result.status}: {result.message}"
    if result.correlation_id:
        text += f" (correlation id {result.correlation_id})"
    _say(text)


@cli.command("set")
@click.option("--client-id", metavar="ID", help="The Application (client) ID, a GUID.")
@click.option("--secret-stdin", is_flag=True, help="Read the client secret value from stdin.")
@click.option("--secret-file", metavar="PATH", help="Read the client secret value from a file.")
@click.option("--secret-prompt", is_flag=True, help="Ask for the client secret value, hidden.")
@click.option("--expires", type=_Date(), metavar="YYYY-MM-DD",
              help="Record when the secret expires (kept in the tool's state).")
@click.option("--force", is_flag=True, help="Write even when validation finds errors.")
@click.option("--verify", "verify_online", is_flag=True,
              help="Prove the pair with Azure AD before writing it (needs --tenant).")
@_online_options
@click.pass_context
def set_command(ctx, client_id, secret_stdin, secret_file, secret_prompt, expires, force,
                verify_online, tenant, cloud, authority_host, timeout):
    """Set the client ID and/or the client secret. With no options, asks for both."""
    paths = _paths(ctx)
    verifier = _verifier(verify_online, "--verify", tenant, cloud, authority_host, timeout)
    sources = [name for name, given in (("--secret-stdin", secret_stdin),
                                        ("--secret-file", secret_file),
                                        ("--secret-prompt", secret_prompt)) if given]
    if len(sources) > 1:
        raise click.UsageError(f"give the secret one way only, not {' and '.join(sources)}")
    interactive = not (client_id or sources or expires or force or verify_online)
    secret = None
    if interactive:
        current = operations.inspect(paths, validate=False).values[CLIENT_ID]
        client_id = _prompt("Application (client) ID", default=current or None)
        secret_prompt = True
    if secret_stdin:
        secret = _decode_secret(_read_stdin(), "stdin", "--secret-stdin")
    elif secret_file:
        secret = _read_secret_file(secret_file)
    elif secret_prompt:
        secret = _prompt("Client secret Value (not the Secret ID)", hide_input=True)
    if client_id is None and secret is None and expires is None:
        raise click.UsageError("nothing to set: give --client-id, a secret option or --expires "
                               "(or no options at all to be asked)")
    try:
        result = operations.set_entries(paths, client_id=client_id, secret=secret,
                                        expires=expires, force=force, verify=verifier)
    except operations.VerificationFailed as exc:
        _say_online(exc.result)
        raise
    for finding in result.findings:
        _say(finding.describe(result.path))
    if result.verification is not None:
        _say_online(result.verification)
    for key, change in result.changes.items():
        shown = operations.mask(secret) if key == SECRET else result.client_id
        _say(f"{key}: {change} ({shown})" if change != "unchanged" else f"{key}: unchanged")
    if result.expiry_recorded:
        _say(f"secret expiry recorded: {result.expiry_recorded.isoformat()}")
    elif result.expiry_cleared:
        _say("no expiry recorded for the new secret (record it with --expires YYYY-MM-DD)")
    if result.written:
        kept = f"; previous version kept as {result.path}.bak" if result.backup else ""
        _say(f"{result.path} written{kept}")
        _say(NEXT_STEP)
    else:
        _say(f"{result.path} unchanged: it already holds these values")


@cli.command("unset")
@click.pass_context
def unset_command(ctx):
    """Remove both entries (the previous file is kept as .bak)."""
    paths = _paths(ctx)
    if operations.unset_entries(paths):
        _say(f"{CLIENT_ID} and {SECRET} removed from {paths.settings}; "
             f"previous version kept as {paths.settings}.bak")
        _say(NEXT_STEP)
    else:
        _say(f"{paths.settings}: no Azure AD entries to remove")


def _owner(uid: int | None) -> str | None:
    if uid is None:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@cli.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--reveal", is_flag=True, help="Print the secret in full.")
@click.pass_context
def show_command(ctx, as_json, reveal):
    """Show the entries (the secret masked), the file and the recorded expiry."""
    info = operations.inspect(_paths(ctx), validate=False)
    snap = info.snapshot
    secret = info.values[SECRET]
    shown_secret = secret if (reveal or secret is None) else operations.mask(secret)
    record = {
        "file": snap.path,
        "exists": snap.exists,
        "mode": f"{snap.mode:04o}" if snap.mode is not None else None,
        "owner": _owner(snap.uid),
        "client_id": info.values[CLIENT_ID],
        "secret": shown_secret,
        "secret_revealed": bool(reveal and secret is not None),
        "expires": info.expires.isoformat() if info.expires else None,
    }
    if as_json:
        click.echo(_json(record))
        return
    file_line = snap.path if snap.exists else f"{snap.path} (does not exist)"
    if snap.exists:
        file_line += f" (mode {record['mode']}, owner {record['owner']})"
    expires = "not recorded (onedesk-azuread set --expires YYYY-MM-DD)"
    if info.expires:
        days = (info.expires - date.today()).days
        left = f"in {days} days" if days >= 0 else "EXPIRED"
        expires = f"{info.expires.isoformat()} ({left})"
    def absent(key: str) -> str:
        if snap.doc.unsupported_for(key):
            return "present, but not a plain assignment (run: onedesk-azuread check)"
        if snap.doc.entries_for(key):
            return "present, but not a literal value (run: onedesk-azuread check)"
        return "not set"

    secret_line = absent(SECRET)
    if secret is not None:
        secret_line = shown_secret if reveal else f"{shown_secret} (masked; --reveal shows it)"
    client_id = info.values[CLIENT_ID]
    click.echo(f"file:         {file_line}")
    click.echo(f"{CLIENT_ID}:  {client_id if client_id is not None else absent(CLIENT_ID)}")
    click.echo(f"{SECRET}:  {secret_line}")
    click.echo(f"expires:      {expires}")


def _report(path: str, findings: list[Finding], repaired: list[Finding], as_json: bool,
            online: verify.Result | None = None) -> int:
    errors = [f for f in findings if f.severity == ERROR]
    if as_json:
        report = {
            "file": path,
            "ok": not errors and (online is None or online.status == verify.VALID),
            "errors": len(errors),
            "warnings": len(findings) - len(errors),
            "repaired": [f.code for f in repaired],
            "findings": [f.as_dict() for f in findings],
        }
        if online is not None:
            report["online"] = online.as_dict()
        click.echo(_json(report))
    else:
        for finding in repaired:
            _say(f"repaired: {finding.code}" + (f" ({finding.key})" if finding.key else ""))
        for finding in findings:
            click.echo(finding.describe(path))
        if errors:
            _say(f"{path}: {len(errors)} error(s): OneDesk would not get correct Azure AD values")
        else:
            _say(f"{path}: OK" + (f" ({len(findings)} warning(s))" if findings else ""))
        if online is not None:
            _say_online(online)
    return EXIT_PROBLEM if errors else 0


@cli.command("check")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--fix", is_flag=True, help="Repair what can be repaired (a backup is kept).")
@click.option("--online", is_flag=True,
              help="Then prove the pair with Azure AD (needs --tenant); exit 3 if it cannot.")
@_online_options
@click.option("--scheduled", is_flag=True,
              help="The daily check (systemd timer): settings from "
                   "/etc/onedesk-azuread/check.conf, expiry warnings at 30, 14, 7, 1 days.")
@click.option("--metrics", metavar="FILE.prom",
              help="Also write node_exporter textfile-collector metrics to FILE.prom.")
@click.pass_context
def check_command(ctx, as_json, fix, online, tenant, cloud, authority_host, timeout, scheduled,
                  metrics):
    """Validate the entries; exit 1 when OneDesk would not get correct values.

    With --online, also ask Azure AD for a token with them: exit 0 valid, 1
    refused, 3 could not verify (network, TLS, timeout, HTTP 5xx). --scheduled
    takes its online settings from check.conf and says everything on stderr,
    with journal priorities when stderr is the journal.
    """
    from . import watch

    if metrics is not None and watch.metrics_path_problem(os.path.abspath(metrics)):
        raise click.BadParameter(watch.METRICS_NOT_PROM.format(path=metrics),
                                 param_hint="--metrics")
    if scheduled:
        if as_json or fix or online or tenant or authority_host:
            raise click.UsageError("--scheduled takes its settings from check.conf: not with "
                                   "--json, --fix, --online, --tenant or --authority-host")
        ctx.exit(watch.run_scheduled(_paths(ctx), metrics and os.path.abspath(metrics), _say))
    verifier = _verifier(online, "--online", tenant, cloud, authority_host, timeout)
    result = operations.check(_paths(ctx), fix=fix)
    after = result.after
    online_result = None
    if verifier is not None:
        if any(f.severity == ERROR for f in after.findings):
            online_result = verify.Result("skipped", "not asked: fix the errors above first")
        else:
            online_result = verifier(after.values[CLIENT_ID], after.values[SECRET])
    code = _report(after.snapshot.path, after.findings, result.repaired, as_json, online_result)
    if metrics is not None:
        watch.check_metrics(_paths(ctx), os.path.abspath(metrics), after, online_result)
    if online_result is not None and online_result.status in verify.EXIT_CODES:
        code = max(code, online_result.exit_code)
    ctx.exit(code)


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status_command(ctx, as_json):
    """Were the current entries applied to the installed OneDesk packages?

    Exit 0 only when the entries are valid and in sync, and no apply is unfinished.
    """
    from .status import status

    now = status(_paths(ctx))
    if as_json:
        click.echo(_json(now.as_dict()))
    else:
        valid = "valid" if not now.errors else (
            f"{len(now.errors)} error(s) ({', '.join(f.code for f in now.errors)}); "
            f"run: onedesk-azuread check")
        click.echo(f"settings:  {now.path}: {valid}")
        if now.unfinished:
            click.echo(f"apply:     {now.unfinished.explain()}")
        click.echo(f"applied:   {now.explain()}")
        if now.applied:
            click.echo(f"           last applied {now.applied.get('applied')} with "
                       f"{', '.join(now.applied.get('packages', []))}")
        for name, nevra in now.installed.items():
            click.echo(f"package:   {name}: {nevra or 'not installed'}")
        click.echo(f"expires:   {now.expires.isoformat() if now.expires else 'not recorded'}")
    ctx.exit(0 if now.ok else EXIT_PROBLEM)


@cli.command("apply")
@click.option("--dry-run", is_flag=True, help="Print the steps; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--if-needed", is_flag=True,
              help="Do nothing when `status` is already fine (valid, in sync).")
@click.pass_context
def apply_command(ctx, dry_run, yes, if_needed):
    """Reinstall the OneDesk packages so they pick up the entries, safely.

    Checks the entries, makes sure every package the removal takes away can be
    installed again (and is downloaded), journals the plan, then runs `dnf remove
    onedesk-db-utils` and `dnf install` of the OneDesk packages (from dnf's cache),
    holding SIGINT, SIGHUP and SIGTERM until they are installed again, and confirms
    `status`. After an interrupted apply, completes the journalled one. The dnf
    command is `dnf`, or $ONEDESK_AZUREAD_DNF (split like a shell would).
    """
    from . import apply, packages

    paths = _paths(ctx)

    def show_plan(the_plan: apply.Plan) -> None:
        dnf = " ".join(packages.dnf_command(paths.root))
        for number, step in enumerate(the_plan.steps, 1):
            click.echo(f"{number}. {step.title}\n   {dnf} {' '.join(step.args)}")
            if step.fallback:
                click.echo(f"   (if that fails: {dnf} {' '.join(step.fallback)})")

    def confirm_removal(the_plan: apply.Plan) -> None:
        if not yes:
            click.confirm(f"Remove {', '.join(the_plan.removed)} and install them again?",
                          abort=True, err=True)

    apply.apply(paths, _say_always, dry_run=dry_run, if_needed=if_needed, show_plan=show_plan,
                confirm_removal=confirm_removal)


def _say_always(message: str) -> None:
    """After a hangup the terminal is gone (EIO); a closed pipe gives EPIPE. A job that is
    under way goes on: its messages go to /dev/null from then on."""
    try:
        _say(message)
    except OSError:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stderr.fileno())
            os.close(devnull)


@cli.command("app-registration")
@click.option("--url", required=True, metavar="https://HOST",
              help="The address users open OneDesk at.")
@click.option("--json", "as_json", is_flag=True, help="The registration as Graph JSON.")
@click.option("--az", "as_az", is_flag=True, help="Azure CLI commands that do it all.")
def app_registration_command(url, as_json, as_az):
    """What to register in Azure for this server."""
    from . import registration

    if as_json and as_az:
        raise click.UsageError("choose one of --json and --az")
    try:
        base = registration.server_url(url)
    except ValueError as exc:
        raise click.BadParameter(f"{url!r} {exc}", param_hint="--url") from None
    if as_json:
        click.echo(_json(registration.manifest(base)))
    elif as_az:
        click.echo(registration.az_commands(base), nl=False)
    else:
        click.echo(registration.portal_steps(base), nl=False)


@cli.command("dnf5-hook", hidden=True)
@click.argument("callback")
@click.argument("action")
@click.argument("nevra")
@click.argument("pid")
@click.option("--require", type=click.BOOL, default=False,
              help="Stop when the settings file has no Azure AD entries at all.")
@click.option("--settings", "settings_file", default="/root/.OneDesk", metavar="PATH",
              help="The settings file, inside the installroot.")
@click.pass_context
def dnf5_hook_command(ctx, callback, action, nevra, pid, require, settings_file):
    """What dnf 5's actions plugin runs (dnf-plugin/onedesk_azuread.actions)."""
    from . import dnf5hook

    click.echo(dnf5hook.run(callback, _paths(ctx).root, action, nevra, pid, require=require,
                            settings_file=settings_file, say=_say), nl=False)


# How an fd that was closed when we started is filled: with /dev/null, opened the wrong way
# round, so that it is taken (a file we open later can never become fd 1, where a message
# or a child's output would land in it) and yet every read or write on it fails (EBADF), as
# on a closed fd. So output that could not be written is an error, never a silent success.
_STANDARD_FDS = ((0, "stdin", os.O_WRONLY, "r"), (1, "stdout", os.O_RDONLY, "w"),
                 (2, "stderr", os.O_WRONLY, "w"))


def _fill_closed_standard_fds() -> list[int]:
    """Occupy closed fds 0-2 (see _STANDARD_FDS); return which were closed.

    A closed stderr gets a writable /dev/null: messages are lost either way, and
    failing to print one must not turn a done job into a failure.
    """
    closed = []
    for fd, name, flags, mode in _STANDARD_FDS:
        try:
            os.fstat(fd)
            continue
        except OSError:
            closed.append(fd)
        opened = os.open(os.devnull, os.O_WRONLY if fd == 2 else flags)
        if opened != fd:
            os.dup2(opened, fd)
            os.close(opened)
        setattr(sys, name, open(fd, mode, closefd=False, encoding="utf-8",
                                errors="backslashreplace" if fd == 2 else "strict"))
    return closed


def _flush_stdout() -> bool:
    """Flush stdout; if that fails, point fd 1 at a writable /dev/null so that what is left
    in the buffer is dropped at exit instead of failing again (`Exception ignored ...`)."""
    try:
        sys.stdout.flush()
        return True
    except (AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        return False


def main() -> None:
    _fill_closed_standard_fds()
    code = 0
    try:
        cli(prog_name="onedesk-azuread")
    except SystemExit as exc:  # click's standalone mode always ends here
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BrokenPipeError:  # a closed stdout (`| head`) is not an error worth a traceback
        code = EXIT_PROBLEM
    if not _flush_stdout() and code == 0:
        code = EXIT_PROBLEM  # the output that mattered was not written
    sys.exit(code)
