"""Random and Sobol baselines for campaigns run on a simulated lab: a re-run, cached.

A report on a simulated campaign draws, beside the campaign's best-so-far curve, the median
best-so-far of the same recipe planned by :class:`~labflow.planners.RandomPlanner` and
:class:`~labflow.planners.SobolPlanner` over a few seeds. These curves are **re-runs**, not
part of the campaign's record: the question they answer is "would a planner that does not
learn have done as well on this lab?".

Theory of operation
-------------------
The re-run uses the recipe's space and objectives, and the lab config stored in the file:

1. The lab is built again (``LabConfig.build(seed, time_scale=0)``) for each seed, so a
   pool lab starts full; only labs with a *landscape* (the simulated lab's physics) can be
   re-run; for any other lab :func:`simulated_baselines` returns ``None``.
2. Each experiment is asked of the baseline planner one at a time (with the lab's
   ``choices()`` for a pool), converted to the landscape's device units, evaluated, and
   given the lab config's Gaussian noise (``landscape.noise_std``) and failure rate. The
   RunEngine and devices are skipped: baselines do not learn from results, so the
   orchestration would change nothing but the time it takes (~60 ms an experiment).
3. Simulated time: each experiment takes the station's ``expected_duration`` and goes to
   the station free first, as the campaign loop does with one experiment per station.

The result is cached as JSON under ``$LABFLOW_CACHE`` (default ``~/.cache/labflow``)
``/baselines/<key>.json``, the key hashing the recipe hash, the lab config, the budget, the
planners, the seeds and the labflow version; the report also writes it beside its figures.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labflow.records import Observation, Status
from labflow.space import Categorical
from labflow.store.provenance import CampaignRecord, package_versions
from labflow.units import convert

__all__ = ["cache_dir", "simulated_baselines"]

FORMAT = 3  # 3: readings clipped to the physical range, as the instruments do


def cache_dir() -> Path:
    """Where re-run baselines are cached: ``$LABFLOW_CACHE/baselines`` (default ``~/.cache/labflow``)."""
    root = os.environ.get("LABFLOW_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "labflow")
    return Path(root) / "baselines"


def _key(record: CampaignRecord, budget: int, planners: Sequence[str], seeds: Sequence[int]) -> str:
    blob = json.dumps(
        {
            "format": FORMAT,
            "recipe": record.recipe,
            "lab": record.lab,
            "budget": budget,
            "planners": list(planners),
            "seeds": list(seeds),
            "labflow": package_versions().get("labflow", ""),
        },
        sort_keys=True,
        default=str,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def simulated_baselines(
    record: CampaignRecord,
    *,
    planners: Sequence[str] = ("random", "sobol"),
    seeds: int | Sequence[int] = 5,
    budget: int | None = None,
    cache: bool = True,
) -> dict[str, Any] | None:
    """Re-run the campaign's recipe with non-learning planners on its simulated lab.

    Parameters
    ----------
    record:
        The campaign (its recipe, lab config, space and objectives are used).
    planners:
        Baseline planner names (see :func:`labflow.planners.make_planner`).
    seeds:
        How many seeds (``0 .. seeds-1``) or which ones.
    budget:
        Experiments per re-run; default the number of experiments in the record.
    cache:
        Read and write the JSON cache (see the module docstring).

    Returns ``None`` when the lab cannot be re-run (not simulated, or no landscape); else
    ``{"planners": {name: {"values": {objective: [[...] per seed]}, "t_finished": [[...] per seed]}},
    "seeds": [...], "budget": n, "optimum": {objective: value} or None, "method": "..."}`` with values in the objectives' units
    (NaN, written as null, for failed experiments) and times in seconds.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    n = int(budget if budget is not None else len(record.experiments))
    if n < 1 or not seed_list:
        return None
    config = _lab_config(record)
    if config is None:
        return None
    key = _key(record, n, planners, seed_list)
    path = cache_dir() / f"{key}.json"
    if cache and path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    out: dict[str, Any] = {
        "format": FORMAT,
        "key": key,
        "budget": n,
        "seeds": seed_list,
        "method": "re-run on the lab's landscape with its noise and failure rate (no RunEngine)",
        "planners": {},
    }
    out["optimum"] = _known_optimum(record, config)
    for kind in planners:
        runs = [_run_once(record, config, kind, s, n) for s in seed_list]
        if any(r is None for r in runs):
            return None
        out["planners"][kind] = {
            "values": {o.name: [r["values"][o.name] for r in runs] for o in record.objectives},  # type: ignore[index]
            "t_finished": [r["t_finished"] for r in runs],  # type: ignore[index]
        }
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(out, allow_nan=True))
            tmp.replace(path)
        except OSError:
            pass
    return out


