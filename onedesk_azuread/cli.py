"""The `onedesk-azuread` command: a thin click layer over the library.

Each command parses its options, makes one library call and prints the record
it gets back (its ``lines()``, or ``as_dict()`` with --json). A command's function
takes one parameter per option, as click passes them: the only functions exempt
(noqa) from the lint rule against long parameter lists. Data goes to stdout,
messages to stderr (--quiet: errors only). Exit codes: 0 success, 1 problem
found or operation failed, 2 usage error, 3 could not check (network).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections import namedtuple
from datetime import date

import click

from . import CLIENT_ID, __version__, fsutil, operations, state, streams
from .errors import OnedeskError, Refused, RotationFailed, VerificationFailed
from .paths import Paths

# A command that needs more than `show` imports it where it starts (verify, status, apply,
# rotate, watch, registration): imported here, they and what they import (subprocess,
# tempfile, hmac, urllib.parse) take `show` from 1.18 to 1.75 times a bare
# `import click, configobj` (make bench, a fresh venv).

EXIT_PROBLEM = 1
# The Azure clouds' names and the online check's default time, without importing verify
# on `show`'s path (tests/test_cli.py checks they agree with verify's).
CLOUDS = ("public", "usgov", "china")
DEFAULT_TIMEOUT = 10.0
QUIET, NORMAL, VERBOSE = 0, 1, 2


class _Output:
    level = NORMAL  # set once per run by the group's --quiet/--verbose


class _Group(click.Group):
    """Turns the library's user errors into one-line messages, never tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Refused as exc:
            for finding in exc.findings:
                _say(finding.describe(exc.path), always=True)
            raise _Failure(str(exc)) from None
        except VerificationFailed as exc:
            _say(operations.online_line(exc.result), always=True)
            raise _Failure(str(exc), exc.exit_code) from None
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
    import json  # only --json needs it (its cost to `show`: state._load)

    return json.dumps(data, indent=2)


def _say(message: str, always: bool = False) -> None:
    """A message on stderr; --quiet keeps only errors (``always``)."""
    if always or _Output.level > QUIET:
        click.echo(message, err=True)


def _detail(message: str) -> None:
    """What --verbose adds."""
    if _Output.level >= VERBOSE:
        click.echo(message, err=True)


def _data(record, as_json: bool, lines=None) -> None:
    """A command's result on stdout: its JSON, or its lines."""
    if as_json:
        click.echo(_json(record.as_dict()))
    else:
        for line in record.lines() if lines is None else lines:
            click.echo(line)


def _report(record, as_json: bool) -> None:
    """A changing command's result: JSON on stdout, or its lines as messages on stderr."""
    if as_json:
        click.echo(_json(record.as_dict()))
    else:
        for line in record.lines():
            _say(line)


def _paths(ctx: click.Context) -> Paths:
    return ctx.find_object(Paths)


# A file's name as given: the library opens it and says what is wrong with it (an
# unreadable settings file is a problem found, exit 1, not a usage error).
_NAME = click.Path(readable=False)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", metavar="DIR", type=click.Path(file_okay=False),
              help="Work on the system installed under DIR, like `rpm --root`.")
@click.option("--file", "settings_file", metavar="PATH", type=_NAME,
              help="The settings file (default: /root/.OneDesk under the root).")
