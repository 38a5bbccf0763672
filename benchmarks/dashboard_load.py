"""How long the lab dashboard's page takes to load with 10 campaigns of 200 experiments each.

Ten campaigns (simulated Branin lab, two stations, Sobol planner, virtual time; not timed) are
written into one folder, then the dashboard (``labflow.dashboard.create_app``) is served by uvicorn
on loopback and measured three ways:

* ``server, cold``: the first ``GET /`` -- every ledger read from its start (the dashboard follows
  each ledger incrementally afterwards);
* ``server, warm``: later ``GET /`` and ``GET /fragment`` (what the page's 3-second refresh asks);
* ``browser``: headless chromium (Playwright, ``/usr/bin/chromium``) opening the page after login
  until the load event and every figure drawn -- first with the figures not yet drawn (each
  campaign's best-so-far figure is drawn once, then cached until a new result arrives), then again.

    .venv/bin/python benchmarks/dashboard_load.py [--campaigns 10] [--n 200]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, write_results  # noqa: E402

LAB = """
name: bench-lab
kind: simulated
stations: 2
landscape: {name: branin}
"""

RECIPE = """
name: bench{i:02d}
lab: lab.yaml
parameters:
  - {{name: x1, low: -5, high: 10}}
  - {{name: x2, low: 0, high: 15}}
objectives:
  - {{name: y, direction: minimize}}
planner: {{kind: sobol}}
budget: {n}
seed: {i}
execution: {{executor: virtual}}
"""


def make_campaigns(folder: Path, count: int, n: int) -> float:
    from labflow.launch import run_recipe
    from labflow.recipe import load_recipe

    (folder / "lab.yaml").write_text(textwrap.dedent(LAB))
    t0 = time.perf_counter()
    for i in range(count):
        p = folder / f"recipe{i:02d}.yaml"
        p.write_text(textwrap.dedent(RECIPE.format(i=i, n=n)))
        run_recipe(load_recipe(p), folder / "runs", handle_signals=False, new=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--n", type=int, default=200, help="experiments per campaign")
    parser.add_argument("--repeat", type=int, default=5, help="warm measurements")
    parser.add_argument("--folder", type=Path, default=None, help="measure the campaigns already in this folder (made by an earlier run)")
    args = parser.parse_args()
    if args.folder is not None:
        made, runs = float("nan"), args.folder
    else:
        work = Path(tempfile.mkdtemp(prefix="labflow-dashboard-bench-"))
        made = make_campaigns(work, args.campaigns, args.n)
        runs = work / "runs"
    ledger_mb = sum(p.stat().st_size for p in runs.glob("*.labflow/ledger.lfl")) / 1e6

    import uvicorn

    from labflow.dashboard import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(runs), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    class Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # the login's redirect to / is the cold load: measure it apart
            return None

    login = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(), Stay())
    try:
        login.open(urllib.request.Request(url + "/login", data=b"user=bench", method="POST"))
    except urllib.error.HTTPError as exc:
        if exc.code != 303:
            raise
    cookies = next(h for h in login.handlers if isinstance(h, urllib.request.HTTPCookieProcessor)).cookiejar
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))

    def get(path: str) -> tuple[float, int]:
        t = time.perf_counter()
        body = opener.open(url + path).read()
        return time.perf_counter() - t, len(body)

    rows = []
    cold, size = get("/")
    rows.append({"what": "server, cold: GET / (every ledger read)", "seconds": cold, "bytes": size})
    warm = [get("/")[0] for _ in range(args.repeat)]
    rows.append({"what": f"server, warm: GET / (median of {args.repeat})", "seconds": statistics.median(warm), "bytes": size})
    frag = [get("/fragment") for _ in range(args.repeat)]
    rows.append({"what": f"server, warm: GET /fragment (median of {args.repeat})", "seconds": statistics.median(f[0] for f in frag),
                 "bytes": frag[0][1]})
    chromium = Path("/usr/bin/chromium")
    if chromium.is_file():
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(url + "/login")
            page.fill("#user", "bench")
            page.click("#login")
            page.wait_for_load_state("domcontentloaded")
            all_drawn = "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
            for label in ("browser: first visit (figures drawn for the first time)", "browser: next visit (figures cached)"):
                t = time.perf_counter()
                page.goto(url + "/", wait_until="domcontentloaded")
                shown = time.perf_counter() - t
                page.evaluate("Array.from(document.images).forEach(i => i.loading = 'eager')")  # lazy images below the fold too
                page.wait_for_function(all_drawn, timeout=600_000)
                rows.append({"what": label + ": campaigns shown", "seconds": shown, "bytes": len(page.content())})
                rows.append({"what": label + ": every figure drawn", "seconds": time.perf_counter() - t,
                             "figures": page.locator("img.figure").count()})
            browser.close()
    else:
        rows.append({"what": "browser: skipped (no /usr/bin/chromium)", "seconds": float("nan"), "bytes": 0})
    server.should_exit = True
    thread.join(10)
    table = markdown_table(rows, ["what", "seconds", "bytes", "figures"])
    made_text = f"made in {made:.0f} s" if made == made else f"made earlier by this script (--folder {args.folder.name})"
    table += (f"\n\n{len(list(runs.glob('*.labflow')))} campaigns ({ledger_mb:.1f} MB of ledgers), {made_text} "
              "(virtual time, not timed above). Times are wall-clock on a shared machine.")
    write_results("dashboard_load", {"campaigns": args.campaigns, "experiments": args.n, "ledger_mb": ledger_mb, "rows": rows}, table,
                  f"python benchmarks/dashboard_load.py --campaigns {args.campaigns} --n {args.n}")


if __name__ == "__main__":
    main()
