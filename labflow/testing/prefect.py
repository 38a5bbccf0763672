"""Real Prefect servers, workers and PostgreSQL clusters as subprocesses on loopback, for tests
and benchmarks of deployed campaigns (``tests/test_deploy.py``, ``benchmarks/concurrent_campaigns.py``).

Nothing here is a double: :class:`PrefectServer` runs ``prefect server start``,
:class:`PrefectWorker` runs ``prefect worker start --type process``, :class:`PostgresCluster`
runs ``initdb`` and ``pg_ctl`` in a temporary folder. Each keeps its output in a log file and
says what failed with the log's tail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["SQLITE_CLIENT_ENV", "SQLITE_SERVER_ENV", "PostgresCluster", "PrefectServer", "PrefectWorker", "create_process_pool",
           "free_port", "kill_tree", "postgres_binaries", "prefect_env"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prefect_env(api_url: str, home: str | os.PathLike[str], **extra: str) -> dict[str, str]:
    """This process's environment for a Prefect client or worker of the server at ``api_url``:
    its own ``PREFECT_HOME``, telemetry off, workers polling every second."""
    env = dict(os.environ)
    env.update({
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(home),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "0",
        "PREFECT_LOGGING_LEVEL": env.get("PREFECT_LOGGING_LEVEL", "WARNING"),
    })
    env.pop("PREFECT_PROFILE", None)
    env.update(extra)
    return env


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError as exc:
        return f"(no log: {exc})"


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to process ``pid`` and every descendant (a process worker starts each flow run
    in a session of its own, so a process-group kill would miss it). Returns the pids signalled."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    sent = []
    for p in procs:
        try:
            p.send_signal(sig)
            sent.append(p.pid)
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(procs, timeout=10)
    return sent


class PrefectServer:
    """``prefect server start`` on 127.0.0.1 with its own ``PREFECT_HOME`` (SQLite there), or on
    PostgreSQL when ``database_url`` is given (``postgresql+asyncpg://...``). A context manager."""

    def __init__(self, home: str | os.PathLike[str], *, port: int | None = None, database_url: str | None = None,
                 startup_timeout: float = 180.0, env: Mapping[str, str] | None = None, ui: bool = False) -> None:
        """``ui``: serve the Prefect UI too (at ``http://127.0.0.1:PORT/``), for tests in a browser."""
        self.home = Path(home)
        self.ui = ui
        self.port = port or free_port()
        self.database_url = database_url
        self.startup_timeout = startup_timeout
        self.extra_env = dict(env or {})
        self.log = self.home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a client of this server."""
        return prefect_env(self.api_url, self.home, **extra)

    def start(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        ui = {"PREFECT_UI_ENABLED": "true", "PREFECT_UI_API_URL": self.api_url} if self.ui else {"PREFECT_UI_ENABLED": "false"}
        env = prefect_env(self.api_url, self.home, **ui, **self.extra_env)
        env.pop("PREFECT_API_URL")
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        else:
            env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port),
               *([] if self.ui else ["--no-ui"]), "--analytics-off"]
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server start exited with {self.proc.returncode}:\n{_tail(self.log)}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prefect server did not answer on {self.api_url} within {self.startup_timeout:g} s:\n{_tail(self.log)}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill_tree(self.proc.pid)
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def create_process_pool(name: str, env: Mapping[str, str], *, timeout: float = 120.0) -> None:
    """``prefect work-pool create NAME --type process`` (raises with its output when it fails)."""
    done = subprocess.run([sys.executable, "-m", "prefect", "work-pool", "create", name, "--type", "process"], env=dict(env),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"prefect work-pool create {name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


class PrefectWorker:
    """``prefect worker start --pool POOL --type process --name NAME`` in a subprocess; each flow
    run it takes runs in a subprocess of its own. ``kill()`` kills the worker and its flow runs at
    once (a machine that dies); ``stop()`` asks it to stop (SIGTERM), then kills what is left."""

    def __init__(self, pool: str, name: str, env: Mapping[str, str], log_dir: str | os.PathLike[str], *, limit: int | None = None) -> None:
        self.pool, self.name = pool, name
        self.log = Path(log_dir) / f"worker-{name}.log"
        cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--name", name]
        if limit is not None:
            cmd += ["--limit", str(limit)]
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen(cmd, env=dict(env), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> list[int]:
        """SIGKILL the worker and every process under it (its flow runs): nothing gets to clean up."""
        return kill_tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        kill_tree(self.proc.pid)

    def output(self) -> str:
        return _tail(self.log)


def postgres_binaries() -> dict[str, str] | None:
    """Paths of ``initdb`` and ``pg_ctl`` (on PATH, else /usr/local/bin or /usr/lib/postgresql/*/bin), or None."""
    found: dict[str, str] = {}
    extra = [Path("/usr/local/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
    for tool in ("initdb", "pg_ctl"):
        path = shutil.which(tool) or next((str(d / tool) for d in extra if (d / tool).is_file()), None)
        if path is None:
            return None
        found[tool] = path
    return found


class PostgresCluster:
    """A throwaway PostgreSQL cluster: ``initdb`` in a temporary folder, ``pg_ctl start`` on a free
    port of 127.0.0.1 (trust authentication, loopback only), a database ``prefect``; ``stop()``
    stops it and removes the folder. PostgreSQL refuses to run as root: as root, the cluster runs
    as the ``postgres`` user (or ``nobody``) in a folder it owns."""

    def __init__(self, *, port: int | None = None, database: str = "prefect") -> None:
        tools = postgres_binaries()
        if tools is None:
            raise FileNotFoundError("PostgreSQL's initdb and pg_ctl are not installed (looked on PATH, /usr/local/bin, /usr/lib/postgresql)")
        self.tools = tools
        self.port = port or free_port()
        self.database = database
        self.user: str | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(name)
                    self.user = name
                    break
                except KeyError:
                    continue
        self.root = Path(tempfile.mkdtemp(prefix="labflow-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.started = False

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Prefect takes (``PREFECT_API_DATABASE_CONNECTION_URL``)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, args: list[str], timeout: float = 120.0) -> None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, user=self.user, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{_tail(self.log)}")

    def start(self) -> PostgresCluster:
        self._run([self.tools["initdb"], "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run([self.tools["pg_ctl"], "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"])
        self.started = True
        self._create_database()
        return self

    def _create_database(self) -> None:
        import asyncio

        import asyncpg

        async def create() -> None:
            conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres", database="postgres", timeout=30)
            try:
                await conn.execute(f'CREATE DATABASE "{self.database}"')
            finally:
                await conn.close()

        asyncio.run(create())

    def stop(self) -> None:
        try:
            if self.started:
                self._run([self.tools["pg_ctl"], "-D", str(self.data), "-m", "fast", "-w", "stop"], timeout=60)
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()


#: Environment of a `prefect server start` on SQLite that serves many campaigns at once (what each
#: does: docs/how-to/run-a-facility-server-on-postgresql.md). Fewer, larger write transactions:
#: the event persister inserts up to 200 events at a time, every 5 s at the latest.
SQLITE_SERVER_ENV: dict[str, str] = {
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "5",
}

#: Environment of the workers (and so of their flow runs) and other clients of such a server:
#: a request the server answers 503 (SQLite busy) is retried up to 10 times with exponential
#: backoff instead of 5; workers poll every 10 s (each poll writes the pool's and deployments'
#: last-polled time); logs go to the API in batches every 10 s instead of 2 s.
SQLITE_CLIENT_ENV: dict[str, str] = {
    "PREFECT_CLIENT_MAX_RETRIES": "10",
    "PREFECT_WORKER_QUERY_SECONDS": "10",
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "10",
}
