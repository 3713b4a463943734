"""Scale-out tests: real PostgreSQL, real Redis, real Celery worker processes.

They run in the second pass of `make test` (DATABASE_URL and REDIS_URL set) and are skipped in
the embedded pass. Workers are started and stopped by the tests themselves, on the test
database and the test's data directory.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.e2e.server import celery_worker_command

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (django_settings.DATABASE_URL and django_settings.REDIS_URL),
    reason="scale-out tests need DATABASE_URL (PostgreSQL) and REDIS_URL (make test sets both)",
)


class Worker:
    def __init__(self, name: str, env: dict) -> None:
        self.name = name
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            celery_worker_command(name),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 60
        while not any("ready" in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + "".join(self.lines[-40:]))
            time.sleep(0.1)

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(autouse=True)
def clean_queue():
    import redis

    redis.Redis.from_url(django_settings.REDIS_URL).flushdb()
    yield


@pytest.fixture
def worker_env(isolated_data_dir, tmp_path, settings):
    """Environment for worker processes: the test database and the test's data directory."""
    from django.db import connection

    db = connection.settings_dict
    temp_dir = tmp_path / "worker-tmp"
    temp_dir.mkdir()
    database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "medgenomics.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "MEDGENOMICS_DATA_DIR": str(isolated_data_dir),
        "TMPDIR": str(temp_dir),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def workers(worker_env):
    started: list[Worker] = []

    def start(name: str, **overrides) -> Worker:
        worker = Worker(name, {**worker_env, **overrides})
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
