"""Connecting to a dask scheduler, for every part of skyfit that distributes work (binning, the catalogue)."""

from __future__ import annotations

import threading


def connect(scheduler: str, timeout_s: float = 10.0, error: type[Exception] = ConnectionError):
    """A ``dask.distributed.Client`` of the scheduler at ``scheduler``, or ``error`` with the address and the
    fix within ``timeout_s`` + 5 s. The client is made in a daemon thread: an address that answers another
    protocol (an HTTP port) made dask hang past its own timeout, or fail with a 3 EiB allocation."""
    from dask.distributed import Client

    box: dict = {}

    def target():
        try:
            box["client"] = Client(scheduler, timeout=f"{timeout_s:g}s")
        except BaseException as exc:  # noqa: BLE001 - any failure is reported below, with the address
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="skyfit-dask-connect")
    thread.start()
    thread.join(timeout_s + 5.0)
    if "client" in box:
        return box["client"]
    if "error" in box:
        why = f"{type(box['error']).__name__}: {str(box['error'])[:200]}"
    else:
        why = f"no answer in dask's protocol within {timeout_s + 5.0:g} s: is it another service's port?"
    raise error(
        f"cannot reach the dask scheduler at {scheduler!r} ({why}); start one (`dask scheduler`) and give its "
        "address (tcp://host:8786), or use 'local' for a cluster on this machine, or no scheduler to run in "
        "this process"
    )
