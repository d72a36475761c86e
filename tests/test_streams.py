"""streams: fds 0-2 made safe before anything runs, and output that never fails on a
character (the CLI's and the dnf 5 hook's processes)."""

import codecs
import os
import subprocess
import sys

from onedesk_azuread import streams

PROBE = """
import os, sys
from onedesk_azuread import streams
closed = streams.fill_closed_standard_fds()
fd = os.open(os.devnull, os.O_RDONLY)  # never one of 0-2 now
try:
    print("lost")
    written = streams.flush_stdout()
except OSError:
    written = False
sys.stderr.write(repr((closed, fd > 2, written)))
"""


def test_a_closed_stdout_is_taken_and_writing_to_it_is_an_error():
    done = subprocess.run([sys.executable, "-c", PROBE], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=60, check=False,
                          preexec_fn=lambda: os.close(1))
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith("([1], True, False)"), done.stderr


def test_open_standard_fds_are_left_alone():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "lost\n" and done.stderr.endswith("([], True, True)")


def test_an_unencodable_character_is_escaped_and_an_undecodable_byte_kept():
    codecs.register_error("test-streams", streams._unencodable)
    assert "a€é".encode("ascii", "test-streams") == b"a\\u20ac\\xe9"
    name = b"caf\xe9".decode("utf-8", "surrogateescape")  # a file name the locale could not read
    assert name.encode("utf-8", "test-streams") == b"caf\xe9"
