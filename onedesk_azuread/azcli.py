"""The Azure CLI (`az`) calls `rotate` makes: list, reset (always --append) and delete a
client secret of one app registration. The only place the library runs `az`.

The new secret arrives on `az`'s stdout (a pipe) and is parsed here; it is never an
argument, never printed and never logged. `az` gets an environment without the
settings file's entries, so it never holds our secret.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple

from . import KEYS
from .errors import AzError

AZ_ENV = "ONEDESK_AZUREAD_AZ"
DISPLAY_PREFIX = "onedesk-azuread"  # a new secret's display name: PREFIX HOST YYYY-MM-DD
# az talks to Microsoft Graph; a hung network must not hang rotate for ever.
AZ_TIMEOUT = 120.0

NOT_FOUND = ("the Azure CLI ({command}) was not found{where}")
UNSPLITTABLE = "${name}={value!r} cannot be split like a shell would ({why}); fix or unset it"
NOT_LOGGED_IN = ("the Azure CLI is not logged in ({detail}): run `az login` with an account "
                 "allowed to manage the app's secrets, then run onedesk-azuread rotate again")
FAILED = "`az {what}` failed (exit {code}): {detail}"
TIMED_OUT = "`az {what}` did not finish within {seconds:g} s"
BAD_OUTPUT = "`az {what}` printed something that is not the JSON the Azure CLI prints ({why})"


class Credential(NamedTuple):
    """One entry of an app's passwordCredentials (as `az ad app credential list` prints it)."""

    key_id: str  # the Secret ID (a GUID)
    hint: str | None  # the secret's first 3 characters
    display_name: str | None
    start: datetime | None  # startDateTime (UTC)
    end: datetime | None  # endDateTime (UTC)

    @property
    def last_day(self) -> date | None:
        """The last UTC day on which the secret works: the day of the last moment before
        endDateTime. `az ... --end-date D` ends it at DT00:00:00Z, so its last day is D-1;
        `--years N` ends it later in a day, which it still works part of."""
        return (self.end - timedelta(microseconds=1)).date() if self.end else None

    def ends_on(self, day: date) -> bool:
        """Is ``day`` its recorded expiry? The last day, or (records written before the last
        day was recorded) endDateTime's own date."""
        return self.end is not None and day in (self.last_day, self.end.date())

    @property
    def host(self) -> str | None:
        """The server named in the display name rotate gives (`onedesk-azuread HOST DATE`)."""
        words = (self.display_name or "").split(" ")
        if len(words) == 3 and words[0] == DISPLAY_PREFIX and words[1]:
            return words[1]
        return None


# Graph writes "2028-12-02T00:37:39Z" or with 1 to 7 fractional digits; Python 3.9's
# fromisoformat takes neither "Z" nor 7 digits.
_GRAPH_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
                         r"(Z|[+-]\d{2}:?\d{2})?")


def parse_time(text: object) -> datetime | None:
    """A Graph timestamp as an aware UTC datetime; None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    found = _GRAPH_TIME.fullmatch(text.strip())
    if not found:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    micro = int((found.group(7) or "0")[:6].ljust(6, "0"))
    zone = found.group(8) or "Z"
    offset = timedelta(0)
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        offset = -offset if zone[0] == "-" else offset
    try:
        moment = datetime(year, month, day, hour, minute, second, micro,
                          tzinfo=timezone(offset))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc)


def parse_credentials(data: object, what: str) -> list[Credential]:
    """`az ad app credential list -o json`'s output: a JSON array of passwordCredentials."""
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise AzError(BAD_OUTPUT.format(what=what, why="not a list of credentials"))
    found = []
    for item in data:
        key_id = item.get("keyId")
        if not isinstance(key_id, str) or not key_id:
            raise AzError(BAD_OUTPUT.format(what=what, why="a credential without a keyId"))
        hint = item.get("hint")
        name = item.get("displayName")
        found.append(Credential(key_id, hint if isinstance(hint, str) else None,
                                name if isinstance(name, str) else None,
                                parse_time(item.get("startDateTime")),
                                parse_time(item.get("endDateTime"))))
    return found


class Shell(str):
    """A word written for the shell as it stands (a variable, a command substitution), which
    `shell_line` does not quote."""

    __slots__ = ()


def reset_args(client_id: str, display_name: str, *, years: int | None = None,
               end_date: date | str | None = None, password_only: bool = False) -> list[str]:
    """`az`'s arguments to add a secret: what rotate runs (az's JSON answer), and, with
    ``password_only``, what an administrator pipes into `set --secret-stdin`. Always
    --append: without it az deletes every other secret of the app."""
    args = ["ad", "app", "credential", "reset", "--id", client_id, "--append",
            "--display-name", display_name]
    if end_date is not None:
        args += ["--end-date", end_date if isinstance(end_date, str) else end_date.isoformat()]
    else:
        args += ["--years", str(years or 1)]
    return [*args, *(["--query", "password", "-o", "tsv"] if password_only else ["-o", "json"])]


