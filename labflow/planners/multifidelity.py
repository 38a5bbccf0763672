"""A cost-aware multi-fidelity planner: cheap simulations and expensive experiments in one campaign.

Theory of operation
-------------------
A campaign can often measure the same property two ways: a cheap, biased one (a simulation, a
quick screening measurement) and the expensive one that counts (the real experiment). Each is
a :class:`Fidelity` with a cost (any unit, the same for all). The planner adds a categorical
parameter (``fidelity`` by default) to the space, so every suggestion says which fidelity to
run and every observation says which one produced it; nothing else in labflow needs to know.

Internally the fidelity becomes one number ``s`` in ``[0, 1]`` (the cheapest 0, the target 1,
the others evenly spaced by cost unless ``Fidelity.value`` says otherwise), and one
``SingleTaskMultiFidelityGP`` learns the objective over (parameters, ``s``): its kernel
correlates fidelities, so cheap results inform the expensive prediction.

The acquisition is the multi-fidelity knowledge gradient (``qMultiFidelityKnowledgeGradient``):
the expected gain in the best predicted *target-fidelity* value from one more measurement,
divided by that measurement's cost (``InverseCostWeightedUtility``). It is maximized once per
fidelity with the fidelity fixed (as ``optimize_acqf_mixed`` does) and the best value per cost
wins, so a cheap measurement is chosen while it is informative enough to be worth it.

The initial design takes the fidelities in turn (cheapest first); ``best()`` and
:meth:`MultiFidelityPlanner.recommend` speak of the target fidelity only. Sample-fault
feasibility is not modelled here (the knowledge gradient is not a log-acquisition).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from labflow.errors import SpaceError
from labflow.planners import _acquisition as acqf
from labflow.planners import _models as models
from labflow.planners.bayesian import BayesianPlanner, _nearest_free, _too_close
from labflow.records import Candidate, Observation
from labflow.space import Categorical, Space


@dataclass(frozen=True)
class Fidelity:
    """One way to measure the objectives: a ``name`` and a ``cost`` per experiment (any unit, the same for all).

    ``value`` places it on the model's fidelity axis in ``[0, 1]`` (1 = the target); by default
    fidelities are evenly spaced in order of cost.
    """

    name: str
    cost: float
    value: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.cost, (int, float)) and self.cost > 0):
            raise SpaceError(f"fidelity {self.name!r}: cost must be a positive number, got {self.cost!r}")
        if self.value is not None and not 0.0 <= float(self.value) <= 1.0:
            raise SpaceError(f"fidelity {self.name!r}: value must lie in [0, 1], got {self.value}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cost": self.cost, "value": self.value}


class MultiFidelityPlanner(BayesianPlanner):
    """Multi-fidelity Bayesian optimization with a cost-aware knowledge gradient.

    Parameters
    ----------
    space, objectives, seed:
        As for :class:`~labflow.planners.bayesian.BayesianPlanner` (one objective).
    fidelities:
        Two or more :class:`Fidelity`; the most expensive is the target unless ``target`` names another.
    target:
        Name of the fidelity whose result counts.
    fidelity_parameter:
        Name of the categorical parameter added to the space (the column that says which fidelity to run).
    fixed_cost:
        Cost added to every experiment (set-up time), which makes cheap fidelities relatively less cheap.
    acquisition:
        ``"cwei"`` (default): cost-weighted log expected improvement, cheap, scores pools;
        ``"kg"``: the multi-fidelity knowledge gradient (several times slower; see the decision record);
        ``"handover"``: *where* by noisy expected improvement at the target fidelity, *which fidelity*
        by how much a measurement there would tell about the target per unit cost (decision 0009):
        the cheap fidelity while it still has something to say at that point, then the target.
    num_fantasies:
        Fantasies of the knowledge gradient (more: smoother, slower).
    idle_stations:
        ``"wait"`` (default): a free station waits while the queued candidates need stations of
        another fidelity. ``"fill"``: the campaign asks this planner for a candidate at the free
        station's fidelity, so no station idles (decision 0009); over 10 seeds this spent the
        budget on cheap fidelities and reached the target later. ``"worth"`` (hand-over only): the
        campaign asks as with ``fill``, but the planner proposes for the free station only where
        its own hand-over rule would choose that fidelity at the chosen point (the measurement
        tells more about the target per unit cost than one at the target fidelity would); else
        it proposes nothing and the station waits.
    **kwargs:
        Passed to :class:`BayesianPlanner` (``n_initial``, ``num_restarts``, ``raw_samples``, ...).
    """

    name: ClassVar[str] = "multifidelity"

    def __init__(
        self,
        space: Space,
        objectives: Any,
        seed: int = 0,
        *,
        fidelities: Sequence[Fidelity],
        target: str | None = None,
        fidelity_parameter: str = "fidelity",
        fixed_cost: float = 0.0,
        acquisition: str = "cwei",
        num_fantasies: int = 8,
        idle_stations: str = "wait",
        **kwargs: Any,
    ) -> None:
        fidelities = [f if isinstance(f, Fidelity) else Fidelity(**f) for f in fidelities]
        if len(fidelities) < 2:
            raise SpaceError("a multi-fidelity planner needs at least two fidelities")
        names = [f.name for f in fidelities]
        if len(set(names)) != len(names):
            raise SpaceError(f"fidelity names must be unique, got {names}")
        if fidelity_parameter in space:
            raise SpaceError(f"the space already has a parameter {fidelity_parameter!r}", hint="pass fidelity_parameter='...'")
        by_cost = sorted(fidelities, key=lambda f: f.cost)
        self.target = target if target is not None else by_cost[-1].name
        if self.target not in names:
            raise SpaceError(f"target fidelity {self.target!r} is not one of {names}")
        self.fidelities = by_cost
        self.fidelity_parameter = fidelity_parameter
        self.fixed_cost = float(fixed_cost)
        if acquisition not in ("cwei", "kg", "handover"):
            raise ValueError("acquisition must be 'cwei' (cost-weighted improvement), 'kg' (knowledge gradient) or "
                             f"'handover' (where by improvement at the target, which fidelity by information per cost), got {acquisition!r}")
        self.num_fantasies = int(num_fantasies)
        if idle_stations not in ("wait", "fill", "worth"):
            raise ValueError("idle_stations must be 'wait', 'fill' (keep free stations of other fidelities busy) or 'worth' "
                             f"(only when the hand-over rule would choose their fidelity), got {idle_stations!r}")
        if idle_stations == "worth" and acquisition != "handover":
            raise ValueError(f"idle_stations='worth' weighs fidelities by the hand-over rule: it needs acquisition='handover', got {acquisition!r}")
        self.idle_stations = idle_stations
        # positions on the model's fidelity axis: target at 1, others evenly spaced by cost
        others = [f for f in by_cost if f.name != self.target]
        self._value = {self.target: 1.0}
        for i, f in enumerate(others):
            self._value[f.name] = float(f.value) if f.value is not None else i / len(others)
        self.design_space = space
        full = Space([*space.parameters, Categorical(fidelity_parameter, tuple(f.name for f in by_cost))], [*space.constraints, *space.nonlinear])
        kwargs.setdefault("feasibility", False)
        if acquisition == "kg":  # the knowledge gradient is costly to evaluate: a lighter search
            kwargs.setdefault("num_restarts", 2)
            kwargs.setdefault("raw_samples", 128)
            kwargs.setdefault("maxiter", 50)
        super().__init__(full, objectives, seed, **kwargs)
        self.acquisition = acquisition  # the base class sets its own choice; this planner has its own two
        if len(self.objectives) != 1:
            raise SpaceError("the multi-fidelity planner optimizes one objective", hint="use BayesianPlanner for several")
        self._d0 = space.dim
        self._cost = {f.name: f.cost for f in fidelities}

    # -- configuration ----------------------------------------------------------------
    @property
    def acquisition_name(self) -> str:
        return {"kg": "qMFKG", "handover": "TargetLogEI+InfoPerCost"}.get(self.acquisition, "CostWeightedLogEI")

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out.update(
            {
                "model": "SingleTaskMultiFidelityGP(Matern-5/2 x fidelity kernel, Standardize)",
                "fidelities": [{**f.to_dict(), "value": self._value[f.name]} for f in self.fidelities],
                "target": self.target,
                "fidelity_parameter": self.fidelity_parameter,
                "fixed_cost": self.fixed_cost,
                "acquisition": self.acquisition_name,
                "num_fantasies": self.num_fantasies,
                "idle_stations": self.idle_stations,
            }
        )
        return out

    def cost(self, fidelity: str) -> float:
        """The cost of one experiment at ``fidelity`` (``fixed_cost`` included)."""
        return self._cost[fidelity] + self.fixed_cost

    def total_cost(self) -> float:
        """What the observations so far cost, failures included."""
        return float(sum(self.cost(o.params[self.fidelity_parameter]) for o in self._observations))

    def best(self) -> Observation | None:
        """The best completed observation at the target fidelity (None before any)."""
        done = [o for o in self.completed() if o.params[self.fidelity_parameter] == self.target]
        if not done:
            return None
        obj = self.objectives[0]
        return max(done, key=lambda o: obj.sign * o.outcomes[obj.name])

    def recommend(self) -> dict[str, Any]:
        """The point the model expects to be best at the target fidelity (measured or not), values in declared units."""
        from botorch.acquisition import PosteriorMean
        from botorch.acquisition.fixed_feature import FixedFeatureAcquisitionFunction

        fitted = self._fit()
        pm = FixedFeatureAcquisitionFunction(PosteriorMean(fitted["objective"]), self._d0 + 1, [self._d0], [1.0])
        ineq, eq = self._unit_constraints()
        with models.seeded(self.seed, self._asked, 11):
            x, _ = acqf.optimize(pm, self._d0, 1, num_restarts=self.num_restarts, raw_samples=self.raw_samples,
                                 inequality_constraints=ineq, equality_constraints=eq)
        X = self._from_model(np.c_[x, np.ones(1)])
        X = self._repair(self.space.snap(X))
        row = self.space.decode(X).iloc[0].to_dict()
        row.pop(self.fidelity_parameter)
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}

    # -- notebooks and files ------------------------------------------------------------------
    def _build_space(self) -> Space:
        return self.design_space

    def _candidate_rows(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """A library without a fidelity column is offered at every fidelity (each row once per fidelity, index kept)."""
        if self.fidelity_parameter in candidates.columns:
            return candidates
        k = len(self.fidelities)
        out = candidates.iloc[np.repeat(np.arange(len(candidates)), k)].copy()
        out[self.fidelity_parameter] = [f.name for f in self.fidelities] * len(candidates)
        return out

    def _prediction_rows(self, points: pd.DataFrame) -> pd.DataFrame:
        """Predictions are at the target fidelity unless ``points`` say otherwise."""
        if self.fidelity_parameter in points.columns:
            return points
        return points.assign(**{self.fidelity_parameter: self.target})

    def _model_columns(self, name: str) -> list[int]:
        return [self._d0] if name == self.fidelity_parameter else super()._model_columns(name)

    # -- asking: at any fidelity, or at a given one; pool choices without a fidelity column are offered at every fidelity
    def ask(self, n: int = 1, pending: Sequence[Candidate] = (), choices: pd.DataFrame | None = None, *,
            fidelity: str | None = None) -> list[Candidate]:
        """As :meth:`Planner.ask`; with ``fidelity``, every candidate is at that fidelity.

        A campaign passes ``fidelity`` when a station of that fidelity is free and nothing queued can
        run on it (decision 0009): *where* is chosen as usual (the hand-over rule: improvement at
        the target), *which fidelity* is given. Cost-weighted improvement and the knowledge
        gradient are maximized at that fidelity only; designs and fallbacks take it too.
        """
        if fidelity is not None and fidelity not in self._value:
            raise SpaceError(f"fidelity {fidelity!r} is not one of {[f.name for f in self.fidelities]}")
        if choices is not None:
            if self.fidelity_parameter not in choices.columns:
                offered = [fidelity] if fidelity is not None else [f.name for f in self.fidelities]
                choices = choices.merge(pd.DataFrame({self.fidelity_parameter: offered}), how="cross")
            elif fidelity is not None:
                choices = choices[choices[self.fidelity_parameter] == fidelity]
        self._given = fidelity
        try:
            asked = super().ask(n, pending, choices)
        finally:
            self._given = None
        if fidelity is not None:
            wrong = [c for c in asked if c.params[self.fidelity_parameter] != fidelity]
            if wrong:  # every path above keeps to the given fidelity; a candidate elsewhere would be routed to the wrong station
                raise RuntimeError(f"asked for fidelity {fidelity!r}, proposed {[c.params[self.fidelity_parameter] for c in wrong]}")
            if self.idle_stations == "worth":
                asked = self._worth_their_cost(asked, fidelity)
        return asked

    def _worth_their_cost(self, asked: list[Candidate], fidelity: str) -> list[Candidate]:
        """``idle_stations="worth"``: of the candidates asked at the given ``fidelity``, those where the
        hand-over rule itself would have chosen it (its information per cost about the target there is
        the highest). Designs and fallbacks carry no such measure and are kept."""
        per_point = self.last_decision.get("information_per_cost")
        if not per_point or len(per_point) != len(asked):
            return asked
        kept = [c for c, info in zip(asked, per_point) if max(info, key=info.get) == fidelity]
        if len(kept) < len(asked):
            self.last_decision = {**self.last_decision, "declined_for_idle_station": len(asked) - len(kept)}
        return kept

    _given: str | None = None  # the fidelity given to the ask in progress (None: the planner chooses)

    def _at_given(self, X: np.ndarray) -> np.ndarray:
        """``X`` (unit cube) with its fidelity block set to the given fidelity, if one is given."""
        if self._given is None:
            return X
        X = X.copy()
        X[:, self._d0 :] = 0.0
        X[:, self._d0 + [f.name for f in self.fidelities].index(self._given)] = 1.0
        return X

    def _propose(self, n: int, X_pending: np.ndarray) -> np.ndarray:
        X = super()._propose(n, X_pending)
        if self._given is not None:  # the record says the fidelity was given, not chosen
            self.last_decision = {**self.last_decision, "fidelity_given": self._given}
        return self._at_given(X)

    def _propose_from(self, n: int, X_pending: np.ndarray, X_choices: np.ndarray) -> np.ndarray:
        """Cost-weighted improvement scores the (choice, fidelity) rows; the knowledge gradient cannot, so
        it optimizes over the whole space and takes the nearest free rows."""
        if self.acquisition == "cwei":
            return super()._propose_from(n, X_pending, X_choices)  # "kg" and "handover" choose a point, then the nearest free row
        free = self._free_choices(X_choices, np.vstack([self._X_observed(), X_pending]))
        if free.sum() < n:
            from labflow.errors import PlannerError

            raise PlannerError(f"only {int(free.sum())} choices are neither measured nor pending", hint="the pool is exhausted")
        targets = self._propose(n, X_pending)
        return _nearest_free(targets, X_choices, free)

    # -- model space: design columns plus one fidelity value ------------------------------------
    def _to_model(self, X: np.ndarray) -> np.ndarray:
        block = X[:, self._d0 :]
        s = np.array([self._value[self.fidelities[int(j)].name] for j in np.argmax(block, axis=1)]) if len(X) else np.empty(0)
        return np.c_[X[:, : self._d0], s]

    def _from_model(self, Xm: np.ndarray) -> np.ndarray:
        values = np.array([self._value[f.name] for f in self.fidelities])
        block = np.zeros((len(Xm), len(self.fidelities)))
        block[np.arange(len(Xm)), np.argmin(np.abs(Xm[:, -1:] - values[None, :]), axis=1)] = 1.0
        return np.c_[Xm[:, : self._d0], block]

    def _model_input(self, X: np.ndarray) -> np.ndarray:
        return self._to_model(X)

    def _training_sets(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        X, Y = self.train_data()
        return {"objective": (self._to_model(X), Y)}

    def _fit_one(self, name: str, X: np.ndarray, Y: np.ndarray, hyper: Any, fit: bool) -> Any:
        from botorch.models import SingleTaskMultiFidelityGP

        return models.fit_gp(X, Y, warm_start=hyper, fit=fit, model_cls=SingleTaskMultiFidelityGP, data_fidelities=[self._d0])

    def _cost_model(self) -> Any:
        values = torch.tensor([self._value[f.name] for f in self.fidelities], dtype=torch.float64)
        costs = torch.tensor([self.cost(f.name) for f in self.fidelities], dtype=torch.float64)

        def cost_of(X: torch.Tensor) -> torch.Tensor:
            """``batch x q x (d + 1)`` -> ``batch x q x 1``: the cost of the nearest fidelity."""
            nearest = (X[..., -1:] - values).abs().argmin(dim=-1)
            return costs[nearest].unsqueeze(-1)

        return cost_of

    def _acquisition(self, fitted: Mapping[str, Any], X_pending: np.ndarray, X_reference: np.ndarray | None = None) -> Any:
        model = fitted["objective"]
        Xp = models.tensor(self._to_model(X_pending)) if len(X_pending) else None
        if self.acquisition == "cwei":
            return self._cost_weighted(model, Xp)
        if self.acquisition == "handover":
            return self._cost_weighted(model, Xp).log_ei  # log EI at the point as given (the target, in _optimize)
        return self._knowledge_gradient(model, Xp)

    def _cost_weighted(self, model: Any, X_pending: torch.Tensor | None) -> Any:
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.sampling import SobolQMCNormalSampler

        X_train, _ = self._training_sets()["objective"]
        at_target = X_train.copy()
        at_target[:, -1] = 1.0
        sampler = SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=models.torch_seed(self.seed, self._asked, 14))
        with models.seeded(self.seed, self._asked, 14):
            log_ei = qLogNoisyExpectedImprovement(
                model, X_baseline=models.tensor(at_target), sampler=sampler, X_pending=X_pending, prune_baseline=True
            )
        return acqf.CostWeightedImprovement(model, log_ei, self._d0, self._cost_model(), self.cost(self.target))

    def _knowledge_gradient(self, model: Any, X_pending: torch.Tensor | None) -> Any:
        from botorch.acquisition import PosteriorMean
        from botorch.acquisition.cost_aware import InverseCostWeightedUtility
        from botorch.acquisition.fixed_feature import FixedFeatureAcquisitionFunction
        from botorch.acquisition.knowledge_gradient import qMultiFidelityKnowledgeGradient
        from botorch.acquisition.utils import project_to_target_fidelity
        from botorch.models.deterministic import GenericDeterministicModel

        d = self._d0 + 1
        # the best value the model now expects at the target fidelity
        pm = FixedFeatureAcquisitionFunction(PosteriorMean(model), d, [self._d0], [1.0])
        ineq, eq = self._unit_constraints()
        with models.seeded(self.seed, self._asked, 12):
            _, best = acqf.optimize(pm, self._d0, 1, num_restarts=2, raw_samples=64, inequality_constraints=ineq, equality_constraints=eq)
        with models.seeded(self.seed, self._asked, 13):
            return qMultiFidelityKnowledgeGradient(
                model,
                num_fantasies=self.num_fantasies,
                current_value=torch.tensor(float(best[0]), dtype=torch.float64),
                cost_aware_utility=InverseCostWeightedUtility(cost_model=GenericDeterministicModel(self._cost_model())),
                project=lambda X: project_to_target_fidelity(X=X, target_fidelities={self._d0: 1.0}, d=d),
                X_pending=X_pending,
            )

    def _optimize(self, acq: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Maximize the acquisition once per fidelity (fidelity fixed) and keep the best.

        Cost-weighted improvement picks a batch greedily, one point (and its fidelity) at a time,
        each added to the pending points; the knowledge gradient picks a batch jointly at one fidelity.
        """
        if self.acquisition == "handover":
            return self._optimize_handover(acq, n)
        if self.space.nonlinear and self.acquisition == "cwei":  # the best of a feasible sample, each point at its own fidelity
            return self._optimize_on_feasible_sample(acq, n)
        ineq, eq = self._unit_constraints()
        kg = self.acquisition == "kg"
        base_pending = acq.X_pending
        rows, values, log = [], [], []
        for _ in range(1 if kg else n):
            best: tuple[float, np.ndarray, np.ndarray] | None = None
            per_fidelity = {}
            for f in [g for g in self.fidelities if self._given in (None, g.name)]:
                X, v = acqf.optimize(
                    acq,
                    self._d0 + 1,
                    n if kg else 1,
                    num_restarts=self.num_restarts,
                    raw_samples=self.raw_samples,
                    inequality_constraints=ineq,
                    equality_constraints=eq,
                    fixed_features={self._d0: self._value[f.name]},
                    sequential=False,
                    maxiter=self.maxiter,
                )
                per_fidelity[f.name] = float(np.max(v))
                if best is None or per_fidelity[f.name] > best[0]:
                    best = (per_fidelity[f.name], X, v)
            assert best is not None
            rows.append(best[1])
            values.append(best[2])
            log.append(per_fidelity)
            if not kg:
                chosen = models.tensor(np.vstack(rows))
                acq.set_X_pending(torch.cat([base_pending, chosen]) if base_pending is not None else chosen)
        if not kg:
            acq.set_X_pending(base_pending)
        self._decision["value_per_fidelity"] = log
        return self._from_model(np.vstack(rows)), np.concatenate(values)

    def _optimize_handover(self, log_ei: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Where: maximize log EI at the target fidelity. Which fidelity: the one whose measurement at that
        point tells most about the target value there per unit cost (decision 0009). Greedy for a batch."""
        ineq, eq = self._unit_constraints()
        model = self._models["objective"] if self._models else self._fit()["objective"]
        base_pending = log_ei.X_pending
        rows, values, log = [], [], []
        for _ in range(n):
            if self.space.nonlinear:
                rng = np.random.default_rng([self.seed, self._asked, 21, len(rows)])
                X = self._to_model(self.space.encode(self.space.sample(4 * self.raw_samples, seed=rng)))
                X[:, -1] = 1.0
                s = acqf.score(log_ei, X)
                x, v = X[int(np.argmax(s))], float(np.max(s))
            else:
                Xo, vo = acqf.optimize(log_ei, self._d0 + 1, 1, num_restarts=self.num_restarts, raw_samples=self.raw_samples,
                                       inequality_constraints=ineq, equality_constraints=eq, fixed_features={self._d0: 1.0},
                                       maxiter=self.maxiter)
                x, v = Xo[0], float(vo[0])
            info = self.information_per_cost(model, x[: self._d0])
            fidelity = self._given if self._given is not None else max(info, key=info.get)
            row = x.copy()
            row[self._d0] = self._value[fidelity]
            rows.append(row)
            values.append(v)
            log.append({k: float(f"{w:.4g}") for k, w in info.items()})
            chosen = models.tensor(np.vstack(rows))
            log_ei.set_X_pending(torch.cat([base_pending, chosen]) if base_pending is not None else chosen)
        log_ei.set_X_pending(base_pending)
        self._decision["information_per_cost"] = log
        return self._from_model(np.vstack(rows)), np.array(values)

    def information_per_cost(self, model: Any, x: np.ndarray) -> dict[str, float]:
        """For each fidelity: how much one measurement of it at ``x`` (design columns, unit cube) would shrink
        the variance of the target value at ``x``, per unit cost.

        With the model's joint posterior of ``f(x, s)`` and ``f(x, target)``, a measurement
        ``y = f(x, s) + noise`` reduces the target's variance by ``cov(f_s, f_t)^2 / (var(f_s) + noise)``.
        Measuring the target itself removes ``var(f_t)^2 / (var(f_t) + noise)``. Once the cheap
        fidelity has been measured near ``x``, its covariance with the target there is spent and
        the target wins, however cheap the other is.
        """
        out: dict[str, float] = {}
        with torch.no_grad(), acqf.quiet_optimizer():  # jitter on points measured more than once
            for f in self.fidelities:
                pts = models.tensor(np.array([[*x, self._value[f.name]], [*x, 1.0]]))
                joint = model.posterior(pts).distribution.covariance_matrix
                noisy = model.posterior(pts[:1], observation_noise=True).variance.reshape(-1)[0]
                gain = float(joint[0, 1] ** 2 / noisy.clamp_min(1e-12))
                out[f.name] = gain / self.cost(f.name)
        return out

    def _replacement(self, avoid: np.ndarray, acq: Any | None) -> np.ndarray:
        # the knowledge gradient cannot score single points: take the most distant one instead
        return super()._replacement(avoid, None if self.acquisition == "kg" else acq)

    # -- designs: fidelities in turn, cheapest first ---------------------------------------------
    def _with_fidelities(self, X: np.ndarray, first_index: int) -> np.ndarray:
        X = X.copy()
        k = len(self.fidelities)
        X[:, self._d0 :] = 0.0
        X[np.arange(len(X)), self._d0 + (first_index + np.arange(len(X))) % k] = 1.0
        return self._at_given(X)

    def _sobol(self, start: int, n: int) -> np.ndarray:
        return self._with_fidelities(super()._sobol(start, n), start)

    def _initial_design(self, n: int, X_avoid: np.ndarray) -> np.ndarray:
        return self._with_fidelities(super()._initial_design(n, X_avoid), self._asked)

    def _fallback(self, n: int, X_avoid: np.ndarray) -> np.ndarray:
        X = super()._fallback(n, X_avoid)
        cheap = X.copy()
        cheap[:, self._d0 :] = 0.0
        cheap[:, self._d0] = 1.0  # fall back to the cheapest fidelity (or the given one)
        cheap = self._at_given(cheap)
        ok = ~_too_close(cheap, X_avoid, self.min_distance)
        return np.where(ok[:, None], cheap, self._at_given(X))
