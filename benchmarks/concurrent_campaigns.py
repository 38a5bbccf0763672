"""Many campaigns on one Prefect server: N deployed campaigns at once through 2 process workers.

Starts a real `prefect server start` (SQLite, its own PREFECT_HOME), a process work pool and two
`prefect worker start` subprocesses; deploys N recipes (instant simulated labs, the `prefect`
executor, station limits on) where every lab is shared by several campaigns, runs them all at
once, then one campaign alone on the same server, and reports:

- throughput: experiments per second of wall time from the first run requested to the last
  finished, all N together against one alone;
- the server's CPU time and peak memory (its process tree) while the N ran;
- lost and duplicated experiments (every record checked with `labflow.testing.verify_campaign`);
- station conflicts: pairs of bluesky runs of different campaigns on the same station of the
  same lab that overlap in time (must be 0: the station limits).

- how often the server found SQLite busy ("database is locked", answered 503 for the client to
  retry): the server runs with PREFECT_SERVER_LOG_RETRYABLE_ERRORS=true and its log is counted.

`--prefect-settings facility` (the default) runs the server and the clients with the settings the
facility how-to gives for a SQLite server under many campaigns (`labflow.testing.prefect`:
SQLITE_SERVER_ENV, SQLITE_CLIENT_ENV: more client retries, workers polling every 10 s, logs and
events written in larger batches); `--prefect-settings test` keeps Prefect's defaults with the test
suite's workers polling every second (what the first measurements used).

Prints a table and writes benchmarks/results/concurrent_campaigns_<database>.{json,md}.

    .venv/bin/python benchmarks/concurrent_campaigns.py [--campaigns 20] [--budget 8] [--labs 4] [--per-worker 10] [--database sqlite|postgresql]
        [--prefect-settings facility|test]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, write_results  # noqa: E402

LAB = """\
name: {name}
kind: simulated
stations: 2
landscape: {{name: branin, noise_std: {{y: 0.0}}}}
durations: {{set: 0 s, synthesize: 10 min, measure: 0 s}}
time_scale: 0
"""

RECIPE = """\
name: {name}
lab: {lab}
parameters:
  - {{name: x1, low: -5, high: 10}}
  - {{name: x2, low: 0, high: 15}}
objectives:
  - {{name: y, direction: minimize}}
