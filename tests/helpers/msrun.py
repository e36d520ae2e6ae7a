"""Data-parallel runs with msrun on this machine: the flags of a tiny run, a free port for msrun's scheduler, and
the pids of its worker processes."""
import os
import socket

# a tiny run in Graph mode on digits at 32 px, without validation (each test adds the model and sizes)
DISTRIBUTED_RUN = ["--mode", "0", "--dataset", "digits", "--image_resize", "32", "--num_parallel_workers", "1",
                   "--opt", "adamw", "--lr", "0.001", "--val_while_train", "False"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no process listens on (for msrun's scheduler)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def msrun_workers(pid) -> list:
    """Pids of msrun ``pid``'s worker processes (its scheduler process runs train.py too, as MS_SCHED)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/environ", "rb") as f:
                environment = f.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid and b"MS_ROLE=MS_WORKER" in environment and b"train.py" in command:  # not its log tails
            found.append(int(entry))
    return found