def _lab_config(record: CampaignRecord) -> Any:
    from labflow.errors import LabflowError
    from labflow.lab import parse_lab_config

    if not record.lab:
        return None
    try:
        return parse_lab_config(record.lab)
    except (LabflowError, ValueError, TypeError):
        return None


def _known_optimum(record: CampaignRecord, config: Any) -> dict[str, float] | None:
    """The simulated lab's known optimum of each objective, in the objective's unit (None if unknown)."""
    try:
        lab = config.build(seed=0, time_scale=0.0)
    except Exception:  # noqa: BLE001 - a lab that cannot be rebuilt here has no known optimum
        return None
    try:
        land = lab.landscape
        opt = land.optimum() if land is not None else None
        if not opt:
            return None
        units = {o.name: o.unit for o in land.outputs}
        return {o.name: convert(float(opt[o.name]), o.unit, from_unit=units.get(o.name, o.unit))
                for o in record.objectives if o.name in opt}
    except Exception:  # noqa: BLE001
        return None
    finally:
        lab.close()


def _run_once(record: CampaignRecord, config: Any, kind: str, seed: int, n: int) -> dict[str, Any] | None:
    from labflow.planners import make_planner

    try:
        lab = config.build(seed=seed, time_scale=0.0)
    except Exception:  # noqa: BLE001 - a lab that cannot be rebuilt here has no baseline
        return None
    try:
        landscape = lab.landscape
        if landscape is None:
            return None
        space, objectives = record.space, record.objectives
        noise = dict(getattr(getattr(config, "landscape", None), "noise_std", {}) or {})
        failure_rate = float(getattr(config, "failure_rate", 0.0) or 0.0)
        rng = np.random.default_rng([seed, 0x6C6162])
        planner = make_planner(kind, space, objectives, seed=seed)
        station = lab.stations[0]
        free_at = [(0.0, i) for i in range(len(lab.stations))]
        heapq.heapify(free_at)
        values: dict[str, list[float]] = {o.name: [] for o in objectives}
        finished: list[float] = []
        inputs = {i.name: i for i in landscape.inputs}
        outputs = {o.name: o for o in landscape.outputs}
        for _ in range(n):
            choices = landscape.choices()
            if choices is not None:
                if len(choices) == 0:
                    break
                cand = planner.ask(1, choices=choices.reset_index(drop=True))[0]
            else:
                cand = planner.ask(1)[0]
            device = {}
            for p in space.parameters:
                v = cand.params[p.name]
                inp = inputs.get(p.name)
                device[p.name] = v if isinstance(p, Categorical) or inp is None else convert(v, inp.unit, from_unit=p.unit)
            try:
                raw = landscape.evaluate(device)
                failed = bool(rng.random() < failure_rate)
            except Exception:  # noqa: BLE001 - a point the lab cannot make counts as a failure
                raw, failed = {}, True
            outcomes = {}
            for o in objectives:
                if failed or o.name not in raw:
                    failed = True
                    continue
                std = float(noise.get(o.name, 0.0) or 0.0)
                value = float(raw[o.name]) + (rng.normal(0.0, std) if std > 0 else 0.0)
                if o.name in outputs:  # as the lab's instruments do: noise stays within the physical range
                    value = outputs[o.name].clip(value)
                outcomes[o.name] = convert(value, o.unit, from_unit=outputs[o.name].unit if o.name in outputs else o.unit)
            status = Status.FAILED if failed or not all(math.isfinite(v) for v in outcomes.values()) else Status.COMPLETED
            planner.tell(Observation(cand.uid, cand.params, outcomes if status is Status.COMPLETED else {}, status))
            for o in objectives:
                values[o.name].append(outcomes.get(o.name, math.nan) if status is Status.COMPLETED else math.nan)
            try:
                duration = float(station.expected_duration(space.to_quantities(cand.params)))
            except Exception:  # noqa: BLE001 - no duration model: no time axis
                duration = math.nan
            start, i = heapq.heappop(free_at)
            end = start + (duration if math.isfinite(duration) else 0.0)
            heapq.heappush(free_at, (end, i))
            finished.append(end if math.isfinite(duration) else math.nan)
        order = np.argsort(np.where(np.isfinite(finished), finished, np.arange(len(finished))), kind="stable")
        return {
            "values": {k: [_num(v[j]) for j in order] for k, v in values.items()},
            "t_finished": [_num(finished[j]) for j in order],
        }
    finally:
        lab.close()


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None
