"""Generate onedesk-azuread(1) and the bash completion from the click commands (`make docs`).

    python -m tools.gen_docs          write docs/onedesk-azuread.1, completion/onedesk-azuread.bash
    python -m tools.gen_docs --check  exit 1, naming the stale files, when they differ

Both are committed so that the spec ships them without running Python at build time;
tests/test_docs.py regenerates them in memory and fails when the copies are stale.

The click command tree is read through its plain attributes only (names, opts, help,
metavar, type, choices, default, hidden) and everything is formatted here: nothing depends
on click's help formatter, its wrapping or its metavar rendering, all of which changed
between click 8.0.3 (EL 9's floor) and today's click (8.2 made `make_metavar` take a
context, 8.3 made defaults an UNSET sentinel, the help option's parameter name changed).
So the output is byte-identical on every click and Python the project supports.

The completion is a static bash script made from the same tree rather than click's own
`_ONEDESK_AZUREAD_COMPLETE=bash_source`: that would start Python and import the CLI on
every TAB (about 100 ms, as root, in the tool that takes locks), and its script text and
protocol differ between click versions; a static script answers in bash alone.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from collections import namedtuple

import click

from onedesk_azuread import (
    __version__,
    azcli,
    fsutil,
    journal,
    packages,
    paths,
    signals,
    state,
    verify,
)
from onedesk_azuread import cli as cli_module

PROG = "onedesk-azuread"
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAN_PAGE = "docs/onedesk-azuread.1"
COMPLETION = "completion/onedesk-azuread.bash"
SPEC = os.path.join(TOP, "specs/onedesk-azuread.spec")
FUNCTION = "_onedesk_azuread"
STALE = ("{files} differ from what the click commands give; run `make docs` and commit "
         "the result")
# Our own words for click's eager options, so no click version's phrasing leaks in.
HELP_TEXT = "Show the help of the command and exit."
VERSION_TEXT = "Print the version and exit."

Option = namedtuple("Option", "names metavar choices kind help default required")
# kind: "flag" (takes no value), "choice", "dir", "file" or "value" (anything else)
Argument = namedtuple("Argument", "metavar kind many required")
Command = namedtuple("Command", "path help options arguments subcommands")


# --- the click tree, as plain data ----------------------------------------------------------

def _paragraphs(text: str | None) -> list[str]:
    """Help text as paragraphs, each one line (roff and bash do their own filling)."""
    text = inspect.cleandoc(text or "").split("\f", 1)[0]
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _kind(param: click.Parameter, flag: bool) -> str:
    if flag:
        return "flag"
    if isinstance(param.type, click.Choice):
        return "choice"
    if isinstance(param.type, click.Path):
        return "file" if param.type.file_okay else "dir"
    return "value"


def _option(param: click.Option, ctx: click.Context) -> Option:
    flag = bool(param.is_flag or param.count)
    names = list(param.opts) + list(param.secondary_opts)
    if param.is_eager and not param.expose_value and set(names) & set(ctx.help_option_names):
        # click builds the help option's names from a set: their order changes with
        # PYTHONHASHSEED. Use the order the CLI gave them in.
        names = [name for name in ctx.help_option_names if name in names]
        text = HELP_TEXT
    elif param.is_eager and not param.expose_value and "--version" in names:
        text = VERSION_TEXT
    else:
        text = " ".join(_paragraphs(param.help))
    kind = _kind(param, flag)
    choices = tuple(getattr(c, "name", c) for c in param.type.choices) if kind == "choice" else ()
    metavar = None if flag or choices else (param.metavar or param.type.name.upper())
    default = param.default
    # Only a real value is a default: click 8.3+ says UNSET, a callable is computed later.
    shown = (None if flag or isinstance(default, bool) or not isinstance(default, (str, int, float))
             else str(default))
    return Option(tuple(names), metavar, choices, kind, text, shown, bool(param.required))


def _argument(param: click.Argument) -> Argument:
    return Argument(param.metavar or param.name.upper(), _kind(param, False), param.nargs == -1,
                    bool(param.required))


def command_tree(command: click.Command = cli_module.cli, path: tuple = (),
                 parent: click.Context | None = None) -> Command:
    """The visible commands under ``command`` (hidden ones and hidden options left out)."""
    # context_settings as click applies them (help_option_names: -h and --help).
    ctx = click.Context(command, info_name=path[-1] if path else PROG, parent=parent,
                        **(command.context_settings or {}))
    options, arguments = [], []
    for param in command.get_params(ctx):
        if isinstance(param, click.Argument):
            arguments.append(_argument(param))
        elif not getattr(param, "hidden", False):
            options.append(_option(param, ctx))
    subcommands = []
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                subcommands.append(command_tree(sub, path + (name,), ctx))
    return Command(path, _paragraphs(command.help), options, arguments, subcommands)


def walk(command: Command):
    yield command
    for sub in command.subcommands:
        yield from walk(sub)


# --- roff ---------------------------------------------------------------------------------

def roff(text: str) -> str:
    """Plain text as one roff text line: escapes, `code` in bold, no control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    return "\\&" + text if text[:1] in (".", "'") else text


