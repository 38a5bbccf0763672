"""The terminal view of a running campaign: a progress bar and a live table of the best so far."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labflow.campaign import CampaignState
from labflow.recipe import Recipe


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class LiveDisplay:
    """A campaign listener that renders progress and the best result so far with rich."""

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
        self._live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False) if self.enabled else None

    def _units(self, name: str) -> str:
        if name in self.recipe.space:
            return self.recipe.space[name].unit
        return next((o.unit for o in self.recipe.objectives if o.name == name), "")

    def _render(self) -> Group:
        table = Table(title="best so far", expand=False)
        names = self.recipe.space.names + [o.name for o in self.recipe.objectives]
        for n in names:
            unit = self._units(n)
            table.add_column(f"{n} [{unit}]" if unit else n, justify="right")
        s = self.state
        if s is not None and s.best is not None:
            row = {**s.best.params, **s.best.outcomes}
            table.add_row(*[_fmt(row.get(n, "")) for n in names])
        busy = ", ".join(sorted(s.busy)) if s and s.busy else "-"
        return Group(self.progress, table, f"stations busy: {busy}")

    def update(self, event: str, state: CampaignState) -> None:
        self.state = state
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
