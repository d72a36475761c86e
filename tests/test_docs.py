"""The man page and the bash completion: generated from the click commands, committed, valid.

The generator is tools/gen_docs.py (`make docs`). These tests regenerate both in memory
and compare with the committed copies, lint the man page with groff and mandoc, and drive
the completion function in a real bash the way bash's programmable completion calls it.
"""

import os
import re
import subprocess

import pytest

from onedesk_azuread import cli as cli_module
from tools import gen_docs

HERE = gen_docs.TOP
MAN = os.path.join(HERE, gen_docs.MAN_PAGE)
COMPLETION = os.path.join(HERE, gen_docs.COMPLETION)


def read(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def rendered(path=MAN):
    """The page as a reader sees it: groff's plain-text output, no overstriking.

    The tests match paragraphs indented 7 columns, as every groff before 1.24 puts them;
    1.24 (Debian sid) indents them 5 unless its new BP register says otherwise, and older
    groffs ignore the register."""
    result = subprocess.run(["groff", "-man", "-rBP=7n", "-Tutf8", "-P", "-cbou", path],
                            capture_output=True, text=True, check=True,
                            env=dict(os.environ, LC_ALL="C.UTF-8"))
    # groff shows \- as U+2212 in UTF-8 and hyphenates at line ends: undo both for searching.
    text = result.stdout.replace("\u2212", "-").replace("\u2010", "-")
    return re.sub(r"-\n\s+", "-", re.sub(r"\u2010\n\s+", "", text))


# --- staleness ----------------------------------------------------------------------------

@pytest.mark.parametrize("relative", [gen_docs.MAN_PAGE, gen_docs.COMPLETION])
def test_committed_copies_are_what_the_click_commands_give(relative):
    fresh = gen_docs.outputs()[relative]
    assert read(os.path.join(HERE, relative)) == fresh, gen_docs.STALE.format(files=relative)


def test_the_check_mode_names_a_stale_copy_and_the_fix(tmp_path, capsys):
    for relative, text in gen_docs.outputs().items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text, encoding="utf-8")
    assert gen_docs.stale(str(tmp_path)) == []
    (tmp_path / gen_docs.COMPLETION).write_text("# edited by hand\n", encoding="utf-8")
    assert gen_docs.stale(str(tmp_path)) == [gen_docs.COMPLETION]
    assert gen_docs.main(["gen_docs", "--check"], str(tmp_path)) == 1
    assert "run `make docs`" in capsys.readouterr().err


def test_every_visible_command_and_option_is_documented_and_hidden_ones_are_not():
    text = rendered()
    tree = gen_docs.command_tree()
    commands = [c for c in gen_docs.walk(tree) if c.path]
    assert {" ".join(c.path) for c in commands} >= {"set", "unset", "show", "check", "status",
                                                     "apply", "app-registration"}
    section = "\n" + text.split("\nCOMMANDS\n", 1)[1].split("\nEXIT STATUS\n", 1)[0]
    for command in commands:
        name = " ".join(command.path)
        assert re.search(rf"^   {re.escape(name)}$", section, re.M), name
        body = re.split(r"\n   (?=\S)", section.split(f"\n   {name}\n", 1)[1], maxsplit=1)[0]
        for option in command.options:
            for flag in option.names:
                assert flag in body, (name, flag)
    assert "dnf5-hook" not in read(MAN) and "dnf5-hook" not in read(COMPLETION)
    assert "--cloud public|usgov|china" in section and "Default: public." in section


def test_the_man_page_has_its_sections_exit_codes_files_and_environment():
    text = rendered()
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS",
                    "FILES", "ENVIRONMENT", "EXAMPLES", "SEE ALSO"):
        assert re.search(rf"^{heading}$", text, re.M), heading
    status = text.split("\nEXIT STATUS\n", 1)[1].split("\nFILES\n", 1)[0]
    assert re.findall(r"^       (\d\S*)\s", status, re.M) == ["0", "1", "2", "3", "128+N"]
    assert "130 for SIGINT" in status
    files = text.split("\nFILES\n", 1)[1].split("\nENVIRONMENT\n", 1)[0]
    for path in ("/root/.OneDesk", "/var/lib/onedesk-azuread", "/etc/onedesk-azuread/check.conf",
                 "/etc/dnf/plugins/onedesk_azuread.conf"):
        assert re.search(rf"^       {re.escape(path)}$", files, re.M), path
    assert text.startswith("ONEDESK-AZUREAD(1)")


