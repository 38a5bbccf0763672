"""Asking the planner, guarded: the planner cannot wedge the loop.

:meth:`Proposer.ask` calls ``planner.ask(n, pending)`` (with the pool's ``choices`` for a pool
lab). If the planner raises, or proposes a point outside the space, seeded random candidates
tagged ``generator="fallback"`` stand in. A candidate the failure memory abandoned is asked for
again (up to three times), then replaced by a fallback. With ``fidelity`` (a multi-fidelity
planner, a free station of that fidelity), every candidate, fallbacks included, is at that
fidelity. :meth:`Proposer.decision` gives the
planner's account of the suggestion (``last_decision``) as plain JSON for the record.

With a planning ``site`` (:class:`PlanningSite`, e.g. the recipe's ``planner.where``:
:class:`labflow.executors.remote_planning.RemotePlanning`), ``site.ask(planner, ...)`` stands in
for ``planner.ask(...)`` and the decision records where it was computed (``where``). A site that
gets no answer raises :class:`~labflow.errors.PlanningUnavailable`, which is not guarded: no
random point stands in for a planner that could not be reached.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from labflow.campaign.policy import FailureMemory
from labflow.errors import PlanningUnavailable, SpaceError
from labflow.planners.base import Planner
from labflow.records import Candidate, new_uid

__all__ = ["PlanningSite", "Proposer", "plain_json"]

log = logging.getLogger("labflow.campaign")


class PlanningSite(Protocol):
    """Where the planner's ``ask`` is computed when not in this process.

    ``ask`` returns what ``planner.ask(n, pending, **given)`` would, and leaves ``planner`` in
    the state a local ask would; ``last_where`` (plain JSON) says where the last answer came from.
    """

    last_where: dict[str, Any] | None

    def ask(self, planner: Planner, n: int, pending: list[Candidate], **given: Any) -> list[Candidate]: ...


class Proposer:
    """Asks ``planner`` for candidates, never failing and never proposing an abandoned point.

    ``choices``: for pool labs, a callable giving the points still available (a planner that
    fails on a pool raises: a random point off the pool would not exist). ``fallbacks`` counts
    the random candidates that stood in. ``site``: where ``planner.ask`` is computed (None: here).
    """

    def __init__(self, planner: Planner, memory: FailureMemory, choices: Callable[[], Any] | None = None,
                 site: PlanningSite | None = None) -> None:
        self.planner = planner
        self.memory = memory
        self.choices = choices
        self.site = site
        self.fallbacks = 0
        self._fallback_reason = ""

    def ask(self, n: int, pending: list[Candidate], fidelity: str | None = None) -> list[Candidate]:
        """Up to ``n`` candidates (fewer when a pool runs out), none among ``pending``'s points if the planner can help it;
        with ``fidelity``, all at that fidelity (the planner must have a ``fidelity_parameter``)."""
        choices = self.choices() if self.choices is not None else None
        if choices is not None:
            n = min(n, len(choices))
            if n == 0:
                return []
        candidates = self._propose(n, pending, choices, fidelity)
        for _ in range(3):  # abandoned candidates (failed twice for the same reason) are never proposed again
            bad = [c for c in candidates if self.memory.is_abandoned(c.params)]
            if not bad:
                break
            avoid = pending + [Candidate(uid=f"abandoned-{i}", params=p) for i, p in enumerate(self.memory.abandoned_points())]
            keep = [c for c in candidates if c not in bad]
            candidates = keep + self._propose(len(bad), avoid + keep, choices, fidelity)
        bad = [c for c in candidates if self.memory.is_abandoned(c.params)]
        if bad:  # the planner insists: run something else rather than stall
            log.warning("planner %s keeps proposing abandoned candidates; using random fallbacks", self.planner.name)
            candidates = [c for c in candidates if c not in bad] + self._fallback(len(bad), fidelity)
        return candidates

    def decision(self, candidates: Sequence[Candidate]) -> dict[str, Any]:
        """The planner's account of this suggestion (``last_decision``), as plain JSON."""
        generators = {c.generator for c in candidates}
        if "fallback" in generators and self._fallback_reason:
            decision: dict[str, Any] = {"generator": "fallback", "reason": self._fallback_reason}
        else:
            decision = dict(getattr(self.planner, "last_decision", None) or {})
            decision.setdefault("generator", candidates[0].generator if candidates else "")
        if self.site is not None and self.site.last_where is not None:
            decision["where"] = dict(self.site.last_where)  # computed on another machine, or here after it failed
        self._fallback_reason = ""
        return plain_json(decision)

    def _propose(self, n: int, pending: list[Candidate], choices: Any, fidelity: str | None = None) -> list[Candidate]:
        """planner.ask, guarded: an exception or an out-of-space point gives seeded random fallbacks."""
        given: dict[str, Any] = {} if fidelity is None else {"fidelity": fidelity}  # single-fidelity calls stay as they were
        try:
            if choices is not None:
                given["choices"] = choices
            got = self.planner.ask(n, pending, **given) if self.site is None else self.site.ask(self.planner, n, pending, **given)
        except PlanningUnavailable:
            raise  # no answer from the planning machine: the campaign stops, it does not plan at random
        except Exception as exc:  # noqa: BLE001 - the planner must not wedge the loop (P14); logged and recorded
            if choices is not None:
                raise
            log.warning("planner %s failed to propose (%s: %s); using random fallback candidates", self.planner.name, type(exc).__name__, exc)
            self._fallback_reason = f"the planner raised {type(exc).__name__}: {exc}"
            return self._fallback(n, fidelity)
        out = []
        for c in got:
            try:
                self.planner.space.coerce(c.params)
                out.append(c)
            except (SpaceError, KeyError, ValueError, TypeError):
                log.warning("planner %s proposed a point outside the space (%s); using a fallback", self.planner.name, c)
                self._fallback_reason = f"the planner proposed a point outside the space: {c}"
                out.extend(self._fallback(1, fidelity))
        return out

    def _fallback(self, n: int, fidelity: str | None = None) -> list[Candidate]:
        space = self.planner.space
        rng = np.random.default_rng([int(self.planner.seed), int(self.planner.state_summary().get("asked", 0)), 7919])
        X = rng.random((n, space.dim))
        if space.constraints:
            X = space.repair(space.snap(X))
        frame = space.decode(X)
        if fidelity is not None:  # a random point, at the fidelity of the free station it is for
            frame[self.planner.fidelity_parameter] = fidelity  # type: ignore[attr-defined]
        self.fallbacks += n
        return [Candidate(uid=new_uid(), params={k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()},
                          planner=self.planner.name, generator="fallback") for row in frame.to_dict("records")]


def plain_json(obj: Any) -> Any:
    """``obj`` with numpy scalars made plain, tuples made lists and non-finite floats made None
    (the ledger takes strict JSON only)."""
    if isinstance(obj, Mapping):
        return {str(k): plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)
