"""Running independent tasks, for every part of skyfit that distributes work (binning, the catalogue).

:func:`run_tasks` runs a list of :class:`Task` in this process, on a local dask cluster or on a running
dask scheduler (:func:`connect`). With :class:`Checkpoints`, each finished task's result is written to
its own file as soon as it is done (atomically: a temporary file renamed over the final one, so a killed
run leaves no half-written result), and a rerun skips the tasks whose file is valid (the caller decides:
e.g. its fingerprint matches), so an interrupted run resumes without losing finished work. Progress is
a tqdm bar; the results come back in the tasks' order whatever the order they finish in.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["Checkpoints", "Task", "TaskRun", "connect", "run_tasks", "write_atomic"]


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


def write_atomic(path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` whole or not at all: ``write`` fills ``<path>.tmp<pid>`` (opened in binary mode),
    which is then renamed over ``path``. The temporary name never matches a glob of the final files
    (``roi_*.json``, ``*.npz``), and two processes writing the same file do not share it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Task:
    """One independent unit of work: ``fn(*args)``.

    ``fn`` and ``args`` must pickle (a module-level function) to run on dask. ``name`` is the task's
    checkpoint file in :attr:`Checkpoints.directory`. With ``step_kw``, an in-process run with a progress
    bar passes ``fn`` a callable under that keyword; what the task gives it (its current step, as
    ``print`` arguments) is shown beside the bar after ``label``.
    """

    fn: Callable
    args: tuple = ()
    name: str = ""
    label: str = ""
    step_kw: str | None = None


@dataclass(frozen=True)
class Checkpoints:
    """Where and how the tasks' results are kept between runs.

    ``write(file, result)`` writes a result to an open binary file (:func:`write_atomic` makes it land
    whole). ``read(path)`` returns the result stored at ``path``, or None when there is none to trust:
    missing, torn (unreadable) or stale (made by another configuration); such a task is run again.
    ``valid(path)``, if given, is a cheaper test of the same (the default is ``read(path) is not None``):
    it decides which tasks are skipped, and ``read`` loads their results only when they are handed on,
    so the finished tasks' results are never all held in memory at once.
    """

    directory: Path
    write: Callable[[IO[bytes], Any], None]
    read: Callable[[Path], Any]
    valid: Callable[[Path], bool] | None = None

    def path(self, task: Task) -> Path:
        return Path(self.directory) / task.name

    def is_valid(self, task: Task) -> bool:
        path = self.path(task)
        return self.valid(path) if self.valid is not None else self.read(path) is not None


@dataclass
class TaskRun:
    """The outcome of :func:`run_tasks`: each task's result in task order (None when ``on_result`` took
    them) and how many tasks were skipped because their checkpoint was valid."""

    results: list | None
    n_resumed: int


class _InOrder:
    """Hands results on in task order: a result that finishes early waits for those before it; a
    resumed task's result is read from its checkpoint when its turn comes."""

    def __init__(self, tasks, done, checkpoints, on_result):
        self.tasks, self.done, self.checkpoints, self.on_result = tasks, done, checkpoints, on_result
        self.next = 0
        self.waiting: dict[int, Any] = {}

    def put(self, i: int | None = None, result=None) -> None:
        if i is not None:
            self.waiting[i] = result
        while self.next < len(self.tasks):
            i = self.next
            if i in self.waiting:
                result = self.waiting.pop(i)
            elif self.done[i]:
                path = self.checkpoints.path(self.tasks[i])
                result = self.checkpoints.read(path)
                if result is None:
                    raise RuntimeError(f"checkpoint {path} was valid at the start of this run and is no longer")
            else:
                return
            self.on_result(i, result)
            self.next += 1


def run_tasks(
    tasks: Sequence[Task],
    *,
    checkpoints: Checkpoints | None = None,
    scheduler: str | None = None,
    n_workers: int = 2,
    progress: bool = True,
    desc: str | None = None,
    unit: str = "task",
    log: Callable | None = None,
    error: type[Exception] = ConnectionError,
    on_result: Callable[[int, Any], None] | None = None,
) -> TaskRun:
    """Run ``tasks``; return their results in task order.

    Parameters
    ----------
    tasks : sequence of Task
    checkpoints : Checkpoints, optional
        Each finished task's result is written there at once; a task whose checkpoint is valid is not run
        again (its stored result is used).
    scheduler : None, "local" or an address
        None: one task after another in this process; "local": a dask ``LocalCluster`` of ``n_workers``
        processes (one thread each); else the address of a running dask scheduler (:func:`connect`; an
        unreachable one raises ``error``). No cluster is started or reached when every task is resumed.
    progress : bool
        A tqdm bar of ``desc``, counting ``unit``; resumed tasks count as done from the start.
    log : callable, optional
        Told how many tasks are resumed (``"resuming: 3 of 8 ROI(s) already done in out/rois"``).
    on_result : callable, optional
        ``on_result(index, result)`` for each task in task order, as soon as it and those before it are
        done; the results are then not kept (``TaskRun.results`` is None), so that a long run of large
        results (maps) is summed in bounded memory.
    """
    tasks = list(tasks)
    done = [checkpoints is not None and checkpoints.is_valid(t) for t in tasks]
    resumed = [i for i, d in enumerate(done) if d]
    if resumed and log is not None:
        log(f"resuming: {len(resumed)} of {len(tasks)} {unit}(s) already done in {checkpoints.directory}")
    results: list | None = None
    if on_result is None:
        results = [None] * len(tasks)

        def on_result(i, result):
            results[i] = result

    order = _InOrder(tasks, done, checkpoints, on_result)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), initial=len(resumed), desc=desc, unit=unit)
    try:
        order.put()  # the resumed tasks ahead of the first to run
        pending = [i for i, d in enumerate(done) if not d]

        def finished(i, result):
            if checkpoints is not None:
                write_atomic(checkpoints.path(tasks[i]), lambda f: checkpoints.write(f, result))
            order.put(i, result)
            if bar is not None:
                bar.update(1)

        if scheduler is None:
            _run_here(tasks, pending, bar, finished)
        elif pending:
            _run_on_dask(tasks, pending, scheduler, n_workers, error, finished)
        order.put()
    finally:
        if bar is not None:
            bar.close()
    return TaskRun(results, len(resumed))


def _run_here(tasks, pending, bar, finished) -> None:
    for i in pending:
        task = tasks[i]
        kwargs = {}
        if task.step_kw is not None and bar is not None:  # inside a long task: its current step beside the bar

            def step(*parts, _label=task.label):
                bar.set_postfix_str(f"{_label}: {' '.join(str(p) for p in parts).strip()[:70]}")

            kwargs[task.step_kw] = step
        finished(i, task.fn(*task.args, **kwargs))


def _run_on_dask(tasks, pending, scheduler, n_workers, error, finished) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler == "local":
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            client = connect(scheduler, error=error)
        with client:
            futures = {client.submit(tasks[i].fn, *tasks[i].args, pure=False): i for i in pending}
            for fut in as_completed(futures):
                finished(futures[fut], fut.result())
    finally:
        if cluster is not None:
            cluster.close()
