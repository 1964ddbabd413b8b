"""Child processes that die with their parent, even when the parent is killed with SIGKILL.

Linux's PR_SET_PDEATHSIG asks the kernel to signal a process when its parent exits. It has to
be set inside the child. ``preexec_fn`` could do that, but it runs between fork and exec, which
is unsafe in a process with threads (every service has some). So a child is started through a
tiny Python stub that sets the signal, checks that its parent is still there, and execs the real
command: the setting survives the exec.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Sequence

_PR_SET_PDEATHSIG = 1

# argv: signal, parent pid, uid and gid to run as (or -1), then the command. The identity changes
# first: a change of user clears the parent-death signal.
_STUB = """\
import ctypes, os, sys
sig, parent, uid, gid = (int(a) for a in sys.argv[1:5])
if gid >= 0:
    os.setgroups([])
    os.setgid(gid)
if uid >= 0:
    os.setuid(uid)
ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)
if os.getppid() != parent:
    sys.exit(f"parent {parent} exited before {sys.argv[5]} started")
os.execv(sys.argv[5], sys.argv[5:])
"""


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent exits. Usable as a
    ``ProcessPoolExecutor`` initializer: it runs in the new worker, before any of its threads."""
    # Off Linux this is unavailable; the parent's own shutdown path still stops the child.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def tied_to_parent(
    command: Sequence[str],
    sig: int = signal.SIGTERM,
    *,
    uid: int | None = None,
    gid: int | None = None,
) -> list[str]:
    """``command`` (its first element an executable's path) wrapped so that it gets ``sig``
    when this process exits, run as ``uid``/``gid`` when given (the stub switches before it
    execs, as root). Off Linux the command is returned as it is."""
    if not sys.platform.startswith("linux"):
        return list(command)
    identity = [str(uid if uid is not None else -1), str(gid if gid is not None else -1)]
    # -I -S: the stub needs nothing installed, so nothing of a virtual environment is read.
    stub = [sys.executable, "-I", "-S", "-c", _STUB]
    return [*stub, str(int(sig)), str(os.getpid()), *identity, *command]
