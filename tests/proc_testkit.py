"""Processes seen through Linux /proc, for tests that start whole services as processes
(no mlos imports: usable from tests/e2e, which must not load our protos)."""

from __future__ import annotations

from pathlib import Path


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc (Linux); empty elsewhere."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.parent.name))
    return found


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2:].split()[0] != "Z"
