"""apply's interrupts: SIGINT, SIGHUP and SIGTERM stop it before the removal, and are held
from the removal until the reinstall has run (recorded, announced, acted on afterwards)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

HELD = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)
HOLDING = "interrupts are held until the OneDesk packages are installed{again}"
RECEIVED = ("{name} received: apply finishes first (installing the OneDesk packages{again}), "
            "then stops")


class Interrupted(BaseException):
    """A signal before the removal began: stop, nothing was changed. (BaseException, like
    KeyboardInterrupt: no `except Exception` may swallow it.)"""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def name(signum: int) -> str:
    """SIGTERM, or "signal 64" for a number Python has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Held:
    """The HELD signals while apply runs dnf.

    Before ``hold`` they raise Interrupted, which stops apply (and the dnf it runs)
    cleanly. After it they are held: recorded in ``received``, announced, acted on by
    the caller afterwards. A wakeup pipe (``wake_fd``) lets the loop that streams dnf's
    output announce them at once; the handler itself never writes (it could interrupt a
    write to the same stream). ``restore`` puts the previous handlers back.
    """

    def __init__(self, say: Callable[[str], None], again: bool):
        self.say = say
        self.again = " again" if again else ""
        self.holding = False
        self.received: list[int] = []
        self._announced = 0
        self._previous: dict[int, object] = {}
        self.wake_fd: int | None = None
        self._wake_w: int | None = None
        self._previous_wake = -1
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        try:
            self._previous_wake = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
            for signum in HELD:
                if signal.getsignal(signum) == signal.SIG_IGN:
                    continue  # nohup, or a background job: it was not going to interrupt
                self._previous[signum] = signal.signal(signum, self._handler)
        except ValueError:  # not the main thread: signals cannot be handled here
            self.restore()
            os.close(read_fd)
            os.close(write_fd)
            return
        self.wake_fd, self._wake_w = read_fd, write_fd

    def _handler(self, signum, frame) -> None:
        if not self.holding:
            raise Interrupted(signum)
        self.received.append(signum)

    def hold(self) -> None:
        if not self.holding:
            self.holding = True
            self.say(HOLDING.format(again=self.again))

    def announce(self) -> None:
        for signum in self.received[self._announced:]:
            self.say(RECEIVED.format(name=name(signum), again=self.again))
        self._announced = len(self.received)

    def restore(self) -> None:
        self.announce()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        if self._wake_w is not None:
            signal.set_wakeup_fd(self._previous_wake)
            for fd in (self.wake_fd, self._wake_w):
                os.close(fd)
            self.wake_fd = self._wake_w = None
