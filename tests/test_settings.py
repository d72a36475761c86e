"""settings: reading the settings file (a missing one reads as empty) and its one locked
writer, which loses no update, leaves the old file or the new one, and refuses in one line."""

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from onedesk_azuread import settings, shellfile
from onedesk_azuread.errors import OnedeskError, ParseError, SettingsError

from .conftest import CLIENT_ID, OTHER_SECRET, SECRET, snapshot

GOOD = f"AZUREAD_CID={CLIENT_ID}\nAZUREAD_CIS={SECRET}\n"
CID = f"AZUREAD_CID={CLIENT_ID}\n"
CIS = f"AZUREAD_CIS={SECRET}\n"


def test_a_missing_file_reads_as_empty(settings_path):
    found = settings.read(str(settings_path))
    assert not found.exists and found.mode is None
    assert found.doc.value("AZUREAD_CIS") is None and not found.doc.entries
    assert not settings_path.exists()


def test_a_crlf_file_is_read_with_its_bytes_and_its_meant_values(settings_path):
    settings_path.write_bytes(GOOD.replace("\n", "\r\n").encode())
    settings_path.chmod(0o640)
    found = settings.read(str(settings_path))
    assert found.exists and found.mode == 0o640 and found.nlink == 1
    assert found.data == GOOD.replace("\n", "\r\n").encode()
    assert [found.doc.value("AZUREAD_CID"), found.doc.value("AZUREAD_CIS")] == [CLIENT_ID,
                                                                                SECRET]


@pytest.mark.parametrize("data, words", [
    (b"A=1\nB=\0\n", "/x:2: contains a NUL byte"),
    (b"A=1\n\nB=\xff\n", "/x:3: is not valid UTF-8 (byte 0xff)"),
])
def test_a_file_that_is_not_utf_8_text_names_its_line(data, words):
    with pytest.raises(ParseError) as err:
        settings.decode(data, "/x")
    assert str(err.value).startswith(words) and "\n" not in str(err.value)


def test_a_symlink_is_read_but_refused_for_writing(settings_path, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text(GOOD)
    settings_path.symlink_to(target)
    assert settings.read(str(settings_path)).doc.value("AZUREAD_CIS") == SECRET
    with pytest.raises(SettingsError, match="is a symbolic link; refusing to write through it"):
        settings.read(str(settings_path), writing=True)


def test_a_write_bash_cannot_parse_is_refused_before_the_rename(paths, settings_path):
    # A planner whose output does not parse (here: an edit that breaks a quote): the bash
    # check between the edit and the rename refuses it, nothing is written, and the one-line
    # message has bash's line and error but not the secret on that line.
    settings_path.write_text(CID + CIS)
    before = settings_path.read_bytes()

    def broken(snapshot):
        return settings.Edit(snapshot.doc.text + f"AZUREAD_CIS='{OTHER_SECRET}\n")

    with pytest.raises(OnedeskError) as err:
        settings.update(str(settings_path), broken, state_dir=paths.state_dir)
    message = str(err.value)
    assert message.startswith(f"{settings_path}: not changed: bash could not parse the result "
                              f"(line 3: unexpected EOF while looking for matching")
    assert "\n" not in message and OTHER_SECRET not in message and SECRET not in message
    assert settings_path.read_bytes() == before
    assert not (settings_path.parent / ".OneDesk.bak").exists()
    assert sorted(os.listdir(settings_path.parent)) == [".OneDesk"]


def _increment_counter(path, state_dir, key, times):
    for _ in range(times):
        def edit(snap, key=key):
            doc = shellfile.parse(snap.doc.text, [key])
            value = int(doc.value(key) or 0)
            return settings.Edit(shellfile.rewrite(doc, {key: str(value + 1)}))
        settings.update(path, edit, state_dir=state_dir)


def test_concurrent_writers_lose_no_update(root, settings_path):
    settings_path.write_text("# counters\n")
    ctx = multiprocessing.get_context("fork")
    state_dir = str(root / "var/lib/onedesk-azuread")
    workers = [ctx.Process(target=_increment_counter,
                           args=(str(settings_path), state_dir, f"C{i}", 40))
               for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    doc = shellfile.parse(settings_path.read_text(), [f"C{i}" for i in range(6)])
    assert [doc.value(f"C{i}") for i in range(6)] == ["40"] * 6


WRITER = """
import sys
from onedesk_azuread import settings
texts = [open(sys.argv[2]).read(), open(sys.argv[3]).read()]
i = 0
while True:
    i += 1
    settings.update(sys.argv[1], lambda snap: settings.Edit(texts[i % 2]), state_dir=sys.argv[4])
    sys.stdout.write("written\\n")  # one line per completed replace
    sys.stdout.flush()
"""


def _completed_writes(proc, count, deadline=120):
    """Wait (bounded) until the writer says it has replaced the file ``count`` times: a slow
    machine must not turn every kill into one before the first write (nothing to test)."""
    import select

    end = time.monotonic() + deadline
    seen = 0
    while seen < count:
        ready, _, _ = select.select([proc.stdout], [], [], max(0, end - time.monotonic()))
        assert ready, "the writer never completed a write"
        assert proc.stdout.readline() == b"written\n"
        seen += 1


def test_kill_9_leaves_the_old_or_the_new_file(tmp_path, root, settings_path):
    a = "".join(f"KEY{i}=value-a-{i}\n" for i in range(20000)) + GOOD
    b = "".join(f"KEY{i}=value-b-{i}\n" for i in range(20000)) + GOOD
    (tmp_path / "a").write_text(a)
    (tmp_path / "b").write_text(b)
    settings_path.write_text(a)
    state_dir = str(root / "var/lib/onedesk-azuread")
    rng = random.Random(7)
    seen = set()
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(settings_path),
                                 str(tmp_path / "a"), str(tmp_path / "b"), state_dir],
                                stdout=subprocess.PIPE)
        # After one or two whole replaces, at a random moment of the next: mostly mid-write.
        _completed_writes(proc, rng.randint(1, 2))
        time.sleep(rng.random() * 0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        content = settings_path.read_text()
        assert content in (a, b)
        seen.add(content)
        backup = settings_path.parent / ".OneDesk.bak"
        assert not backup.exists() or backup.read_text() in (a, b)
    assert len(seen) == 2  # the writer really was replacing the file while it was killed
    # The next writer clears the temp files the killed ones left.
    settings.update(str(settings_path), lambda snap: settings.Edit(a), state_dir=state_dir)
    assert sorted(os.listdir(settings_path.parent)) == [".OneDesk", ".OneDesk.bak"]


def test_settings_update_refuses_a_hard_linked_file_in_one_line(root, settings_path, linked):
    before = snapshot(root)
    with pytest.raises(SettingsError) as raised:
        settings.update(str(settings_path), lambda snap: settings.Edit(GOOD),
                        state_dir=str(root / "var/lib/onedesk-azuread"), fix_permissions=True)
    message = str(raised.value)
    assert "\n" not in message and str(settings_path) in message
    assert "find / -xdev -samefile" in message
    assert snapshot(root) == before


