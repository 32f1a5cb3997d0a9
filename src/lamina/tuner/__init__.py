"""KerasTuner's API on Optuna: `import lamina.tuner as kt` runs KerasTuner code unchanged.

`kt.HyperParameters`, `kt.HyperModel`, `kt.RandomSearch`, `kt.BayesianOptimization` (TPE),
`kt.Hyperband` (Optuna's HyperbandPruner), `kt.Objective`, and `kt.sheet_space()`, common
hyperparameter ranges (docs/provenance.md). Importing `lamina` does not import this package
(nor Optuna).
"""

from lamina.tuner.hyperparameters import HyperParameters, sheet_space
from lamina.tuner.tuner import (
    BayesianOptimization,
    HyperModel,
    Hyperband,
    Objective,
    Oracle,
    RandomSearch,
    Trial,
    Tuner,
)

__all__ = [
    "BayesianOptimization", "HyperModel", "HyperParameters", "Hyperband", "Objective", "Oracle",
    "RandomSearch", "Trial", "Tuner", "sheet_space",
]