def _bold(text: str) -> str:
    return f"\\fB{roff(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{roff(text)}\\fR"


def _value(option: Option) -> str:
    if option.choices:
        return "|".join(_bold(choice) for choice in option.choices)
    return _italic(option.metavar) if option.metavar else ""


def _usage(option: Option) -> str:
    value = _value(option)
    return _bold(option.names[0]) + (f" {value}" if value else "")


def _synopsis(command: Command) -> str:
    words = [_bold(PROG)]
    if command.path:
        words.append(f"[{_italic('global options')}]")
        words.extend(_bold(name) for name in command.path)
    for option in command.options:
        if option.help not in (HELP_TEXT, VERSION_TEXT):
            words.append(_usage(option) if option.required else f"[{_usage(option)}]")
    for argument in command.arguments:
        text = _italic(argument.metavar) + ("\\ .\\|.\\|." if argument.many else "")
        words.append(text if argument.required else f"[{text}]")
    if command.subcommands:
        words.append(_italic("command") + " [" + _italic("options") + "]")
    return " ".join(words)


def _options(command: Command) -> list[str]:
    lines = []
    for option in command.options:
        value = _value(option)
        tag = ", ".join(_bold(name) for name in option.names) + (f" {value}" if value else "")
        text = roff(option.help)
        if option.default is not None:
            text += f" Default: {_bold(option.default)}."
        lines += [".TP", tag, text]
    return lines


def _spec_date() -> str:
    """The newest %changelog entry's date, YYYY-MM-DD: the page changes with a release."""
    with open(SPEC, encoding="utf-8") as handle:
        for line in handle.read().split("%changelog", 1)[1].splitlines():
            found = re.match(r"\* \w{3} (\w{3}) +(\d{1,2}) (\d{4})", line)
            if found:
                month = "JanFebMarAprMayJunJulAugSepOctNovDec".index(found[1]) // 3 + 1
                return f"{found[3]}-{month:02d}-{int(found[2]):02d}"
    raise SystemExit(f"{SPEC}: no dated %changelog entry")


DESCRIPTION = (
    "OneDesk's install scripts read two entries from the root-owned shell file {file}: "
    "AZUREAD_CID (the Azure app's Application (client) ID) and AZUREAD_CIS (the client "
    "secret Value). {prog} writes them safely (atomically, under a lock, mode 0600, with a "
    "backup, keeping every other line), checks them the way bash reads them, can prove the "
    "pair with Azure AD, and reinstalls the OneDesk packages so they pick the entries up.",
    "The secret is never a command-line argument: it comes from standard input, a file "
    "or a hidden prompt, and it is printed only by `show --reveal`. Data goes to standard "
    "output, messages to standard error. Every error is one line naming the file, the line "
    "or the key and the fix; a refused write changes nothing on disk.",
    "`--root DIR` works like `rpm --root`: the settings file becomes DIR{file} and the "
    "state directory DIR{state}.",
)

EXIT_STATUS = (
    (0, "Success; for `check` and `status`, nothing is wrong."),
    (cli_module.EXIT_PROBLEM,
     "A problem was found or an operation failed: `check` found an error (or Azure AD "
     "refused the pair), `status` is not valid and in sync or an `apply` is unfinished, a "
     "write was refused, a step of `apply` failed."),
    (click.UsageError.exit_code,
     "Usage error: an unknown option, a bad value, options that do not go together."),
    (verify.EXIT_CODES[verify.UNVERIFIED],
     "`check --online` (or `set --verify`) could not ask Azure AD: network, TLS, timeout or "
     "an HTTP 5xx answer."),
    ("128+N", "`apply` received signal N ({signals}): before the removal it stopped with "
     "nothing changed; from the removal on it finished the job first."),
)


