"""The terminal view of a running campaign: progress, stations busy or idle, last results, best so far.

:class:`LiveDisplay` is a campaign listener (``listener(event, CampaignState)``, see
:class:`labflow.campaign.Campaign`): ``labflow run`` passes ``display.update``. It keeps what
the state does not (each station's counts and since when it has been busy, the last few
results) and re-renders with rich on every event. It never touches devices or the planner.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from labflow.campaign import CampaignState
from labflow.recipe import Recipe

__all__ = ["LiveDisplay"]

LAST_RESULTS = 5


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _station_names(recipe: Recipe) -> list[str]:
    """Station names known before the campaign starts (simulated labs number them; others list them)."""
    cfg = getattr(recipe, "lab_config", None)
    stations = getattr(cfg, "stations", None)
    if isinstance(stations, int):
        return [f"station{i}" for i in range(1, stations + 1)]
    if isinstance(stations, (list, tuple)):
        return [str(getattr(s, "name", s)) for s in stations]
    return []


class LiveDisplay:
    """A campaign listener that renders progress, stations, the last results and the best so far with rich.

    Parameters
    ----------
    recipe:
        The campaign's recipe (names, units, budget, stations).
    console:
        Where to draw (default: a new rich Console on stdout).
    enabled:
        False: keep the counters but draw nothing (``--quiet``).
    """

    def __init__(self, recipe: Recipe, *, console: Console | None = None, enabled: bool = True) -> None:
        self.recipe = recipe
        self.console = console or Console()
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), console=self.console,
        )
        self.task = self.progress.add_task(recipe.name, total=recipe.budget, status="")
        self.state: CampaignState | None = None
        self.stations: dict[str, dict[str, Any]] = {}
        for name in _station_names(recipe):
            self._station(name)
        self.last: collections.deque = collections.deque(maxlen=LAST_RESULTS)
        self.number = 0
        self.lab_time = 0.0
        self._t0 = time.monotonic()
        self._live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False) if self.enabled else None

    def _station(self, name: str) -> dict[str, Any]:
        return self.stations.setdefault(name, {"since": None, "done": 0, "failed": 0, "uid": ""})

    def _units(self, name: str) -> str:
        if name in self.recipe.space:
            return self.recipe.space[name].unit
        return next((o.unit for o in self.recipe.objectives if o.name == name), "")

    def _label(self, name: str) -> str:
        """A column header: ``temperature [degC]`` (escaped: rich would read ``[degC]`` as a style)."""
        unit = self._units(name)
        return escape(f"{name} [{unit}]" if unit else name)

    # -- rendering --------------------------------------------------------------------
    def render(self) -> Group:
        """The current view (a rich renderable); what the live display shows."""
        return self._render()

    def _render(self) -> Group:
        s = self.state
        now = time.monotonic()
        stations = Table(title="stations", expand=False)
        for col in ("station", "state", "running", "for", "done", "failed"):
            stations.add_column(col, justify="right" if col in ("for", "done", "failed") else "left")
        busy = s.busy if s is not None else {}
        for name in sorted(self.stations):
            st = self.stations[name]
            cand = busy.get(name)
            if cand is not None:
                params = ", ".join(f"{k}={_fmt(v)}" for k, v in cand.params.items())
                since = _duration(now - st["since"]) if st["since"] is not None else ""
                stations.add_row(name, Text("busy", style="bold yellow"), f"{cand.uid[:8]} {params}", since, str(st["done"]), str(st["failed"]))
            else:
                stations.add_row(name, Text("idle", style="dim"), "", "", str(st["done"]), str(st["failed"]))

        names = self.recipe.space.names + [o.name for o in self.recipe.objectives]
        last = Table(title=f"last {LAST_RESULTS} results", expand=False)
        for col in ("#", "station", "status"):
            last.add_column(col)
        for n in names:
            last.add_column(self._label(n), justify="right")
        for number, r in self.last:
            status = r.status.value
            style = "green" if status == "completed" else "red"
            values = {**r.candidate.params, **r.outcomes}
            cells = [_fmt(values.get(n, "")) for n in names]
            if status != "completed" and r.reason:
                cells[-1] = r.reason if len(r.reason) <= 40 else r.reason[:37] + "..."
            last.add_row(str(number), r.station, Text(status, style=style), *[Text(c) for c in cells])

        best = Table(title="best so far", expand=False)
        for n in names:
            best.add_column(self._label(n), justify="right")
        if s is not None and s.best is not None:
            row = {**s.best.params, **s.best.outcomes}
            best.add_row(*[_fmt(row.get(n, "")) for n in names])
        footer = f"wall clock {_duration(now - self._t0)}"
        if self.lab_time:
            footer += f", lab time {_duration(self.lab_time)}"
        if s is not None and s.failed:
            footer += f", {s.failed} failed"
        if s is not None and getattr(s, "waiting", None):
            ids = ", ".join(uid[:8] for uid in s.waiting)
            footer += f"; waiting for approval: {ids} (labflow pending / approve / reject, or labflow dashboard)"
        return Group(self.progress, stations, last, best, Text(footer, style="dim"))

    # -- the listener -------------------------------------------------------------------
    def update(self, event: str, state: CampaignState) -> None:
        """Campaign listener: ``event`` is "start", "submitted", "finished" or "end"."""
        self.state = state
        now = time.monotonic()
        for name in state.busy:
            st = self._station(name)
            if st["since"] is None or st["uid"] != state.busy[name].uid:
                st["since"], st["uid"] = now, state.busy[name].uid
        for name, st in self.stations.items():
            if name not in state.busy:
                st["since"], st["uid"] = None, ""
        if event == "finished" and state.last is not None:
            r = state.last
            self.number += 1
            st = self._station(r.station)
            st["done" if r.status.value == "completed" else "failed"] += 1
            self.last.appendleft((self.number, r))
            t = getattr(r, "t_finished", None)
            if isinstance(t, float) and t == t:
                self.lab_time = max(self.lab_time, t)
        self.progress.update(self.task, completed=state.finished, status=f"{state.completed} ok, {state.failed} failed")
        if self._live is not None:
            self._live.update(self._render())

    def __enter__(self) -> LiveDisplay:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def print_summary(self, outcome: Any) -> None:
        s = outcome.state
        c = self.console
        c.print()
        c.print(f"[bold]campaign {self.recipe.name}[/] finished: {s.completed} completed, {s.failed} failed "
                f"of {s.budget} (makespan {outcome.makespan:.1f} s)", highlight=False)
        if s.best is not None:
            t = Table(title="best point")
            t.add_column("name")
            t.add_column("value", justify="right")
            t.add_column("unit")
            for k, v in {**s.best.params, **s.best.outcomes}.items():
                t.add_row(k, _fmt(v), self._units(k))
            c.print(t)
        c.print(f"provenance: {outcome.path}", highlight=False, soft_wrap=True)
        c.print(f"report:     labflow report {outcome.path}", highlight=False, soft_wrap=True)
