"""Children started through ``tied_to_parent`` die with their parent, even one killed with -9."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import psutil
import pytest

from tests.polling import poll_until

PARENT = """
import subprocess, sys, time
from services.core.processes import tied_to_parent
child = subprocess.Popen(tied_to_parent([sys.argv[1], "300"]))
print(child.pid, flush=True)
time.sleep(300)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_tied_child_dies_when_its_parent_is_killed() -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, sleep], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    poll_until(lambda: child.name() == "sleep", within_s=10, every_s=0.05, what="child exec'd")
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    poll_until(
        lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, within_s=10
    )
