#!/usr/bin/env python3
"""A stand-in for the Azure CLI's `az ad app credential list|reset|delete`.

It reproduces what azure-cli's role module (command_modules/role/custom.py) prints
and its exit codes, over a JSON state file ($FAKE_AZ_STATE) that tests/fake_azure.py
reads too, so the fake authority accepts exactly the secrets "Azure" holds:

- list: the app's passwordCredentials as Microsoft Graph returns them
  (customKeyIdentifier, displayName, endDateTime, hint, keyId, secretText null,
  startDateTime), `-o json` indented by 2;
- reset: adds a password (startDateTime now, endDateTime now + --years, or `--end-date D`
  as DT00:00:00Z: D is the first day it no longer works, as az 2.91 sends it), deleting all
  others unless --append (as az does), prints
  {"appId", "password", "tenant"} and the credential warning on stderr;
- delete: removes the key, prints nothing;
- not logged in: "ERROR: Please run 'az login' to setup account." exit 1;
- an unknown app: Graph's Request_ResourceNotFound message, exit 1 (as az 2.91's
  `credential list|reset|delete`; only `az ad app show` exits 3).

Each call is appended to $FAKE_AZ_LOG (argv and environment), so tests can show that
no secret was ever handed to az. `fail` in the state injects errors per command (with
`added_by`, a failed reset adds another server's secret instead of ours: a fleet's rotation
that ran meanwhile); `hang` makes a command sleep that many seconds (reset: after adding,
delete: before deleting), so a test can kill the rotate that waits for it.
Python 3.9 compatible: the Debian 11 stage runs it too.
"""

import json
import os
import secrets
import string
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

CREDENTIAL_WARNING = (
    "The output includes credentials that you must protect. Be sure that you do not include "
    "these credentials in your code or check the credentials into your source control. For "
    "more information, see https://aka.ms/azadsp-cli")
NOT_LOGGED_IN = "Please run 'az login' to setup account."
NOT_FOUND = ("Resource '{id}' does not exist or one of its queried reference-property objects "
             "are not present.")
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
_SECRET_CHARS = string.ascii_letters + string.digits + "_~.-"


def utc(moment):
    """Graph's format as az sends it (seconds, Z)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_secret():
    """A secret in Azure's current format: 3 characters, a digit, Q~, 34 characters."""
    head = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(3))
    tail = "".join(secrets.choice(_SECRET_CHARS) for _ in range(34))
    return f"{head}{secrets.choice(string.digits)}Q~{tail}"


def credential(value, start, end, display_name=None, key_id=None):
    return {"customKeyIdentifier": None, "displayName": display_name,
            "endDateTime": end, "hint": value[:3], "keyId": key_id or str(uuid.uuid4()),
            "secretText": None, "startDateTime": start}


def make_state(path, app_id, existing=(), delay=2.0, logged_in=True):
    """A state file: ``existing`` are (value, startDateTime, endDateTime, displayName)."""
    state = {"logged_in": logged_in, "tenant": TENANT, "propagation_seconds": delay,
             "apps": {app_id: {"id": str(uuid.uuid4()), "passwordCredentials": []}},
             "values": {}, "created": {}, "fail": {}}
    for value, start, end, name in existing:
        entry = credential(value, start, end, name)
        state["apps"][app_id]["passwordCredentials"].append(entry)
        state["values"][entry["keyId"]] = value
        state["created"][entry["keyId"]] = 0  # long propagated
    save(path, state)
    return state


def load(path):
    with open(path) as handle:
        return json.load(handle)


def save(path, state):
    temp = f"{path}.{os.getpid()}.tmp"
    with open(temp, "w") as handle:
        json.dump(state, handle, indent=2)
    os.replace(temp, path)


