"""Conformance checks for planners: what any planner, labflow's or a user's, must do.

A planner is built by a *factory*, ``factory(space, objectives, seed) -> Planner``, so the checks
can give it the spaces they need::

    from labflow.testing import check_planner
    check_planner(lambda space, objectives, seed: MyPlanner(space, objectives, seed=seed))

or, one pytest test per check (as scikit-learn's ``parametrize_with_checks``)::

    @pytest.mark.parametrize("check", planner_checks(), ids=lambda c: c.__name__)
    def test_my_planner(check):
        check(my_factory)

Each check raises ``AssertionError`` with a message that says what the planner did wrong.

The checks
----------
``check_deterministic``       same seed and same history give the same suggestions
``check_state_round_trip``    ``state_dict()`` survives JSON, and a fresh planner loaded from it decides the same
``check_suggestions_valid``   suggestions lie in the space, satisfy its constraints, are distinct
``check_pending_respected``   pending experiments are not suggested again
``check_pool_mode``           with ``choices``, every suggestion is a distinct, unmeasured, non-pending row
``check_rejects_bad_data``    NaN outcomes and points outside the space raise ``ObservationError`` and change nothing
``check_constraints``         under a mixture constraint (fractions summing to 1) every suggestion satisfies it
``check_nonlinear_constraints`` under an expression, a Python function and NChooseK every suggestion satisfies them,
                              proposing freely and from a candidate library
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from labflow.errors import ObservationError
from labflow.objectives import Objective
from labflow.planners.base import Planner
from labflow.records import Candidate, Observation
from labflow.space import Categorical, Integer, Real, Space, SumConstraint

PlannerFactory = Callable[[Space, Sequence[Objective], int], Planner]

_TOL = 1e-9  # two unit-cube rows closer than this in every column are the same point


def default_space() -> Space:
    """A small mixed space: two reals (one on a log scale), an integer and a categorical."""
    return Space(
        [
            Real("temperature", 20, 200, "degC"),
            Real("concentration", 0.01, 1.0, "mol/L", log=True),
            Integer("layers", 1, 6),
            Categorical("solvent", ("water", "ethanol", "toluene")),
        ]
    )


def default_objectives() -> list[Objective]:
    return [Objective("yield_", "maximize", "percent")]


def _response(planner: Planner, params: dict[str, Any]) -> dict[str, float]:
    """A smooth synthetic response of each objective (a deterministic function of the unit-cube point)."""
    x = planner.space.encode([params])[0]
    out = {}
    for k, o in enumerate(planner.objectives):
        out[o.name] = float(50 + 20 * np.sin(3 * x + k).sum() - 10 * ((x - 0.3 - 0.2 * k) ** 2).sum())
    return out


def _feed(planner: Planner, n: int, seed: int = 0) -> list[Observation]:
    """Tell ``n`` observations of the synthetic response at points sampled from the planner's space."""
    points = planner.space.sample(n, seed=seed).to_dict("records")
    obs = [Observation(f"check-{seed}-{i}", p, _response(planner, p)) for i, p in enumerate(points)]
    planner.tell(obs)
    return obs


def _X(planner: Planner, rows: Sequence[Candidate] | pd.DataFrame) -> np.ndarray:
    params = [c.params for c in rows] if not isinstance(rows, pd.DataFrame) else rows[planner.space.names]
    return planner.space.encode(params)


