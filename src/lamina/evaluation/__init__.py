"""Evaluation reports: learning curves, confusion matrix, per-class metrics, ROC and PR curves.

scikit-learn computes the numbers and matplotlib draws; both are imported only when called.
"""

from lamina.evaluation.plots import (
    confusion_matrix_figure,
    learning_curves_figure,
    plot_history,
    roc_pr_figure,
)
from lamina.evaluation.report import EvaluationReport, classification_scores, report

__all__ = ["EvaluationReport", "classification_scores", "confusion_matrix_figure",
           "learning_curves_figure", "plot_history", "report", "roc_pr_figure"]