def _files() -> tuple:
    state_dir = paths.STATE_DIR
    return (
        (paths.DEFAULT_FILE, "The settings file OneDesk's install scripts source: AZUREAD_CID "
         "and AZUREAD_CIS, mode 0600, owned by root. The previous version is kept beside it "
         "as .bak."),
        (state_dir, "The tool's state, mode 0700, root only. No file in it holds the secret."),
        (f"{state_dir}/{state.EXPIRY_FILE}", "The secret's expiry date (`set --expires`)."),
        (f"{state_dir}/{state.APPLIED_FILE}", "What the OneDesk packages were installed with "
         "(a salted HMAC of the pair, never the pair), for `status`."),
        (f"{state_dir}/{journal.JOURNAL_FILE}", "An unfinished `apply`'s journal; "
         "`apply` completes it."),
        (f"{state_dir}/{state.LOCK_FILE}", "The write lock, taken by every writer and by the "
         "dnf plugin."),
        (f"{state_dir}/{journal.LOCK_FILE}", "Held by a running `apply` and the dnf it started."),
        ("/etc/onedesk-azuread/check.conf", "The scheduled check's settings (`check "
         "--scheduled`, run daily by onedesk-azuread-check.timer): tenant, cloud, "
         "authority_host, timeout, metrics."),
        ("/etc/dnf/plugins/onedesk_azuread.conf", "The dnf 4 plugin's configuration: enabled, "
         "packages (the trigger packages), require, file."),
        ("/etc/dnf/libdnf5-plugins/actions.d/onedesk_azuread.actions", "dnf 5's actions: the "
         "dnf 4 plugin's checks for dnf 5 (package onedesk-azuread-dnf5)."),
    )


def _environment() -> tuple:
    ca = verify.CA_BUNDLE_VARIABLES
    return (
        (fsutil.LOCK_TIMEOUT_ENV, f"How many seconds to wait for the lock (0 to 3600; "
         f"default {fsutil.DEFAULT_LOCK_TIMEOUT:g}) before giving up with nothing changed."),
        (packages.DNF_ENV, "The dnf command `status` and `apply` run, split as a shell would "
         "(default: dnf), for example `dnf -c /path/dnf.conf --releasever=9`."),
        (azcli.AZ_ENV, "The Azure CLI command `rotate` runs, split as a shell would "
         "(default: az)."),
        (", ".join(ca), f"The CA bundle the online check verifies Azure AD's certificate with: "
         f"the first of {', '.join(ca)} that is set and not empty; else the one requests "
         f"ships with."),
    )


EXAMPLES = (
    ("Print what to register in Azure for this server:",
     "onedesk-azuread app-registration --url https://helpdesk.example.com"),
    ("Set both entries, asking for the secret without echo, and record its expiry:",
     "onedesk-azuread set --client-id 0b5c3a1e-7d2f-4c8a-9e61-3f4d2b1a0c9e \\\n"
     "    --secret-prompt --expires 2028-05-31"),
    ("Make a new secret with the Azure CLI and pipe it in, so it is never shown or put on a "
     "command line (--append keeps the app's other secrets):",
     "az ad app credential reset --id \"$APP_ID\" --append --end-date 2028-05-31 \\\n"
     "    --query password --output tsv |\n"
     "  onedesk-azuread set --secret-stdin --expires 2028-05-31"),
    ("Validate the entries, then prove the pair with Azure AD:",
     "onedesk-azuread check\nonedesk-azuread check --online --tenant contoso.onmicrosoft.com"),
    ("Reinstall the OneDesk packages so they read the entries, then confirm:",
     "onedesk-azuread apply\nonedesk-azuread status"),
    ("Replace the secret in one step with the Azure CLI (after az login), and retire the old "
     "one once the packages use the new one:",
     "onedesk-azuread rotate --tenant contoso.onmicrosoft.com --retire-old"),
)

