"""Load test: concurrent uploads of real files to a local server with two Celery workers.

Starts uvicorn and two Celery workers against this machine's PostgreSQL and Redis (a fresh
database and data directory each run), creates several users, sends N uploads at once (real
files from ../shared/data, spread over the users), and waits for every job. Prints p50/p95
latency from upload to completion, throughput, and checks that no job is lost or duplicated.

    .venv/bin/python benchmarks/load.py [--uploads 50] [--users 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.e2e.server import celery_worker_command, free_port  # noqa: E402

DATA = REPO.parent / "shared" / "data"
FILES = sorted(p for p in [*(DATA / "genomes").rglob("*.fa"), *(DATA / "fastq").glob("*.fq")])


def run(cmd: list[str], env: dict) -> None:
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/8")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="medgenomics-load-"))
    database_name = f"load_{int(time.time())}"
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", database_name], check=True)
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "medgenomics.settings",
        "DATABASE_URL": args.database + database_name,
        "REDIS_URL": args.redis,
        "MEDGENOMICS_DATA_DIR": str(base / "data"),
        # Several users share the load; each may send this many per minute.
        "MEDGENOMICS_UPLOADS_PER_MINUTE": str(args.uploads),
        "PYTHONUNBUFFERED": "1",
    }
    python = sys.executable
    run([python, "manage.py", "migrate", "--noinput"], env)
    users = [f"load{index}" for index in range(args.users)]
    code = "; ".join(
        f"get_user_model().objects.create_user('{name}', password='load test passphrase')"
        for name in users
    )
    run(
        [
            python,
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; " + code,
        ],
        env,
    )
    subprocess.run(["redis-cli", "-u", args.redis, "flushdb"], check=True, capture_output=True)

    processes = [
        start(
            [python, "-m", "uvicorn", "medgenomics.asgi:application", "--port", str(port)],
            env,
            base / "web.log",
        )
    ]
    for index in (1, 2):
        processes.append(
            start(
                celery_worker_command(f"load{index}"),
                env,
                base / f"worker{index}.log",
            )
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(url + "/accounts/login/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(3)  # workers connect to the broker

        clients = []
        for name in users:
            client = httpx.Client(base_url=url, timeout=120)
            client.get("/accounts/login/")
            client.post(
                "/accounts/login/",
                data={
                    "username": name,
                    "password": "load test passphrase",
                    "csrfmiddlewaretoken": client.cookies["csrftoken"],
                },
            )
            client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
            clients.append(client)

        plan = [(clients[i % len(clients)], FILES[i % len(FILES)]) for i in range(args.uploads)]
        total_bytes = sum(path.stat().st_size for _, path in plan)

        def one(item):
            client, path = item
            started = time.monotonic()
            response = client.post("/api/upload", files={"file": (path.name, path.read_bytes())})
            if response.status_code != 202:
                return (response.status_code, None, None, time.monotonic() - started)
            job_id = response.json()["job_id"]
            while True:
                status = client.get(f"/api/status/{job_id}").json()
                if status["status"] in ("completed", "failed"):
                    return (
                        status["status"],
                        job_id,
                        status.get("attempts"),
                        time.monotonic() - started,
                    )
                time.sleep(0.1)

        wall = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.uploads) as pool:
            outcomes = list(pool.map(one, plan))
        wall = time.monotonic() - wall

        statuses = [outcome[0] for outcome in outcomes]
        job_ids = [outcome[1] for outcome in outcomes if outcome[1]]
        latencies = sorted(outcome[3] for outcome in outcomes)
        count_rows = subprocess.run(
            [
                python,
                "manage.py",
                "shell",
                "--no-imports",
                "-c",
                "from jobs.models import Job; print(Job.objects.count())",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        others = [status for status in statuses if status != "completed"]
        megabytes = total_bytes / 1e6
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(f"uploads sent:          {args.uploads} from {args.users} users, {megabytes:.1f} MB")
        print(f"completed:             {statuses.count('completed')}   other: {others}")
        print(f"distinct job ids:      {len(set(job_ids))}   job rows in database: {count_rows}")
        print(f"attempts per job:      max {max((o[2] or 0) for o in outcomes)}")
        p50 = statistics.median(latencies)
        print(
            f"latency upload->done:  p50 {p50:.2f} s   p95 {p95:.2f} s   max {latencies[-1]:.2f} s"
        )
        rate = args.uploads / wall
        print(
            f"wall time:             {wall:.2f} s   {megabytes / wall:.2f} MB/s, {rate:.1f} jobs/s"
        )
        ok = statuses.count("completed") == args.uploads and len(
            set(job_ids)
        ) == args.uploads == int(count_rows)
        print(
            "RESULT:",
            "every job completed exactly once" if ok else "SOMETHING WAS LOST OR DUPLICATED",
        )
        for client in clients:
            client.close()
        sys.exit(0 if ok else 1)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", database_name],
            capture_output=True,
        )


if __name__ == "__main__":
    main()