def accepted(path, app_id, secret, now=None):
    """Whether "Azure AD" accepts this pair now: an existing, propagated, unexpired secret."""
    state = load(path)
    now = time.time() if now is None else now
    app = state["apps"].get(app_id)
    if app is None:
        return False
    for entry in app["passwordCredentials"]:
        key = entry["keyId"]
        if state["values"].get(key) != secret:
            continue
        end = datetime.strptime(entry["endDateTime"][:19], "%Y-%m-%dT%H:%M:%S")
        if end.replace(tzinfo=timezone.utc).timestamp() <= now:
            return False
        return now >= state["created"].get(key, 0) + state["propagation_seconds"]
    return False


def fail(message, code=1):
    sys.stderr.write(f"ERROR: {message}\n")
    sys.exit(code)


def option(args, name):
    if name in args:
        index = args.index(name)
        if index + 1 < len(args):
            return args[index + 1]
    return None


def main(argv):
    path = os.environ["FAKE_AZ_STATE"]
    log = os.environ.get("FAKE_AZ_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(json.dumps({"argv": argv, "env": dict(os.environ)}) + "\n")
    state = load(path)
    if argv[:3] != ["ad", "app", "credential"] or len(argv) < 4:
        fail(f"'{' '.join(argv)}' is not in the 'az' command group of this stand-in", 2)
    verb = argv[3]
    injected = state["fail"].get(verb)
    if injected and injected.get("skip", 0) > 0:
        injected["skip"] -= 1
        save(path, state)
        injected = None
    if not state["logged_in"]:
        fail(NOT_LOGGED_IN)
    app_id = option(argv, "--id")
    app = state["apps"].get(app_id)
    if injected and not injected.get("after_add"):
        fail(injected["message"], injected.get("code", 1))
    if app is None:
        fail(NOT_FOUND.format(id=app_id))
    if verb == "list":
        print(json.dumps(app["passwordCredentials"], indent=2))
        return 0
    if verb == "reset":
        years, end_date = option(argv, "--years"), option(argv, "--end-date")
        if years and end_date:
            fail("usage error: --years | --end-date")
        start = datetime.now(timezone.utc)
        if end_date:
            end = datetime.strptime(end_date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        else:
            count = int(years or 1)
            try:
                end = start.replace(year=start.year + count)
            except ValueError:
                end = start.replace(year=start.year + count, day=28)
        if "--append" not in argv:  # what az does: every other secret goes
            for entry in app["passwordCredentials"]:
                state["values"].pop(entry["keyId"], None)
            app["passwordCredentials"] = []
        value = new_secret()
        name = option(argv, "--display-name")
        if injected and injected.get("added_by"):
            name = injected["added_by"]
        entry = credential(value, utc(start), utc(end), name)
        app["passwordCredentials"].append(entry)
        state["values"][entry["keyId"]] = value
        state["created"][entry["keyId"]] = time.time()
        save(path, state)
        time.sleep(state.get("hang", {}).get("reset", 0))
        if injected:  # Graph added it, then the answer was lost
            fail(injected["message"], injected.get("code", 1))
        sys.stderr.write(f"WARNING: {CREDENTIAL_WARNING}\n")
        print(json.dumps({"appId": app_id, "password": value, "tenant": state["tenant"]},
                         indent=2))
        return 0
    if verb == "delete":
        time.sleep(state.get("hang", {}).get("delete", 0))
        state = load(path)
        app = state["apps"][app_id]
        key = option(argv, "--key-id")
        before = len(app["passwordCredentials"])
        app["passwordCredentials"] = [e for e in app["passwordCredentials"]
                                      if e["keyId"] != key]
        if len(app["passwordCredentials"]) == before:
            fail(f"No password credential found with keyId as '{key}' in graph object "
                 f"'{app['id']}'.")
        state["values"].pop(key, None)
        save(path, state)
        return 0
    fail(f"'{verb}' is misspelled or not recognized by the system.", 2)
    return 2


def stale_start(days_ago=300):
    """A start time as the portal writes it (fractional seconds), ``days_ago`` days back."""
    moment = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "1234567Z"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
