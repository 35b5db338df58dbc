"""Who holds a stack lock, precisely enough to prove that holder dead before its lock is broken.

Why not host name and PID: containers often share a host name (and two machines can), and a PID names a
process only inside one PID namespace and one boot. A lock was broken while its holder lived because PID 42 on
"ci" was not PID 42 on the other "ci", and two applies ran at once. A holder is now the boot id, the machine
id, the PID namespace (the inode of /proc/self/ns/pid), the PID and that process's start time (field 22 of
/proc/<pid>/stat, so a reused PID is told apart). Only a holder that shares all of that with us, and whose
process is gone or started at another time, is known to be dead; anything else is waited for and named.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

LABEL_HOLDER: Final = "toolhive-apply.lock.holder"
LABEL_HOST: Final = "toolhive-apply.lock.host"
LABEL_PID: Final = "toolhive-apply.lock.pid"
LABEL_BOOT_ID: Final = "toolhive-apply.lock.boot-id"
LABEL_MACHINE_ID: Final = "toolhive-apply.lock.machine-id"
LABEL_PID_NAMESPACE: Final = "toolhive-apply.lock.pid-namespace"
LABEL_START_TIME: Final = "toolhive-apply.lock.start-time"

BOOT_ID_FILE: Final = Path("/proc/sys/kernel/random/boot_id")
MACHINE_ID_FILES: Final = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
DEAD_STATES: Final = frozenset({"Z", "X", "x"})  # zombie or dead: it holds nothing any more


@dataclass(frozen=True, slots=True)
class HolderIdentity:
    """One process, as far as this kernel can name it. Empty strings are parts that could not be read."""

    host: str
    boot_id: str
    machine_id: str
    pid_namespace: str
    pid: int
    start_time: str

    @classmethod
    def current(cls) -> HolderIdentity:
        pid = os.getpid()
        return cls(
            host=socket.gethostname(),
            boot_id=_read_first_line((BOOT_ID_FILE,)),
            machine_id=_read_first_line(MACHINE_ID_FILES),
            pid_namespace=_pid_namespace(),
            pid=pid,
            start_time=process_start_time(pid) or "",
        )

    def labels(self) -> dict[str, str]:
        return {
            LABEL_HOLDER: f"{_user()}@{self.host} pid {self.pid}",
            LABEL_HOST: self.host,
            LABEL_PID: str(self.pid),
            LABEL_BOOT_ID: self.boot_id,
            LABEL_MACHINE_ID: self.machine_id,
            LABEL_PID_NAMESPACE: self.pid_namespace,
            LABEL_START_TIME: self.start_time,
        }

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> HolderIdentity | None:
        """The recorded holder, or None when the lock does not identify it well enough to ever be checked."""
        pid = labels.get(LABEL_PID, "")
        parts = [labels.get(name) for name in (LABEL_HOST, LABEL_BOOT_ID, LABEL_PID_NAMESPACE, LABEL_START_TIME)]
        if not pid.isdigit() or not all(parts) or LABEL_MACHINE_ID not in labels:
            return None  # e.g. a lock written by an older toolhive-apply: host and PID alone prove nothing
        host, boot_id, namespace, start = (str(p) for p in parts)
        return cls(host, boot_id, labels[LABEL_MACHINE_ID], namespace, int(pid), start)

    def shares_process_space_with(self, other: HolderIdentity) -> bool:
        """Whether a PID of `other` means the same process here: same machine, boot and PID namespace."""
        known = bool(self.boot_id and self.pid_namespace)
        same = (self.host, self.boot_id, self.machine_id, self.pid_namespace) == (
            other.host,
            other.boot_id,
            other.machine_id,
            other.pid_namespace,
        )
        return known and same


def holder_is_gone(labels: Mapping[str, str]) -> bool:
    """True only when the lock's holder provably no longer runs: in doubt, False (wait and name it)."""
    recorded = HolderIdentity.from_labels(labels)
    if recorded is None or not HolderIdentity.current().shares_process_space_with(recorded):
        return False
    started = process_start_time(recorded.pid)
    return started is None or started != recorded.start_time


def unverifiable_reason(labels: Mapping[str, str]) -> str | None:
    """Why a live-looking holder cannot be checked from here (for the hint), or None when it can be."""
    recorded = HolderIdentity.from_labels(labels)
    if recorded is None:
        return "the lock does not say which machine and PID namespace its holder runs in"
    here = HolderIdentity.current()
    if here.shares_process_space_with(recorded):
        return None
    if (recorded.boot_id, recorded.machine_id) != (here.boot_id, here.machine_id):
        return f"its holder runs on another machine (or boot) than this one, even if both are called {recorded.host!r}"
    return "its holder runs in another PID namespace (another container) on this machine"


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot), or None when no such live process exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name (field 2) may hold spaces and parentheses
    if len(fields) < 20 or fields[0] in DEAD_STATES:
        return None
    return fields[19]


def _pid_namespace() -> str:
    """The inode of our PID namespace, or "" when /proc is not this namespace's (then no PID is checkable)."""
    try:
        if str(Path("/proc/self").readlink()) != str(os.getpid()):
            return ""
        return str(Path("/proc/self/ns/pid").stat().st_ino)
    except OSError:
        return ""


def _read_first_line(paths: tuple[Path, ...]) -> str:
    for path in paths:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            line = path.read_text(encoding="ascii").strip()
            if line:
                return line
    return ""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        return str(os.getuid())
