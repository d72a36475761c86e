"""signals' own behaviour, in this process: a signal before `hold` interrupts, after it is
held, announced once and left to the caller; the previous handlers come back. (What a
real ^C, hangup or kill does to a running apply: test_apply_faults.py.)"""

import os
import select
import signal
import threading

import pytest

from onedesk_azuread import signals


@pytest.fixture
def held():
    said = []
    holder = signals.Held(said.append, again=True)
    holder.said = said
    yield holder
    holder.restore()


def test_a_signal_before_the_hold_interrupts_with_its_number(held):
    with pytest.raises(signals.Interrupted) as caught:
        signal.raise_signal(signal.SIGTERM)
    assert caught.value.signum == signal.SIGTERM
    assert held.received == [] and held.said == []


def test_a_held_signal_is_recorded_woken_on_and_announced_once(held):
    held.hold()
    held.hold()
    assert held.said == [signals.HOLDING.format(again=" again")]
    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGHUP)
    assert held.received == [signal.SIGINT, signal.SIGHUP]
    assert select.select([held.wake_fd], [], [], 0)[0] == [held.wake_fd]
    held.announce()
    held.announce()
    assert held.said[1:] == [signals.RECEIVED.format(name=name, again=" again")
                             for name in ("SIGINT", "SIGHUP")]


def test_restore_puts_the_previous_handlers_back_and_leaves_ignored_signals_alone():
    before = {signum: signal.getsignal(signum) for signum in signals.HELD}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        holder = signals.Held(lambda message: None, again=False)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
        wake = holder.wake_fd
        holder.restore()
        assert signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert holder.wake_fd is None
        with pytest.raises(OSError):
            os.fstat(wake)
    finally:
        signal.signal(signal.SIGHUP, before[signal.SIGHUP])


def test_outside_the_main_thread_nothing_is_held():
    before = {signum: signal.getsignal(signum) for signum in signals.HELD}
    made = []
    thread = threading.Thread(target=lambda: made.append(signals.Held(print, again=False)))
    thread.start()
    thread.join()
    assert made[0].wake_fd is None
    assert {signum: signal.getsignal(signum) for signum in signals.HELD} == before
    made[0].restore()  # and restoring it changes nothing
    assert {signum: signal.getsignal(signum) for signum in signals.HELD} == before


def test_a_signal_is_named_even_without_a_name():
    assert signals.name(signal.SIGTERM) == "SIGTERM"
    assert signals.name(1000) == "signal 1000"