SEE_ALSO = (("bash", 1), ("dnf", 8), ("dnf5", 8), ("rpm", 8), ("systemd.timer", 5))


def man_page(tree: Command | None = None) -> str:
    tree = tree or command_tree()
    facts = {"file": paths.DEFAULT_FILE, "state": paths.STATE_DIR, "prog": PROG}
    summary = tree.help[0].rstrip(".") if tree.help else PROG
    lines = [
        f'.\\" {PROG}(1): generated by tools/gen_docs.py from the click commands in',
        '.\\" onedesk_azuread/cli.py. Do not edit: change the commands, then run `make docs`.',
        f'.TH {roff(PROG.upper())} 1 {_spec_date()} "{roff(PROG)} {__version__}" '
        f'"User Commands"',
        ".SH NAME",
        f"{roff(PROG)} \\- {roff(summary[:1].lower() + summary[1:])}",
        ".SH SYNOPSIS",
        ".nh",
        ".ad l",
    ]
    for number, command in enumerate(walk(tree)):
        lines += ([] if number == 0 else [".PP"]) + [_synopsis(command)]
    lines += [".PP", f"{_bold(PROG)} {_bold('--version')}", ".ad", ".hy", ".SH DESCRIPTION"]
    for number, paragraph in enumerate(DESCRIPTION):
        lines += ([] if number == 0 else [".PP"]) + [roff(paragraph.format(**facts))]
    lines += [".SH OPTIONS", "These global options come before the command.", *_options(tree)]
    lines.append(".SH COMMANDS")
    for command in walk(tree):
        if not command.path:
            continue
        lines += [".SS " + roff(" ".join(command.path))]
        for number, paragraph in enumerate(command.help):
            lines += ([] if number == 0 else [".PP"]) + [roff(paragraph)]
        lines += _options(command)
    lines.append(".SH EXIT STATUS")
    held = ", ".join(f"{128 + number} for {signals.name(number)}"
                     for number in sorted(signals.HELD))
    for code, text in EXIT_STATUS:
        lines += [".TP", _bold(str(code)), roff(text.format(signals=held))]
    lines.append(".SH FILES")
    for path, text in _files():
        lines += [".TP", _italic(path), roff(text)]
    lines.append(".SH ENVIRONMENT")
    for name, text in _environment():
        lines += [".TP", _bold(name), roff(text)]
    lines.append(".SH EXAMPLES")
    for number, (text, commands) in enumerate(EXAMPLES):
        lines += ([] if number == 0 else [".PP"]) + [roff(text), ".PP", ".RS 4", ".nf"]
        lines += [roff(line) for line in commands.split("\n")] + [".fi", ".RE"]
    lines.append(".SH SEE ALSO")
    lines.append(",\n".join(f".BR {roff(name)} ({section})" for name, section in SEE_ALSO))
    return "\n".join(lines) + "\n"


# --- bash ---------------------------------------------------------------------------------

def _key(command: Command, word: str = "") -> str:
    return "'" + " ".join(command.path) + ":" + word + "'"


def _arms(pairs: list, indent: str = "        ") -> list[str]:
    """case arms: (patterns, body) with the patterns joined by |."""
    return [f"{indent}{'|'.join(patterns)}) {body} ;;" for patterns, body in pairs if patterns]


