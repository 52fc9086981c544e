"""The Celery app of celery_check.py (a module, so that the worker can import it)."""
import os

from celery import Celery

app = Celery("ringmq_check", broker=os.environ["RINGMQ_CELERY_BROKER"], backend="rpc://")
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)


@app.task
def add(x, y):
    return x + y