planner: {{kind: sobol}}
budget: {budget}
seed: {seed}
execution: {{executor: prefect, timeout: 1 min}}
"""


class TreeSampler:
    """Samples the CPU time and resident memory of a process and its children."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.every = every
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for p in [self.root, *self.root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        return total

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(self.every):
            rss = 0
            for p in [self.root, *self.root.children(recursive=True)]:
                try:
                    rss += p.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak_rss = max(self.peak_rss, rss)

    def __enter__(self) -> TreeSampler:
        self.cpu0 = self.cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu = self.cpu_seconds() - self.cpu0


def load_average() -> float | None:
    import os

    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def deploy_and_run(folder: Path, names: list[str], pool: str, results: Path) -> tuple[list[str], list[str], float]:
    """`labflow deploy` each recipe (in this process: the same command, without a Python start-up
    per recipe), then request one flow run of each; returns the flow run ids and the errors of
    requests the server refused (after the Prefect client's own retries), and when the first run was requested."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import PrefectHTTPStatusError
    from typer.testing import CliRunner

    from labflow.cli import app

    for name in names:
        done = CliRunner().invoke(app, ["deploy", str(folder / f"{name}.yaml"), "--pool", pool, "--results", str(results),
                                        "--name", name])
        if done.exit_code != 0:
            raise SystemExit(f"labflow deploy {name} failed:\n{done.output}")
    ids, errors = [], []
    t_first = time.perf_counter()
    for name in names:
        try:
            ids.append(str(run_deployment(f"labflow-campaign/{name}", timeout=0).id))
        except PrefectHTTPStatusError as exc:  # the server refused: counted and reported, not hidden
            errors.append(f"{name}: {exc.response.status_code} {exc.response.reason_phrase}")
    return ids, errors, t_first


def wait_all(ids: list[str], timeout: float) -> dict[str, str]:
    from prefect import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            states = {i: client.read_flow_run(i).state for i in ids}
            if all(s is not None and s.is_final() for s in states.values()):
                return {i: s.name for i, s in states.items()}
            if time.monotonic() > deadline:
                return {i: (s.name if s else "?") for i, s in states.items()}
            time.sleep(0.5)


def station_runs(h5: Path) -> list[tuple[str, float, float]]:
    import h5py

    out = []
    with h5py.File(h5, "r") as f:
        lab = json.loads(f["lab"][()])["name"] if "lab" in f else "?"
        for g in f["runs"].values():
            start, stop = json.loads(g.attrs["start"]), json.loads(g.attrs["stop"])
            out.append((f"{lab}:{start.get('station')}", start["time"], stop["time"]))
    return out


def sqlite_busy(log: Path) -> int:
    """How many times the server logged a retryable SQLite lock error (each answered 503)."""
    try:
        return log.read_text(errors="replace").count("(sqlite3.OperationalError) database is locked")
    except OSError:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--campaigns", type=int, default=20)
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--labs", type=int, default=4, help="labs (2 stations each) the campaigns share")
    ap.add_argument("--per-worker", type=int, default=10, help="flow runs one worker runs at once (prefect worker --limit)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                    help="the server's database: SQLite in its PREFECT_HOME, or a throwaway PostgreSQL cluster (initdb, pg_ctl)")
    ap.add_argument("--prefect-settings", choices=("facility", "test"), default="facility",
                    help="facility: the how-to's settings for many campaigns (SQLITE_SERVER_ENV, SQLITE_CLIENT_ENV); "
                         "test: Prefect's defaults, workers polling every second")
    args = ap.parse_args()

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from labflow.testing.crash import verify_campaign
    from contextlib import ExitStack

    from labflow.testing.prefect import (
        SQLITE_CLIENT_ENV,
        SQLITE_SERVER_ENV,
        PostgresCluster,
        PrefectServer,
        PrefectWorker,
        create_process_pool,
    )

    work = Path(tempfile.mkdtemp(prefix="labflow-concurrent-"))
    (work / "configs").mkdir()
    recipes = work / "recipes"
    recipes.mkdir()
    for k in range(args.labs):
        (work / "configs" / f"lab{k}.yaml").write_text(LAB.format(name=f"shared-lab-{k}"))
    names = [f"c{i:02d}" for i in range(args.campaigns)]
    for i, name in enumerate(names):
        (recipes / f"{name}.yaml").write_text(RECIPE.format(name=name, lab=f"lab{i % args.labs}", budget=args.budget, seed=i))
    (recipes / "alone.yaml").write_text(RECIPE.format(name="alone", lab="lab0", budget=args.budget, seed=99))

    rows = []
    with ExitStack() as stack:
        url = stack.enter_context(PostgresCluster()).url if args.database == "postgresql" else None
        facility = args.prefect_settings == "facility"
        server_env = {"PREFECT_SERVER_LOG_RETRYABLE_ERRORS": "true", **(SQLITE_SERVER_ENV if facility else {})}
        server = stack.enter_context(PrefectServer(work / "server", database_url=url, env=server_env))
        client_settings = dict(SQLITE_CLIENT_ENV) if facility else {}
        stack.enter_context(temporary_settings({PREFECT_API_URL: server.api_url}))
        env = server.env(PYTHONPATH=str(ROOT), **client_settings)
        os.environ.update(client_settings)  # this process's run requests: the same client retries
        create_process_pool("bench", env)
        workers = [PrefectWorker("bench", f"w{i}", env, work, limit=args.per_worker) for i in (1, 2)]
        try:
            for label, batch in (("1 campaign alone", ["alone"]), (f"{args.campaigns} campaigns at once", names)):
                results = work / "results" / label.split()[0]
                busy_before = sqlite_busy(server.log)
                with TreeSampler(server.proc.pid) as sampler:
                    t0 = time.perf_counter()
                    ids, refused, t_requested = deploy_and_run(recipes, batch, "bench", results)
                    states = wait_all(ids, args.timeout)
                    wall = time.perf_counter() - t_requested
                checks = [verify_campaign(h5) for h5 in sorted(results.glob("*.h5"))]
                runs = [r for h5 in sorted(results.glob("*.h5")) for r in station_runs(h5)]
                owners = {}
                for h5 in sorted(results.glob("*.h5")):
                    for r in station_runs(h5):
                        owners[r] = h5.name
                conflicts = sum(1 for i, a in enumerate(runs) for b in runs[i + 1:]
                                if a[0] == b[0] and owners[a] != owners[b] and a[1] < b[2] and b[1] < a[2])
                finished = sum(c["finished"] for c in checks)
                rows.append({
                    "run": label, "database": args.database, "flow runs": len(ids), "refused": len(refused),
                    "refusals": refused[:5], "completed": sum(1 for s in states.values() if s == "Completed"),
                    "experiments": finished, "expected": len(ids) * args.budget,
                    "lost": sum(c["lost"] for c in checks),
                    "not run": max(0, len(ids) * args.budget - finished),
                    "duplicated": sum(c["duplicated"] for c in checks), "records ok": sum(1 for c in checks if c["ok"]),
                    "station conflicts": conflicts, "wall_s": wall, "experiments_per_s": finished / wall,
                    "deploy_s": t_requested - t0, "server_cpu_s": sampler.cpu, "server_peak_rss_mb": sampler.peak_rss / 2**20,
                    "prefect settings": args.prefect_settings, "sqlite busy (503)": sqlite_busy(server.log) - busy_before,
                })
                print(rows[-1], file=sys.stderr)
        finally:
            for w in workers:
                w.stop()
    rows[1]["throughput vs alone"] = rows[1]["experiments_per_s"] / rows[0]["experiments_per_s"]
    for r in rows:
        r["load average after"] = load_average()
    table = markdown_table(rows, ["run", "database", "prefect settings", "sqlite busy (503)", "flow runs", "refused", "completed", "experiments", "expected", "lost", "not run", "duplicated", "records ok",
                                  "station conflicts", "wall_s", "experiments_per_s", "throughput vs alone", "server_cpu_s",
                                  "server_peak_rss_mb"])
    table += ("\n\nlost: experiments recorded in a ledger and missing from the record (verify_campaign); not run: the "
              "budgets of started campaigns that stopped early (a failed flow run; resumable from its ledger). "
              "wall_s: from the first flow run requested to the last one final (each flow run starts a Python process "
              "that imports labflow, Prefect and torch). Server CPU and memory: the `prefect server start` process tree "
              "(its database: the `database` column; PostgreSQL's own processes not counted) while the batch was deployed and ran. Instant simulated labs, 2 stations each, shared by several campaigns; "
              f"{args.per_worker} flow runs at most per worker.")
    command = "python benchmarks/concurrent_campaigns.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    table += (" prefect settings: `facility` = the facility how-to's settings for many campaigns (SQLITE_SERVER_ENV, "
              "SQLITE_CLIENT_ENV in labflow.testing.prefect), `test` = Prefect's defaults with workers polling every second. "
              "sqlite busy (503): retryable 'database is locked' errors the server logged (each answered 503; clients retry).")
    write_results(f"concurrent_campaigns_{args.database}", {"rows": rows, "args": vars(args)}, table, command.strip())


if __name__ == "__main__":
    main()
