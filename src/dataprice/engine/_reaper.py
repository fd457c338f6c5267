"""The reaper: a tiny stdlib-only process that watches the process that started it.

Started by :class:`dataprice.engine.ray_engine._Reaper` as ``python -I -S _reaper.py PARENT_PID POLL``
(isolated: it imports nothing but the standard library). It learns the pids of the
processes an engine started (a line of pids on stdin), follows their descendants in
``/proc`` (pid and start time, so a reused pid is never touched) and, when its parent has
gone (``os.getppid()`` changes), SIGKILLs every one still alive. ``bye`` on stdin ends it
quietly. Linux only.
"""

import os
import select
import signal
import sys
import time


def table() -> dict[int, tuple[int, bytes, bytes]]:
    """``pid -> (parent pid, start time, state)`` of every process in ``/proc``."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            fields = data[data.rfind(b")") + 2 :].split()
            out[int(name)] = (int(fields[1]), fields[19], fields[0])
    return out


def refresh(roots: set[int], watched: dict[int, bytes]) -> dict[int, tuple[int, bytes, bytes]]:
    """Add the roots and all their descendants to ``watched``; forget processes that ended."""
    t = table()
    for pid in roots:
        if pid in t and pid not in watched:
            watched[pid] = t[pid][1]
    for pid in [p for p, start in watched.items() if p not in t or t[p][1] != start]:
        del watched[pid]
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start, _state) in t.items():
            if ppid in watched and pid not in watched and pid != os.getpid():
                watched[pid], grew = start, True
    return t


def main() -> int:
    parent, poll = int(sys.argv[1]), float(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    roots: set[int] = set()
    watched: dict[int, bytes] = {}
    reading = True
    while os.getppid() == parent:
        if reading:
            if select.select([sys.stdin], [], [], poll)[0]:
                line = sys.stdin.readline()
                if not line:
                    reading = False
                elif line.strip() == "bye":
                    return 0
                else:
                    roots.update(int(p) for p in line.split())
        else:
            time.sleep(poll)
        refresh(roots, watched)
    t = refresh(roots, watched)
    for pid, start in watched.items():
        if pid in t and t[pid][1] == start and t[pid][2] != b"Z":
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