def _closest(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    if len(B) == 0:
        return np.full(len(A), np.inf)
    return np.abs(A[:, None, :] - B[None, :, :]).max(axis=2).min(axis=1)


def _name(planner: Planner) -> str:
    return f"{type(planner).__name__} ({planner.name!r})"


# -- the checks ---------------------------------------------------------------------------------


def check_deterministic(factory: PlannerFactory, space: Space | None = None, objectives: Sequence[Objective] | None = None) -> None:
    """Two planners with the same seed, told the same, suggest the same (a batch of 2, twice)."""
    space, objectives = space or default_space(), list(objectives or default_objectives())
    a, b = factory(space, objectives, 11), factory(space, objectives, 11)
    for p in (a, b):
        _feed(p, 8)
    for step in range(2):
        sa, sb = a.suggest(2), b.suggest(2)
        if not sa.equals(sb):
            raise AssertionError(f"{_name(a)} is not deterministic: step {step}, same seed and history gave\n{sa}\nand\n{sb}")
        for p, s in ((a, sa), (b, sb)):
            s = s.copy()
            for name, v in pd.DataFrame([_response(p, r) for r in s.to_dict("records")]).items():
                s[name] = v.to_numpy()
            p.observe(s)


def check_state_round_trip(factory: PlannerFactory, space: Space | None = None, objectives: Sequence[Objective] | None = None) -> None:
    """``state_dict()`` is JSON-serializable; a planner loaded from it has the same hash and suggests the same."""
    space, objectives = space or default_space(), list(objectives or default_objectives())
    a = factory(space, objectives, 5)
    _feed(a, 8)
    a.suggest(1)  # let the planner build whatever it caches
    try:
        blob = json.dumps(a.state_dict())
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{_name(a)}.state_dict() is not JSON-serializable: {exc}") from exc
    b = factory(space, objectives, 99)
    b.load_state_dict(json.loads(blob))
    if b.state_hash() != a.state_hash():
        raise AssertionError(f"{_name(a)}: state hash changed across state_dict/load_state_dict")
    sa, sb = a.suggest(2), b.suggest(2)
    if not sa.equals(sb):
        raise AssertionError(f"{_name(a)}: a planner restored from state_dict suggests differently:\n{sa}\nvs\n{sb}")


def check_suggestions_valid(factory: PlannerFactory, space: Space | None = None, objectives: Sequence[Objective] | None = None) -> None:
    """Suggestions (empty history, then after data) lie in the space, satisfy its constraints and are distinct."""
    space, objectives = space or default_space(), list(objectives or default_objectives())
    p = factory(space, objectives, 3)
    for step in range(2):
        cands = p.ask(4)
        if len(cands) != 4:
            raise AssertionError(f"{_name(p)}: asked for 4 candidates, got {len(cands)}")
        for c in cands:
            p.space.coerce(c.params, where=f"{_name(p)} suggestion")  # raises SpaceError when out of the space
            broken = p.space.violations(c.params)
            if broken:
                raise AssertionError(f"{_name(p)}: suggestion {dict(c.params)} breaks {broken}")
        X = _X(p, cands)
        for i in range(1, len(X)):
            if _closest(X[i : i + 1], X[:i])[0] < _TOL:
                raise AssertionError(f"{_name(p)}: batch has a repeated point {dict(cands[i].params)}")
        if step == 0:
            _feed(p, 8)


def check_pending_respected(factory: PlannerFactory, space: Space | None = None, objectives: Sequence[Objective] | None = None) -> None:
    """With experiments pending, none of them is suggested again (before and after the model takes over)."""
    space, objectives = space or default_space(), list(objectives or default_objectives())
    p = factory(space, objectives, 4)
    for n_history in (0, 8):
        if n_history:
            _feed(p, n_history)
        busy = p.ask(2)
        more = p.ask(2, pending=busy)
        d = _closest(_X(p, more), _X(p, busy))
        if (d < _TOL).any():
            i = int(np.argmin(d))
            raise AssertionError(f"{_name(p)}: suggested pending point {dict(more[i].params)} again (history of {n_history})")


def check_pool_mode(factory: PlannerFactory, space: Space | None = None, objectives: Sequence[Objective] | None = None) -> None:
    """With ``choices``, every suggestion is a distinct row of the pool that is neither measured nor pending."""
    space, objectives = space or default_space(), list(objectives or default_objectives())
    p = factory(space, objectives, 6)
    pool = p.space.sample(40, seed=8)
    X_pool = _X(p, pool)
    busy: list[Candidate] = []
    for _ in range(4):
        picks = p.ask(2, pending=busy, choices=pool)
        X = _X(p, picks)
        if (_closest(X, X_pool) > _TOL).any():
            raise AssertionError(f"{_name(p)}: pool-mode suggestion is not one of the choices: {[dict(c.params) for c in picks]}")
        if _closest(X[1:], X[:1])[0] < _TOL:
            raise AssertionError(f"{_name(p)}: pool mode proposed the same row twice in one batch")
        seen = np.vstack([_X(p, busy) if busy else np.empty((0, p.space.dim)), p.space.encode([o.params for o in p.observations]) if p.observations else np.empty((0, p.space.dim))])
        if (_closest(X, seen) < _TOL).any():
            raise AssertionError(f"{_name(p)}: pool mode proposed a row that is already measured or pending")
        done, busy = picks[0], busy + [picks[1]]
        p.tell(Observation(done.uid, done.params, _response(p, dict(done.params))))


def check_rejects_bad_data(factory: PlannerFactory, space: Space | None = None, objectives: Sequence[Objective] | None = None) -> None:
    """NaN outcomes and points outside the space raise ``ObservationError`` naming the problem, and nothing is recorded."""
    space, objectives = space or default_space(), list(objectives or default_objectives())
    p = factory(space, objectives, 2)
    _feed(p, 3)
    before = p.state_hash()
    good = p.space.sample(1, seed=1).iloc[0].to_dict()
    obj = objectives[0].name
    nan_obs = Observation("bad-nan", good, {**_response(p, good), obj: math.nan})
    first_real = next(q for q in p.space.parameters if isinstance(q, Real))
    outside = {**good, first_real.name: first_real.high + 10 * (first_real.high - first_real.low)}
    out_obs = Observation("bad-outside", outside, _response(p, good))
    for bad, words in ((nan_obs, obj), (out_obs, first_real.name)):
        try:
            p.tell([Observation("fine", good, _response(p, good)), bad])
        except ObservationError as exc:
            if words not in str(exc):
                raise AssertionError(f"{_name(p)}: the error for {bad.uid} does not name {words!r}: {exc}") from exc
        else:
            raise AssertionError(f"{_name(p)}: accepted a bad observation ({bad.uid})")
        if p.state_hash() != before:
            raise AssertionError(f"{_name(p)}: a rejected batch of observations changed the planner's state")
    frame = pd.DataFrame([{**good, obj: math.nan}])
    try:
        p.observe(frame)
    except ObservationError:
        pass
    else:
        raise AssertionError(f"{_name(p)}: observe() accepted a row with an empty objective and no failed status")


def check_constraints(factory: PlannerFactory, space: Space | None = None, objectives: Sequence[Objective] | None = None) -> None:
    """Under a mixture constraint (three fractions summing to 1) and an inequality, every suggestion satisfies both."""
    from labflow.space import LinearConstraint

    space = Space(
        [Real("a", 0, 1), Real("b", 0, 1), Real("c", 0, 1), Real("temperature", 20, 200, "degC")],
        [SumConstraint(("a", "b", "c"), 1.0), LinearConstraint({"a": 1.0, "temperature": 0.005}, "<=", 1.2)],
    )
    objectives = list(objectives or default_objectives())
    p = factory(space, objectives, 9)
    for step in range(2):
        for c in p.ask(2):
            broken = p.space.violations(c.params)
            if broken:
                raise AssertionError(f"{_name(p)}: suggestion {dict(c.params)} breaks {broken}")
        if step == 0:
            _feed(p, 8)


def check_nonlinear_constraints(factory: PlannerFactory, space: Space | None = None, objectives: Sequence[Objective] | None = None) -> None:
    """Under a nonlinear expression, a constraint function and NChooseK (with a mixture), every suggestion satisfies them all."""
    from labflow.space import NChooseK, NonlinearConstraint

    space = Space(
        [Real("a", 0, 1), Real("b", 0, 1), Real("c", 0, 1), Real("d", 0, 1), Real("temperature", 20, 200, "degC")],
        [
            SumConstraint(("a", "b", "c", "d"), 1.0),
            NonlinearConstraint("a * temperature + 40 * b**2 <= 90"),
            NonlinearConstraint(lambda p: p["temperature"] - 150 * p["c"], "<=", 120.0, name="solubility"),
            NChooseK(("a", "b", "c", "d"), 2),
        ],
    )
    objectives = list(objectives or default_objectives())
    p = factory(space, objectives, 11)
    library = space.sample(60, seed=np.random.default_rng(3))
    wide = pd.concat([library, pd.DataFrame({"a": [0.5], "b": [0.5], "c": [0.0], "d": [0.0], "temperature": [190.0]})], ignore_index=True)
    for step in range(2):
        for c in p.ask(2):
            broken = p.space.violations(c.params)
            if broken:
                raise AssertionError(f"{_name(p)}: suggestion {dict(c.params)} breaks {broken}")
        picked = p.suggest(2, candidates=wide)
        if not p.space.feasible(picked[space.names]).all():
            raise AssertionError(f"{_name(p)}: picked infeasible library rows {picked.index.tolist()}")
        if step == 0:
            _feed(p, 8)


PLANNER_CHECKS: tuple[Callable[..., None], ...] = (
    check_deterministic,
    check_state_round_trip,
    check_suggestions_valid,
    check_pending_respected,
    check_pool_mode,
    check_rejects_bad_data,
    check_constraints,
    check_nonlinear_constraints,
)


def planner_checks() -> list[Callable[..., None]]:
    """The checks, one callable each (``check(factory)``), for ``pytest.mark.parametrize``."""
    return list(PLANNER_CHECKS)


def check_planner(
    factory: PlannerFactory,
    space: Space | None = None,
    objectives: Sequence[Objective] | None = None,
    *,
    skip: Sequence[str] = (),
) -> None:
    """Run every conformance check on planners built by ``factory(space, objectives, seed)``.

    ``space``/``objectives`` replace the default mixed space and single objective (the
    constraint check always uses its own mixture space). ``skip`` names checks to leave out
    (e.g. ``"check_pool_mode"`` for a planner that cannot pick from a pool). Raises
    ``AssertionError`` at the first failure.
    """
    for check in PLANNER_CHECKS:
        if check.__name__ in skip:
            continue
        check(factory, space, objectives)