def test_every_environment_variable_the_package_reads_is_documented():
    """A new ONEDESK_AZUREAD_* variable in the code fails here until the page names it."""
    used = set()
    for directory in ("onedesk_azuread", "dnf-plugin"):
        for name in sorted(os.listdir(os.path.join(HERE, directory))):
            if name.endswith(".py"):
                used |= set(re.findall(r"ONEDESK_AZUREAD_[A-Z_]*[A-Z]",
                                       read(os.path.join(HERE, directory, name))))
    assert used >= {"ONEDESK_AZUREAD_LOCK_TIMEOUT", "ONEDESK_AZUREAD_DNF"}
    environment = rendered().split("\nENVIRONMENT\n", 1)[1].split("\nEXAMPLES\n", 1)[0]
    documented = set(re.findall(r"^       (ONEDESK_AZUREAD_\w+)$", environment, re.M))
    assert documented == used, "add the variable to _environment() in tools/gen_docs.py"
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        assert name in environment


# --- the roff is valid --------------------------------------------------------------------

def test_groff_finds_nothing_to_warn_about():
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", MAN],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stderr) == (0, "")


def test_mandoc_lint_finds_no_warning_or_error():
    result = subprocess.run(["mandoc", "-Tlint", "-W", "warning", MAN],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_lints_fail_on_broken_roff(tmp_path):
    """The two checks above can fail: a page with a bad request and a bad escape."""
    broken = tmp_path / "broken.1"
    broken.write_text(read(MAN).replace(".SH FILES", ".SH FILES\n.XYZ\n\\q"), encoding="utf-8")
    groff = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(broken)],
                           capture_output=True, text=True, check=False)
    mandoc = subprocess.run(["mandoc", "-Tlint", "-W", "warning", str(broken)],
                            capture_output=True, text=True, check=False)
    assert groff.stderr and mandoc.returncode != 0


def test_roff_escapes_what_roff_would_read_as_markup():
    assert gen_docs.roff(".hidden") == "\\&.hidden"
    assert gen_docs.roff("'quoted") == "\\&'quoted"
    assert gen_docs.roff("a\\b -x `c`") == "a\\eb \\-x \\fBc\\fR"
    assert gen_docs.roff("\u2026") == "\\[u2026]"


# --- the completion in real bash ----------------------------------------------------------

def complete(*words, cwd=None, script=COMPLETION):
    """COMPREPLY for the command line `words`, the last word being the one at the cursor."""
    code = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
              'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; '
              'complete -p onedesk-azuread >/dev/null || exit 9; '
              '_onedesk_azuread onedesk-azuread "${COMP_WORDS[COMP_CWORD]}" '
              '"${COMP_WORDS[COMP_CWORD-1]}"; printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", code, "bash", script,
                             "onedesk-azuread", *words], capture_output=True, text=True,
                            check=False, cwd=cwd, env={"PATH": os.environ["PATH"]})
    assert (result.returncode, result.stderr) == (0, "")
    return sorted(line for line in result.stdout.split("\n") if line)


def test_completion_of_a_command_name_prefix():
    assert complete("st") == ["status"]
    assert complete("s") == ["set", "show", "status"]
    visible = sorted(name for name, command in cli_module.cli.commands.items()
                     if not command.hidden)
    assert "dnf5-hook" not in visible and {"apply", "check", "set"} <= set(visible)
    assert complete("") == visible
    assert complete("dnf") == []  # hidden


def test_completion_of_an_option_of_check():
    assert complete("check", "--o") == ["--online"]
    check = next(c for c in gen_docs.command_tree().subcommands if c.path == ("check",))
    assert complete("check", "-") == sorted(n for o in check.options for n in o.names)
    # after the global options and their values too
    assert complete("--root", "/tmp/r", "--file", "f", "check", "--js") == ["--json"]
    assert complete("--r") == ["--root"]