def shell_line(argv: list[str], breaks: tuple[str, ...] = ()) -> str:
    """``argv`` as a shell command line: each word quoted unless it is a `Shell` word; a
    continued line before each word in ``breaks``."""
    words = [word if isinstance(word, Shell) else shlex.quote(word) for word in argv]
    return " ".join(f"\\\n  {word}" if word in breaks and n else word
                    for n, word in enumerate(words))


def command() -> list[str] | None:
    """The az command line: $ONEDESK_AZUREAD_AZ (split like a shell would) or `az` on PATH;
    None when there is none."""
    configured = os.environ.get(AZ_ENV, "").strip()
    try:
        argv = shlex.split(configured) if configured else ["az"]
    except ValueError as exc:  # an unclosed quote
        raise AzError(UNSPLITTABLE.format(name=AZ_ENV, value=configured, why=exc)) from None
    if not argv:
        return None
    program = shutil.which(argv[0])
    if program is None:
        return None
    return [program, *argv[1:]]


def missing() -> str:
    """Why there is no az, for the one-line error."""
    configured = os.environ.get(AZ_ENV, "").strip()
    if configured:
        return NOT_FOUND.format(command=configured, where=f" (${AZ_ENV})")
    return NOT_FOUND.format(command="az", where=" on PATH")


def _environment(secrets: tuple[str, ...]) -> dict[str, str]:
    """Ours, less the settings file's entries (a stale export) and anything holding a secret."""
    return {name: value for name, value in os.environ.items()
            if name not in KEYS and not any(s and s in value for s in secrets)}


def _detail(stderr: str, secrets: tuple[str, ...]) -> str:
    """az's error in one line: its first `ERROR:` line, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line[len("ERROR:"):].strip() for line in lines if line.startswith("ERROR:")]
    text = (errors or lines or ["no message"])[0 if errors else -1]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "…")
    return text


class Az:
    """Runs az for one app registration (``client_id``)."""

    def __init__(self, argv: list[str], client_id: str, secrets: tuple[str, ...] = ()):
        self.argv = argv
        self.client_id = client_id
        self.secrets = secrets  # never handed to az, never in a message

    def _run(self, what: str, args: list[str]) -> str:
        try:
            proc = subprocess.run([*self.argv, *args], stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, encoding="utf-8",
                                  errors="replace", env=_environment(self.secrets),
                                  timeout=AZ_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise AzError(TIMED_OUT.format(what=what, seconds=AZ_TIMEOUT)) from None
        except OSError as exc:
            raise AzError(FAILED.format(what=what, code="-", detail=exc.strerror)) from None
        if proc.returncode != 0:
            detail = _detail(proc.stderr, self.secrets)
            if "az login" in detail:
                raise AzError(NOT_LOGGED_IN.format(detail=detail), not_logged_in=True)
            raise AzError(FAILED.format(what=what, code=proc.returncode, detail=detail))
        return proc.stdout

    def _json(self, what: str, args: list[str]):
        out = self._run(what, args)
        try:
            return json.loads(out)
        except ValueError:
            raise AzError(BAD_OUTPUT.format(what=what, why="not JSON")) from None

    def list(self) -> list[Credential]:
        what = f"ad app credential list --id {self.client_id}"
        return parse_credentials(self._json(what, ["ad", "app", "credential", "list", "--id",
                                                   self.client_id, "-o", "json"]), what)

    def reset_args(self, display_name: str, years: int | None,
                   end_date: date | None) -> list[str]:
        return reset_args(self.client_id, display_name, years=years, end_date=end_date)

    def reset(self, display_name: str, years: int | None, end_date: date | None) -> str:
        """Add a secret; return its value, read from az's stdout (never shown)."""
        args = self.reset_args(display_name, years, end_date)
        what = f"ad app credential reset --id {self.client_id} --append"
        answer = self._json(what, args)
        password = answer.get("password") if isinstance(answer, dict) else None
        if not isinstance(password, str) or not password:
            raise AzError(BAD_OUTPUT.format(what=what, why="no password in it"))
        return password

    def delete(self, key_id: str) -> None:
        what = f"ad app credential delete --id {self.client_id} --key-id {key_id}"
        self._run(what, ["ad", "app", "credential", "delete", "--id", self.client_id,
                         "--key-id", key_id])

    def delete_command(self, key_id: str) -> str:
        """What an administrator runs to remove one secret (for messages)."""
        return f"az ad app credential delete --id {self.client_id} --key-id {key_id}"
