"""Prefect artifacts for a campaign: the best result so far, a summary, and a link to the report.

:class:`CampaignArtifacts` is a campaign listener (``listener(event, CampaignState)``). Inside
a Prefect flow run (the ``prefect`` executor runs the campaign loop as the flow's body) it
publishes, under keys derived from the campaign name:

* ``<campaign>-best`` -- a **table** artifact of the best point with units, republished each
  time the best improves (the Prefect UI keeps every version under the key);
* ``<campaign>-summary`` -- a **markdown** artifact at the end: counts, best point, failures
  by reason, the provenance file;
* ``<campaign>-report`` -- a **link** artifact at the end: to the HTML report when
  ``report_dir`` is given (the report is built then), else to the provenance file;
* ``<campaign>-approvals`` -- a **markdown** artifact each time the suggestions waiting for a
  person's approval change: each one's id and values, its form run in the Prefect UI
  (:mod:`labflow.executors.prefect_forms`) and the commands that approve, edit or reject it (the
  flow run stays Running while it waits; its stations take other approved work).

Outside a flow run it does nothing, so it can be attached to every campaign. Artifact
errors (a server that went away) are logged and never stop the campaign.
"""

from __future__ import annotations

import collections
import logging
import re
import sys
from pathlib import Path
from typing import Any

from labflow.campaign import CampaignState

__all__ = ["CampaignArtifacts", "artifact_key", "in_prefect_flow"]

log = logging.getLogger("labflow.artifacts")


def in_prefect_flow() -> bool:
    """True when called inside a running Prefect flow (where artifacts have a run to belong to)."""
    if "prefect.context" not in sys.modules:  # no flow can run before Prefect is imported
        return False
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def artifact_key(campaign: str, what: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes): ``artifact_key("Quick_Start", "best") == "quick-start-best"``."""
    base = re.sub(r"[^a-z0-9]+", "-", f"{campaign}-{what}".lower()).strip("-")
    return base or "labflow"


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


class CampaignArtifacts:
    """Publish Prefect artifacts while a campaign runs in a Prefect flow (see the module docstring).

    Parameters
    ----------
    recipe:
        The campaign's :class:`~labflow.recipe.Recipe` (name, space, objectives with units).
    path:
        The provenance file (linked at the end, and reported from when ``report_dir`` is set).
    report_dir:
        Build the HTML report here at the end and link it (takes seconds; baselines off).
    """

    def __init__(self, recipe: Any, path: str | Path | None = None, *, report_dir: str | Path | None = None) -> None:
        self.recipe = recipe
        self.path = Path(path) if path is not None else None
        self.report_dir = Path(report_dir) if report_dir is not None else None
        self.published: list[str] = []
        self._best_uid: str | None = None
        self._reasons: collections.Counter = collections.Counter()
        self.report_html: Path | None = None

    def _units(self, name: str) -> str:
        if name in self.recipe.space:
            return self.recipe.space[name].unit
        return next((o.unit for o in self.recipe.objectives if o.name == name), "")

    def __call__(self, event: str, state: CampaignState) -> None:
        if event == "finished" and state.last is not None and state.last.status.value != "completed":
            self._reasons[(state.last.reason or "unknown").split("\n")[0][:120]] += 1
        if not in_prefect_flow():
            return
        try:
            if event == "finished" and state.best is not None and state.best.uid != self._best_uid:
                self._best_uid = state.best.uid
                self._publish_best(state)
            elif event == "end":
                self._publish_end(state)
            elif event == "waiting":
                self._publish_waiting(state)
        except Exception as exc:  # noqa: BLE001 - artifacts are a view; the campaign goes on
            log.warning("could not publish Prefect artifacts: %s: %s", type(exc).__name__, exc)

    # -- artifacts -----------------------------------------------------------------------
    def _best_rows(self, state: CampaignState) -> list[dict[str, str]]:
        b = state.best
        assert b is not None
        return [{"name": k, "value": _fmt(v), "unit": self._units(k)} for k, v in {**b.params, **b.outcomes}.items()]

    def _publish_best(self, state: CampaignState) -> None:
        from prefect.artifacts import create_table_artifact

        key = artifact_key(self.recipe.name, "best")
        create_table_artifact(
            self._best_rows(state),
            key=key,
            description=f"Best {self.recipe.objectives[0].name} after {state.finished} of {state.budget} experiments "
                        f"(experiment {state.best.uid[:8]})",
        )
        self.published.append(key)

    def _publish_waiting(self, state: CampaignState) -> None:
        from prefect.artifacts import create_markdown_artifact

        where = str(self.path.with_suffix(".labflow")) if self.path is not None else "CAMPAIGN"
        lines = [f"# Waiting for approval: {len(state.waiting)}", ""]
        if state.waiting:
            names = list(self.recipe.space.names)
            lines += ["| id | " + " | ".join(f"{n} [{self._units(n)}]" if self._units(n) else n for n in names) + " |",
                      "| --- |" + " ---: |" * len(names)]
            for uid, c in state.waiting.items():
                lines.append(f"| `{uid[:8]}` | " + " | ".join(_fmt(c.params.get(n, "")) for n in names) + " |")
            first = next(iter(state.waiting))[:8]
            lines += ["", f"Act in this UI: each suggestion has a paused flow run `approve-{self.recipe.name}-<id>` (a subflow run of "
                          "this campaign's flow run); its **Resume** button opens a form to approve, edit or reject it.",
                      "", "Or from a shell (the act is recorded with your login name):", "",
                      f"    labflow approve {where} {first}", f"    labflow approve {where} {first} --edit {names[0]}=VALUE",
                      f"    labflow reject {where} {first} --why '...'", "", "or in the lab dashboard: `labflow dashboard`."]
        else:
            lines.append("Nothing waits.")
        key = artifact_key(self.recipe.name, "approvals")
        create_markdown_artifact("\n".join(lines), key=key, description=f"suggestions of {self.recipe.name} waiting for a person")
        self.published.append(key)

    def _publish_end(self, state: CampaignState) -> None:
        from prefect.artifacts import create_link_artifact, create_markdown_artifact

        lines = [f"# Campaign `{self.recipe.name}`", "",
                 f"{state.completed} completed, {state.failed} failed of a budget of {state.budget}.", ""]
        if state.best is not None:
            lines += ["## Best point", "", "| name | value | unit |", "| --- | ---: | --- |"]
            lines += [f"| {r['name']} | {r['value']} | {r['unit']} |" for r in self._best_rows(state)]
            lines.append("")
        if self._reasons:
            lines += ["## Failures", "", "| reason | count |", "| --- | ---: |"]
            lines += [f"| {r.replace('|', '/')} | {n} |" for r, n in self._reasons.most_common(10)]
            lines.append("")
        if self.path is not None:
            lines += [f"Provenance file: `{self.path}`. Draw it with `labflow report {self.path}`."]
        key = artifact_key(self.recipe.name, "summary")
        create_markdown_artifact("\n".join(lines), key=key, description=f"labflow campaign {self.recipe.name}")
        self.published.append(key)
        link = link_text = None
        if self.report_dir is not None and self.path is not None:
            from labflow.report import build_report

            rep = build_report(self.path, self.report_dir, baselines=False)
            self.report_html = rep.html
            link, link_text = rep.html.resolve().as_uri(), f"report of {self.recipe.name}"
        elif self.path is not None:
            link, link_text = self.path.resolve().as_uri(), f"provenance file of {self.recipe.name}"
        if link is not None:
            key = artifact_key(self.recipe.name, "report")
            create_link_artifact(link, link_text=link_text, key=key, description="open from the machine that ran the campaign")
            self.published.append(key)