def test_completion_of_a_cloud_choice():
    assert complete("check", "--cloud", "") == ["china", "public", "usgov"]
    assert complete("set", "--cloud", "u") == ["usgov"]
    assert complete("check", "--cloud", "=", "p") == ["public"]  # --cloud=p
    assert complete("check", "--cloud", "=") == ["china", "public", "usgov"]  # --cloud=
    # a value to type: nothing offered, and the word after it is not taken for a command
    assert complete("check", "--tenant", "") == []
    assert complete("check", "--tenant", "t", "--cl") == ["--cloud"]


def test_completion_of_paths(tmp_path):
    (tmp_path / "rootdir").mkdir()
    (tmp_path / "rootfile").write_text("")
    assert complete("--root", "ro", cwd=tmp_path) == ["rootdir"]
    assert complete("--file", "ro", cwd=tmp_path) == ["rootdir", "rootfile"]
    assert complete("set", "--secret-file", "rootf", cwd=tmp_path) == ["rootfile"]
    (tmp_path / "two words").mkdir()
    assert complete("--root", "tw", cwd=tmp_path) == ["two words"]
    assert complete("--root", "nothing-like-it", cwd=tmp_path) == []


def test_the_generator_takes_what_new_commands_may_bring(tmp_path):
    """A nested group, a --x/--no-x pair, a counted flag, a path argument, a hidden option:
    the page still lints clean and the completion follows the nesting."""
    import click

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    def top():
        """Top."""

    @top.group("keys")
    def keys():
        """Keys: the `secret` ones."""

    @keys.command("list")
    @click.option("--color/--no-color", default=True, help="Colour.")
    @click.option("-v", "--verbose", count=True, help="More.")
    @click.option("--level", type=click.Choice(["low", "high"]), default="low", help="Level.")
    @click.option("--internal", hidden=True)
    @click.argument("where", type=click.Path(), nargs=-1)
    def list_keys(color, verbose, level, internal, where):
        """List them.

        Second paragraph."""

    tree = gen_docs.command_tree(top)
    assert [c.path for c in gen_docs.walk(tree)] == [(), ("keys",), ("keys", "list")]
    page = tmp_path / "page.1"
    page.write_text(gen_docs.man_page(tree), encoding="utf-8")
    groff = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                           capture_output=True, text=True, check=False)
    assert (groff.returncode, groff.stderr) == (0, "")
    text = rendered(str(page))
    assert "--color, --no-color" in text and "--level low|high" in text
    assert "Default: low." in text and "--internal" not in text
    script = tmp_path / "completion.bash"
    script.write_text(gen_docs.bash_completion(tree), encoding="utf-8")
    script = str(script)
    assert complete("k", script=script) == ["keys"]
    assert complete("keys", "", script=script) == ["list"]
    assert complete("keys", "list", "--l", script=script) == ["--level"]
    assert complete("keys", "list", "--level", "h", script=script) == ["high"]
    assert complete("keys", "list", "--n", script=script) == ["--no-color"]
    assert complete("keys", "list", "--i", script=script) == []
    (tmp_path / "wherefile").write_text("")
    assert complete("keys", "list", "wher", cwd=tmp_path, script=script) == ["wherefile"]


def test_the_readme_shows_the_ansible_playbook_the_tests_run():
    """test_ansible.py runs docs/ansible/onedesk-azuread.yml; the README's copy is that file."""
    readme = read(os.path.join(HERE, "README.md"))
    shown = readme.split("### Driving many servers (Ansible)", 1)[1].split("```yaml\n", 1)[1]
    shown = shown.split("```", 1)[0]
    playbook = read(os.path.join(HERE, "docs", "ansible", "onedesk-azuread.yml"))
    assert shown and playbook.endswith(shown), "copy docs/ansible/onedesk-azuread.yml into README"
    assert shown.startswith("- name: Azure AD sign-in of the OneDesk servers")