@click.option("--quiet", "-q", is_flag=True, help="Print only data and errors.")
@click.option("--verbose", "-v", is_flag=True, help="Also say which files are used.")
@click.version_option(__version__, prog_name="onedesk-azuread")
@click.pass_context
def cli(ctx: click.Context, root: str | None, settings_file: str | None, quiet: bool,
        verbose: bool) -> None:
    """Manage the Azure AD sign-in settings (AZUREAD_CID, AZUREAD_CIS) of an
    on-premise OneDesk server, safely."""
    if quiet and verbose:
        raise click.UsageError("choose one of --quiet and --verbose")
    _Output.level = QUIET if quiet else VERBOSE if verbose else NORMAL
    ctx.obj = Paths.under(root, settings_file)
    _detail(f"settings file: {ctx.obj.settings}; state: {ctx.obj.state_dir}")
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
        click.option("--cloud", type=click.Choice(CLOUDS), default="public",
                     show_default=True, help="Which Azure cloud's login host to ask."),
        click.option("--authority-host", metavar="URL",
                     help="Another login host (https URL); overrides --cloud's."),
        click.option("--timeout", type=click.FloatRange(0.1, 300), default=DEFAULT_TIMEOUT,
                     show_default=True, metavar="SECONDS", help="The most the check may take."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


class _Online(namedtuple("_Online", "tenant cloud authority_host timeout")):
    """The options _online_options adds, as given (_verifier checks them)."""

    __slots__ = ()


def _verifier(enabled: bool, flag: str, online: _Online):
    """A function (client_id, secret) -> verify.Result, or None; usage errors exit 2."""
    tenant, authority_host = online.tenant, online.authority_host
    if not enabled:
        if tenant or authority_host:
            raise click.UsageError(f"--tenant and --authority-host go with {flag}")
        return None
    if not tenant:
        raise click.UsageError(f"{flag} needs --tenant TENANT (the tenant ID or a domain)")
    from . import verify

    try:
        tenant = verify.check_tenant(tenant)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tenant") from None
    try:
        host = verify.check_authority_host(authority_host) if authority_host else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--authority-host") from None

    authority = verify.Authority(tenant, online.cloud, host, online.timeout)

    def check(client_id: str, secret: str):
        _detail(f"asking {authority.host} for a token (tenant {tenant})")
        return verify.verify(client_id, secret, authority)
    return check


@cli.command("set")
@click.option("--client-id", metavar="ID", help="The Application (client) ID, a GUID.")
@click.option("--secret-stdin", is_flag=True, help="Read the client secret value from stdin.")
@click.option("--secret-file", metavar="PATH", type=_NAME,
              help="Read the client secret value from a file.")
@click.option("--secret-prompt", is_flag=True, help="Ask for the client secret value, hidden.")
@click.option("--expires", type=_Date(), metavar="YYYY-MM-DD",
              help="Record the last day the secret works (kept in the tool's state).")
@click.option("--force", is_flag=True, help="Write even when validation finds errors.")
@click.option("--verify", "verify_online", is_flag=True,
              help="Prove the pair with Azure AD before writing it (needs --tenant).")
@_online_options
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON (with \"changed\") on stdout.")
@click.pass_context
def set_command(ctx, client_id, secret_stdin, secret_file,  # noqa: PLR0913, PLR0917
                secret_prompt, expires, force, verify_online, tenant, cloud, authority_host,
                timeout, as_json):
    """Set the client ID and/or the client secret. With no options, asks for both."""
    paths = _paths(ctx)
    verifier = _verifier(verify_online, "--verify",
                         _Online(tenant, cloud, authority_host, timeout))
    sources = [name for name, given in (("--secret-stdin", secret_stdin),
                                        ("--secret-file", secret_file),
                                        ("--secret-prompt", secret_prompt)) if given]
    if len(sources) > 1:
        raise click.UsageError(f"give the secret one way only, not {' and '.join(sources)}")
    interactive = not (client_id or sources or expires or force or verify_online or as_json)
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
    _report(operations.set_entries(paths, operations.Given(client_id, secret, expires),
                                   force=force, verify=verifier), as_json)


@cli.command("unset")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON (with \"changed\") on stdout.")
@click.pass_context
def unset_command(ctx, as_json):
    """Remove both entries (the previous file is kept as .bak)."""
    _report(operations.unset_entries(_paths(ctx)), as_json)


@cli.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--reveal", is_flag=True, help="Print the secret in full.")
@click.pass_context
def show_command(ctx, as_json, reveal):
    """Show the entries (the secret masked), the file and the recorded expiry."""
    shown = operations.show(_paths(ctx))
    if as_json:
        click.echo(_json(shown.as_dict(reveal)))
    else:
        for line in shown.lines(reveal):
            click.echo(line)


@cli.command("check")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output (with --fix: with \"changed\").")
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
def check_command(ctx, as_json, fix, online, tenant, cloud,  # noqa: PLR0913, PLR0917
                  authority_host, timeout, scheduled, metrics):
    """Validate the entries; exit 1 when OneDesk would not get correct values.

    With --online, also ask Azure AD for a token with them: exit 0 valid, 1
    refused, 3 could not verify (network, TLS, timeout, HTTP 5xx); it is not
    asked when the offline check found errors (status "skipped"). --scheduled
    takes its online settings from check.conf and says everything on stderr,
    with journal priorities when stderr is the journal.
    """
    if metrics is not None:
        from . import watch
        from .metrics import METRICS_NOT_PROM, metrics_path_problem

        metrics = os.path.abspath(metrics)
        if metrics_path_problem(metrics):
            raise click.BadParameter(METRICS_NOT_PROM.format(path=metrics),
                                     param_hint="--metrics")
    if scheduled:
        from . import watch

        if as_json or fix or online or tenant or authority_host:
            raise click.UsageError("--scheduled takes its settings from check.conf: not with "
                                   "--json, --fix, --online, --tenant or --authority-host")
        ctx.exit(watch.run_scheduled(_paths(ctx), metrics, lambda line: _say(line, always=True)))
    verifier = _verifier(online, "--online", _Online(tenant, cloud, authority_host, timeout))
    result = operations.check(_paths(ctx), fix=fix, online=verifier)
    if as_json:
        click.echo(_json(result.as_dict()))
    else:
        _data(result, False, result.report())
        for line in result.lines():
            _say(line)
    if metrics is not None:
        watch.check_metrics(_paths(ctx), metrics, result.inspection, result.online)
    ctx.exit(result.exit_code)


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status_command(ctx, as_json):
    """Were the current entries applied to the installed OneDesk packages?

    Exit 0 only when the entries are valid and in sync, and no apply or rotation is
    unfinished.
    """
    from .status import status

    now = status(_paths(ctx))
    _data(now, as_json)
    ctx.exit(0 if now.ok and now.rotation is None else EXIT_PROBLEM)


@cli.command("apply")
@click.option("--dry-run", is_flag=True, help="Print the steps; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--if-needed", is_flag=True,
              help="Do nothing when `status` is already fine (valid, in sync).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON (with \"changed\") on stdout; the steps go to "
                   "stderr.")
@click.pass_context
def apply_command(ctx, dry_run, yes, if_needed, as_json):
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
            click.echo(f"{number}. {step.title}\n   {dnf} {' '.join(step.args)}", err=as_json)
            if step.fallback:
                click.echo(f"   (if that fails: {dnf} {' '.join(step.fallback)})", err=as_json)

    def confirm_removal(the_plan: apply.Plan) -> None:
        if not yes:
            click.confirm(f"Remove {', '.join(the_plan.removed)} and install them again?",
                          abort=True, err=True)

    done = apply.apply(paths, _say_always, apply.Options(dry_run, if_needed, show_plan,
                                                         confirm_removal))
    if as_json:
        click.echo(_json(done.as_dict()))
    if done.not_back:  # OneDesk is back; a package of someone else's is not
        raise _Failure(str(apply.not_back_error(paths, done.not_back, done.after)))


@cli.command("rotate")
@click.option("--years", type=click.IntRange(1, 10), metavar="N",
              help="The new secret's lifetime in years (default 1, as az's).")
@click.option("--end-date", type=_Date(), metavar="YYYY-MM-DD",
              help="Or the day it stops working, as az's: at 00:00 UTC on that day (its last "
                   "day, the expiry recorded, is the day before).")
@click.option("--retire-old", is_flag=True,
              help="Then delete the old secret in Azure (only once status is in sync, and "
                   "only a key this server created or that is named after it).")
@click.option("--retire-key", metavar="KEYID",
              help="Then delete the old secret, this key id, even if another server may use "
                   "it (it must have the current secret's hint).")
@click.option("--finish", is_flag=True,
              help="Finish an interrupted rotation (apply its new secret, retire the old one "
                   "if it was asked to) or undo it (delete its unused new secret).")
@click.option("--no-apply", is_flag=True,
              help="Write the new secret but do not reinstall the packages.")
@click.option("--wait", type=click.FloatRange(0, 3600), default=120.0, show_default=True,
              metavar="SECONDS",
              help="How long to wait for Azure AD to accept the new secret (each check "
                   "takes at most --timeout more).")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_online_options
@click.pass_context
def rotate_command(ctx, years, end_date, retire_old, retire_key,  # noqa: PLR0913, PLR0917
                   finish, no_apply, wait, dry_run, as_json, tenant, cloud, authority_host,
                   timeout):
    """Replace the client secret with a new one, with the Azure CLI (`az login` first).

    Adds a secret named after this server (az ad app credential reset --append),
    journals its key id, waits until Azure AD accepts it, writes it and its expiry,
    applies, and with --retire-old deletes the old one once it is proven to be this
    server's. An interrupted rotation stops the next one until --finish.
    The az command is `az`, or $ONEDESK_AZUREAD_AZ (split like a shell would).
    """
    from . import rotate

    if years is not None and end_date is not None:
        raise click.UsageError("give --years or --end-date, not both")
    if (retire_old or retire_key) and no_apply:
        raise click.UsageError("--retire-old needs the apply: without it OneDesk still uses "
                               "the old secret")
    if finish and (years or end_date or retire_old or retire_key or no_apply or dry_run):
        raise click.UsageError("--finish takes no other rotate option: it finishes the "
                               "interrupted rotation as that one was asked")
    # --finish asks no token: it needs no tenant.
    verifier = (None if finish and not tenant
                else _verifier(True, "rotate", _Online(tenant, cloud, authority_host, timeout)))
    try:
        result = (rotate.finish(_paths(ctx), say=_say_always) if finish else rotate.rotate(
            _paths(ctx), rotate.Options(years, end_date, retire_old, retire_key, not no_apply,
                                        wait, dry_run), verify=verifier, say=_say_always))
    except RotationFailed as exc:
        if as_json:
            click.echo(_json({**exc.result.as_dict(), "error": str(exc)}))
        raise
    _report(result, as_json)


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
def dnf5_hook_command(ctx, callback, action, nevra, pid,  # noqa: PLR0913, PLR0917
                      require, settings_file):
    """What dnf 5's actions plugin ran before onedesk-azuread-dnf5-hook (dnf5hook.main).

    Kept for an actions file edited under an earlier release: it is %config(noreplace), so
    an upgrade leaves its command lines as they were, and they must keep working.
    """
    from . import dnf5hook

    call = dnf5hook.Call(callback, _paths(ctx).root, action, nevra, pid, require, settings_file)
    click.echo(dnf5hook.run(call, say=_say), nl=False)


def main() -> None:
    streams.prepare()
    code = 0
    try:
        cli(prog_name="onedesk-azuread")
    except SystemExit as exc:  # click's standalone mode always ends here
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BrokenPipeError:  # a closed stdout (`| head`) is not an error worth a traceback
        code = EXIT_PROBLEM
    if not streams.flush_stdout() and code == 0:
        code = EXIT_PROBLEM  # the output that mattered was not written
    sys.exit(code)
