"""Campaign reports: a self-contained HTML page and PNG figures from a provenance file.

::

    from labflow.report import build_report
    report = build_report("runs/quickstart-20250101-120000.h5", "runs/quickstart-report")
    report.html        # Path of report.html (figures embedded; open it from disk)
    report.figures     # {"best_so_far": Path(".../best_so_far.png"), ...}

``labflow report FILE.h5 [-o DIR]`` does the same from the command line. The figures and
what they show are listed in :data:`FIGURES`; the series behind them are in
:class:`CampaignView`; the model's view refits the campaign's surrogate
(:func:`fit_model_view`); baselines for simulated labs are re-runs
(:func:`simulated_baselines`).
"""

from labflow.report.baselines import simulated_baselines
from labflow.report.builder import FIGURES, Report, build_report, default_report_dir
from labflow.report.data import CampaignView
from labflow.report.model import ModelView, fit_model_view

__all__ = [
    "FIGURES",
    "CampaignView",
    "ModelView",
    "Report",
    "build_report",
    "default_report_dir",
    "fit_model_view",
    "simulated_baselines",
]
