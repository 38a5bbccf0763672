"""labflow: closed-loop campaigns for self-driving labs.

The data flow, one module per step: recipe (:mod:`labflow.recipe`) -> planner
(:mod:`labflow.planners`) -> plan (:mod:`labflow.plans`) -> devices (:mod:`labflow.devices`,
:mod:`labflow.sim`) -> documents -> HDF5 (:mod:`labflow.store`) -> planner, driven by the
campaign loop (:mod:`labflow.campaign`) on an executor (threads, Prefect, virtual time).
"""

from labflow.errors import LabflowError, RecipeError
from labflow.objectives import Objective, OutcomeConstraint
from labflow.records import Candidate, Observation, Status
from labflow.space import Categorical, Integer, Real, Space
from labflow.units import Quantity, ureg

__version__ = "0.1.0"

__all__ = [
    "OutcomeConstraint",
    "Space",
    "Real",
    "Integer",
    "Categorical",
    "Objective",
    "Candidate",
    "Observation",
    "Status",
    "Quantity",
    "ureg",
    "LabflowError",
    "RecipeError",
    "load_recipe",
    "__version__",
]


def load_recipe(path):  # noqa: ANN001, ANN201 - thin re-export, imported lazily to keep `import labflow` light
    """Load and validate a recipe file (see :func:`labflow.recipe.load_recipe`)."""
    from labflow.recipe import load_recipe as _load

    return _load(path)
