"""Run the real server (uvicorn serving the ASGI app) in a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def celery_worker_command(name: str) -> list[str]:
    """A Celery worker as the scale-out mode runs it (threads pool, the jobs queue)."""
    return [
        sys.executable, "-m", "celery", "-A", "medgenomics", "worker", "--pool", "threads",
        "--concurrency", "2", "-n", f"{name}@%h", "-Q", "medgenomics",
        "--without-gossip", "--without-mingle", "-l", "INFO",
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    temp_dir: Path
    process: subprocess.Popen
    env: dict

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def create_user(self, username: str, password: str) -> None:
        code = (
            "from django.contrib.auth import get_user_model;"
            f"get_user_model().objects.create_user({username!r}, password={password!r})"
        )
        self.manage("shell", "-c", code)

    def login(self, username: str, password: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=60)
        client.get("/accounts/login/")
        response = client.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
        )
        assert response.status_code == 302, response.text
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        client.headers["Referer"] = self.url + "/"
        return client

    def stop(self) -> str:
        self.process.terminate()
        try:
            output, _ = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output


def start_server(
    base: Path, *, extra_env: dict | None = None, reuse: bool = False
) -> RunningServer:
    """Start uvicorn on a free port with its data under ``base``; ``reuse`` restarts on the data
    of an earlier server (same database, keys and staging area)."""
    data_dir = base / "data"
    temp_dir = base / "tmp"
    temp_dir.mkdir(parents=True, exist_ok=reuse)
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "medgenomics.settings",
        "MEDGENOMICS_DATA_DIR": str(data_dir),
        "TMPDIR": str(temp_dir),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "medgenomics.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stdout.read()}")
        try:
            httpx.get(url + "/accounts/login/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("server did not start")
    return RunningServer(url=url, data_dir=data_dir, temp_dir=temp_dir, process=process, env=env)


def wait_for_final(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/status/{job_id}").json()
        if body["status"] in {"completed", "failed", "deleted"}:
            return body
        time.sleep(0.2)
    raise AssertionError(f"job did not finish: {body}")
