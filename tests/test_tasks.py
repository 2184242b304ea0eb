"""The task runner shared by binning and the catalogue: checkpoints, resume, results in order, dask."""

import json
import time

import pytest

from skyfit._tasks import Checkpoints, Task, connect, run_tasks, write_atomic

CALLS: list = []  # the tasks' calls, to see which ones a run redid


def _square(i, delay=0.0, log=None):
    CALLS.append(i)
    if log is not None:
        log("squaring", i)
    time.sleep(delay)
    return {"i": i, "square": i * i, "version": 1}


def _write(f, result):
    f.write(json.dumps(result).encode())


def _read(path, version=1):
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # missing or torn
    return rec if rec.get("version") == version else None


def _tasks(n, delay=0.0):
    return [Task(_square, (i, delay), f"t{i}.json", f"T{i}") for i in range(n)]


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()


def test_in_process_run_writes_each_checkpoint_and_returns_the_results_in_order(tmp_path):
    run = run_tasks(_tasks(4), checkpoints=Checkpoints(tmp_path, _write, _read), progress=False)
    assert [r["square"] for r in run.results] == [0, 1, 4, 9]
    assert run.n_resumed == 0 and CALLS == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t0.json", "t1.json", "t2.json", "t3.json"]  # no tmp left
    assert json.loads((tmp_path / "t2.json").read_text())["square"] == 4
    plain = run_tasks(_tasks(3), progress=False)  # without checkpoints
    assert [r["i"] for r in plain.results] == [0, 1, 2] and plain.n_resumed == 0


def test_resume_skips_finished_tasks_and_redoes_torn_stale_and_missing_ones(tmp_path):
    ck = Checkpoints(tmp_path, _write, _read)
    first = run_tasks(_tasks(5), checkpoints=ck, progress=False).results
    (tmp_path / "t1.json").write_text('{"i": 1, "squ')  # torn mid-write by an older writer
    (tmp_path / "t3.json").write_text(json.dumps({"i": 3, "square": -1, "version": 0}))  # another version's
    (tmp_path / "t4.json").unlink()  # never finished
    CALLS.clear()
    told = []
    again = run_tasks(_tasks(5), checkpoints=ck, progress=False, unit="ROI", log=told.append)
    assert CALLS == [1, 3, 4]  # only those; the others come from their checkpoints
    assert again.n_resumed == 2 and again.results == first
    assert told == [f"resuming: 2 of 5 ROI(s) already done in {tmp_path}"]
    CALLS.clear()
    assert run_tasks(_tasks(5), checkpoints=ck, progress=False).n_resumed == 5 and CALLS == []
    # a cheaper validity test decides what is skipped; the result is read when its turn comes
    valid = Checkpoints(tmp_path, _write, _read, valid=lambda p: p.name != "t0.json")
    assert run_tasks(_tasks(5), checkpoints=valid, progress=False).results == first and CALLS == [0]


def test_results_are_handed_on_in_task_order(tmp_path):
    (tmp_path / "t2.json").write_text(json.dumps(_square(2)))  # resumed, between two tasks to run
    CALLS.clear()
    seen = []
    run = run_tasks(_tasks(4), checkpoints=Checkpoints(tmp_path, _write, _read), progress=False,
                    on_result=lambda i, r: seen.append((i, r["square"])))  # fmt: skip
    assert seen == [(0, 0), (1, 1), (2, 4), (3, 9)] and run.results is None and CALLS == [0, 1, 3]


def test_a_failing_task_keeps_the_finished_ones(tmp_path):
    ck = Checkpoints(tmp_path, _write, _read)
    tasks = _tasks(3)
    tasks[1] = Task(_square, ("not a number",), "t1.json")
    with pytest.raises(TypeError):
        run_tasks(tasks, checkpoints=ck, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t0.json"]
    CALLS.clear()
    assert run_tasks(_tasks(3), checkpoints=ck, progress=False).n_resumed == 1 and CALLS == [1, 2]


def test_the_progress_bar_counts_resumed_tasks_and_shows_a_task_step(tmp_path, capsys):
    ck = Checkpoints(tmp_path, _write, _read)
    run_tasks(_tasks(1), checkpoints=ck, progress=False)
    tasks = [Task(_square, (i,), f"t{i}.json", f"T{i + 1}", step_kw="log") for i in range(2)]
    run_tasks(tasks, checkpoints=ck, desc="squares", unit="sq")
    err = capsys.readouterr().err
    assert "squares" in err and "2/2" in err and "T2: squaring 1" in err


def test_write_atomic_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_atomic(path, lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(path, broken)
    assert path.read_text() == "old" and [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_dask_scheduler_gives_the_same_results_in_task_order(tmp_path):
    from dask.distributed import LocalCluster

    ck = Checkpoints(tmp_path, _write, _read)
    (tmp_path / "t0.json").write_text(json.dumps(_square(0)))
    CALLS.clear()
    seen = []
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        # the later tasks are quicker: they finish first, and wait for the earlier ones to be handed on
        tasks = [Task(_square, (i, 0.3 - 0.05 * i), f"t{i}.json") for i in range(5)]
        run = run_tasks(tasks, checkpoints=ck, scheduler=cluster.scheduler_address, progress=False,
                        on_result=lambda i, r: seen.append(i))  # fmt: skip
    assert seen == [0, 1, 2, 3, 4] and run.n_resumed == 1 and sorted(CALLS) == [1, 2, 3, 4]
    assert [json.loads((tmp_path / f"t{i}.json").read_text())["square"] for i in range(5)] == [0, 1, 4, 9, 16]


def test_a_scheduler_address_of_another_protocol_fails_clearly_within_its_timeout():
    """An HTTP port given as the dask scheduler: a clear error naming the address within the timeout (dask itself
    hung there past its own timeout, or died allocating 3 EiB)."""
    import http.server
    import socketserver
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True  # a handler left reading dask's bytes does not hold the test

    with Server(("127.0.0.1", 0), Quiet) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        address = f"tcp://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(ConnectionError, match="cannot reach the dask scheduler at 'tcp://127.0.0.1:"):
            connect(address, timeout_s=2.0)  # returns within 2 + 5 s; dask alone never returned
        server.shutdown()
