"""A Celery worker with a real task over kombu against a broker: the worker runs
in a subprocess, the client sends tasks and waits for results that come back
over AMQP (the rpc:// result backend).

    python tests/clients/celery_check.py amqp://guest:guest@127.0.0.1:5672/
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(url: str) -> None:
    env = dict(os.environ, RINGMQ_CELERY_BROKER=url, PYTHONPATH=HERE)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool=solo",
         "--concurrency=1", "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
        cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        os.environ["RINGMQ_CELERY_BROKER"] = url
        sys.path.insert(0, HERE)
        from celery_tasks import add, app  # noqa: E402

        results = [add.delay(i, i) for i in range(20)]
        values = [r.get(timeout=30) for r in results]
        assert values == [2 * i for i in range(20)], values
        # A task that fails: the exception comes back to the caller.
        bad = add.delay("a", 1)
        try:
            bad.get(timeout=30)
            raise AssertionError("a failing task reported success")
        except TypeError:
            pass
        app.close()
        print("celery: ok (20 tasks run by a worker, results over rpc://, a failing task's error returned)")
    finally:
        worker.terminate()
        try:
            out, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, _ = worker.communicate()
        if worker.returncode not in (0, -15) and "ok" not in out:
            print(out)


if __name__ == "__main__":
    start = time.time()
    main(sys.argv[1])
