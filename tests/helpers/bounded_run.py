"""``python tests/helpers/bounded_run.py SECONDS BYTES ARGS...``: run ``python ARGS`` (stdout discarded, stderr
passed on) and print ``{"code", "seconds", "peak_bytes"}`` of that command alone as JSON.

The kernel's peak count of a process (``ru_maxrss``) starts from the resident size of the process that started
it: launched straight from a pytest worker holding gigabytes of models, a 100 MB command would report gigabytes.
Launched from this small process, it reports its own. It is killed after SECONDS, or once it holds more than
BYTES, so that a regression fails its test instead of exhausting the machine.
"""
import json
import os
import subprocess
import sys
import time


def resident_bytes(pid: int) -> int:
    """VmRSS of a live process, 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def main(seconds: float, max_bytes: int, args: list) -> None:
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable] + args, stdout=subprocess.DEVNULL)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - start > seconds or resident_bytes(proc.pid) > max_bytes:
            proc.kill()
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
    print(json.dumps(dict(code=proc.returncode, seconds=time.monotonic() - start, peak_bytes=usage.ru_maxrss * 1024)))


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
