"""How well the planner's GP picks out a pool's good rows from random data: the diagnosis behind decision 0006.

For each variant of the model (kernel, noise floor, outcome warp), fit it to ``n`` random rows of
a pool, rank the remaining rows by posterior mean, and count how many of the pool's top-5 % rows
are among the model's own top M (M = the size of the good set). Also the Spearman correlation of
the mean with the truth. Repeated over seeded draws; means reported. A model that cannot find
the good rows from random data needs an acquisition to bring data near them, and no acquisition
can make up for a model that ranks them poorly.

    .venv/bin/python benchmarks/model_top_recall.py --dataset crossed_barrel --sizes 20 40 80 --reps 6
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, pin_threads, write_results  # noqa: E402

pin_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gpytorch.constraints import GreaterThan  # noqa: E402
from gpytorch.likelihoods import GaussianLikelihood  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from labflow.planners import _models as models  # noqa: E402
from labflow.sim.datasets import load_dataset  # noqa: E402

VARIANTS = {
    "rbf (default)": {},
    "rbf, rank warp": {"warp": "rank"},
    "rbf, noise >= 0.05": {"noise_floor": 0.05},
    "matern52, noise >= 0.05": {"kernel": "matern52", "noise_floor": 0.05},
}


def recall(dataset: str, n: int, rep: int, variant: dict) -> tuple[float, int, int]:
    ds = load_dataset(dataset)
    U, y = ds.space.encode(ds.X), ds.scores()
    good = set(ds.good_set().tolist())
    rng = np.random.default_rng(rep)
    idx = rng.choice(len(y), n, replace=False)
    rest = np.setdiff1d(np.arange(len(y)), idx)
    Y = y[idx, None]
    if variant.get("warp"):
        Y = models.OUTCOME_WARPS[variant["warp"]](Y)
    kwargs = {}
    if "noise_floor" in variant:
        kwargs["likelihood"] = GaussianLikelihood(noise_constraint=GreaterThan(variant["noise_floor"]))
    model = models.fit_gp(U[idx], Y, kernel=variant.get("kernel", "rbf"), **kwargs)
    with torch.no_grad():
        mean = model.posterior(models.tensor(U[rest])).mean[:, 0].numpy()
    top = rest[np.argsort(-mean)[: len(good)]]
    return float(spearmanr(mean, y[rest])[0]), len(good & set(top.tolist())), len(good & set(rest.tolist()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="crossed_barrel")
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 40, 80])
    ap.add_argument("--reps", type=int, default=6)
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        for name, variant in VARIANTS.items():
            got = np.array([recall(args.dataset, n, rep, variant) for rep in range(args.reps)])
            rows.append({"dataset": args.dataset, "n_random_rows": n, "model": name, "reps": args.reps,
                         "spearman": float(got[:, 0].mean()), "good_in_model_top": float(got[:, 1].mean()),
                         "good_left_in_pool": float(got[:, 2].mean())})
            print(rows[-1], file=sys.stderr)
    table = markdown_table(rows, ["dataset", "n_random_rows", "model", "reps", "spearman", "good_in_model_top", "good_left_in_pool"])
    write_results(f"model_top_recall_{args.dataset}", {"rows": rows}, table,
                  command="python benchmarks/model_top_recall.py " + shlex.join(sys.argv[1:]))


if __name__ == "__main__":
    main()