def bash_completion(tree: Command | None = None) -> str:
    tree = tree or command_tree()
    commands = list(walk(tree))
    takes_value, subcommand_keys, by_kind, choices, words = [], [], {}, {}, []
    for command in commands:
        for option in command.options:
            if option.kind == "flag":
                continue
            keys = [_key(command, name) for name in option.names]
            takes_value += keys
            if option.kind == "choice":
                choices.setdefault(" ".join(option.choices), []).extend(keys)
            else:
                by_kind.setdefault(option.kind, []).extend(keys)
        subcommand_keys += [_key(command, sub.path[-1]) for sub in command.subcommands]
        names = " ".join(name for option in command.options for name in option.names)
        subs = " ".join(sub.path[-1] for sub in command.subcommands)
        args = {argument.kind for argument in command.arguments}
        arg = "file" if args & {"file", "dir"} else ("value" if args else "")
        words.append(("'" + " ".join(command.path) + "'",
                      f"opts='{names}' subs='{subs}' args={arg}"))
    value_arms = [
        (by_kind.get("dir", []), '_onedesk_azuread_paths -d; return'),
        (by_kind.get("file", []), '_onedesk_azuread_paths -f; return'),
        *[(keys, f"_onedesk_azuread_words '{values}'; return")
          for values, keys in choices.items()],
        (by_kind.get("value", []), "return"),
    ]
    lines = [
        f"# bash completion for {PROG}(1).",
        "# Generated by tools/gen_docs.py from the click commands in onedesk_azuread/cli.py.",
        "# Do not edit: change the commands, then run `make docs`.",
        "# Static on purpose: TAB costs no Python start and never runs the tool.",
        "",
        "# The words of $1 that start with $cur: bash alone, no fork.",
        "_onedesk_azuread_words()",
        "{",
        "    local word",
        "    for word in $1; do",
        '        [[ $word == "$cur"* ]] && COMPREPLY+=("$word")',
        "    done",
        "}",
        "",
        "# Files (-f) or directories (-d) starting with $cur, one per line: names may hold spaces.",
        "_onedesk_azuread_paths()",
        "{",
        "    local found",
        "    compopt -o filenames 2>/dev/null",
        '    found=$(compgen "$1" -- "$cur") && mapfile -t COMPREPLY <<<"$found"',
        "}",
        "",
        f"{FUNCTION}()",
        "{",
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev= path= word= value= i opts subs args",
        "    COMPREPLY=()",
        "    # bash splits --option=value at the = (COMP_WORDBREAKS): --option, =, value.",
        "    if [[ $cur == = ]]; then",
        "        cur=",
        "        prev=${COMP_WORDS[COMP_CWORD-1]}",
        "    elif ((COMP_CWORD >= 2)) && [[ ${COMP_WORDS[COMP_CWORD-1]} == = ]]; then",
        "        prev=${COMP_WORDS[COMP_CWORD-2]}",
        "    elif ((COMP_CWORD >= 1)); then",
        "        prev=${COMP_WORDS[COMP_CWORD-1]}",
        "    fi",
        "    # Which command the words before the cursor name; options' values are skipped.",
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        "        word=${COMP_WORDS[i]}",
        "        if [[ $word == = ]]; then value=1; continue; fi",
        "        if [[ -n $value ]]; then value=; continue; fi",
        '        case "$path:$word" in',
        *_arms([(takes_value, "value=1"), (subcommand_keys, 'path=${path:+$path }$word')],
               "            "),
        "        esac",
        "    done",
        "    # The value of an option.",
        '    case "$path:$prev" in',
        *_arms(value_arms),
        "    esac",
        "    case $path in",
        *_arms([([pattern], body) for pattern, body in words]),
        "        *) return ;;",
        "    esac",
        "    if [[ $cur == -* || ( -z $subs && -z $args ) ]]; then",
        '        _onedesk_azuread_words "$opts"',
        "    elif [[ -n $subs ]]; then",
        '        _onedesk_azuread_words "$subs"',
        "    elif [[ $args == file ]]; then",
        "        _onedesk_azuread_paths -f",
        "    fi",
        "}",
        "",
        f"complete -F {FUNCTION} {PROG}",
    ]
    return "\n".join(lines) + "\n"


# --- make docs ----------------------------------------------------------------------------

def outputs() -> dict:
    tree = command_tree()
    return {MAN_PAGE: man_page(tree), COMPLETION: bash_completion(tree)}


def stale(top: str = TOP) -> list[str]:
    """The committed copies that differ from what the click commands give now."""
    found = []
    for relative, text in outputs().items():
        try:
            with open(os.path.join(top, relative), encoding="utf-8", newline="") as handle:
                current = handle.read()
        except OSError:
            current = None
        if current != text:
            found.append(relative)
    return found


def main(argv: list[str], top: str = TOP) -> int:
    if argv[1:] == ["--check"]:
        found = stale(top)
        if found:
            print(STALE.format(files=", ".join(found)), file=sys.stderr)
        return 1 if found else 0
    if argv[1:]:
        print(f"usage: {argv[0]} [--check]", file=sys.stderr)
        return 2
    for relative, text in outputs().items():
        target = os.path.join(top, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".tmp", "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(target + ".tmp", target)
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
