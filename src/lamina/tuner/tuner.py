"""KerasTuner's tuners on Optuna: `RandomSearch`, `BayesianOptimization` (TPE), `Hyperband`.

Optuna does all of the search: its samplers pick the values (`RandomSampler`, `TPESampler`) and
its pruners stop bad trials (`HyperbandPruner`, fed each epoch's objective through
`trial.report`). Lamina only maps KerasTuner's API onto it and runs `fit`.

State on disk, under `directory/project_name/`: `optuna_journal.log` (Optuna's
`JournalStorage` over a `JournalFileBackend`: one JSON object per line; that backend has no
snapshots, the only part of the journal storage that pickles), `tuner.json` (the search space)
and `trial_<id>/checkpoint.weights.h5` (each trial's best epoch). Nothing is pickled, so a
search directory can be read safely. A search killed mid-trial resumes with `overwrite=False`:
finished trials are kept and the interrupted one is run again with the same values.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from typing import Any, Callable

from lamina.callbacks.callback import Callback
from lamina.tuner.hyperparameters import HyperParameters

_MAX_NAMES = ("acc", "accuracy", "auc", "precision", "recall", "f1_score", "fbeta_score",
              "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
              "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "iou",
              "mean_iou", "r2_score")
_MIN_NAMES = ("loss", "mse", "mae", "mape", "msle", "mean_squared_error", "mean_absolute_error",
              "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "hinge",
              "squared_hinge", "logcosh", "log_cosh", "crossentropy", "binary_crossentropy",
              "categorical_crossentropy", "sparse_categorical_crossentropy", "kl_divergence",
              "poisson", "cosine_similarity", "root_mean_squared_error", "rmse")


class Objective:
    """The metric to optimize and its direction: `Objective('val_accuracy', 'max')`."""

    def __init__(self, name: str, direction: str) -> None:
        if direction not in ("min", "max"):
            raise ValueError(
                f"Objective direction must be 'min' or 'max'. Received: direction={direction!r}."
            )
        self.name = name
        self.direction = direction

    def better(self, a: float, b: float) -> bool:
        """Whether `a` is strictly better than `b`."""
        return a > b if self.direction == "max" else a < b

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Objective) and (self.name, self.direction) == (
            other.name, other.direction)

    def __repr__(self) -> str:
        return f'Objective(name="{self.name}", direction="{self.direction}")'


def _infer_direction(name: str) -> str | None:
    base = name[4:] if name.startswith("val_") else name
    if base in _MAX_NAMES:
        return "max"
    if base in _MIN_NAMES or base.endswith("_loss"):
        return "min"
    return None


def create_objective(objective: Any) -> Objective:
    """`None` (val_loss), a metric name (direction inferred) or an `Objective`."""
    if objective is None:
        return Objective("val_loss", "min")
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str):
        direction = _infer_direction(objective)
        if direction is None:
            raise ValueError(
                f"Could not infer the direction ('min' or 'max') of the objective "
                f"{objective!r}. Pass it as an Objective, e.g. "
                f"Objective({objective!r}, direction='max')."
            )
        return Objective(objective, direction)
    raise TypeError(
        "`objective` must be a metric name or an Objective (one objective: a list of several "
        f"is not supported). Received: objective={objective!r}."
    )


class HyperModel:
    """A buildable model family: override `build(hp)`, and `fit(hp, model, ...)` to tune the
    training itself (batch size, ...)."""

    def __init__(self, name: str | None = None, tunable: bool = True) -> None:
        self.name = name
        self.tunable = tunable

    def build(self, hp: HyperParameters) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} must implement build(hp) and return a compiled model."
        )

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        """Train `model`; returns its `History` (or a float, the objective's value)."""
        return model.fit(*args, **kwargs)


class _FunctionHyperModel(HyperModel):
    def __init__(self, build: Callable[[HyperParameters], Any]) -> None:
        super().__init__(name=getattr(build, "__name__", None))
        self._build = build

    def build(self, hp: HyperParameters) -> Any:
        return self._build(hp)


class Trial:
    """One configuration and what training it gave: `trial_id`, `hyperparameters`, `score`
    (the objective at the best epoch, averaged over executions), `best_step`, `status`
    ('COMPLETED', 'PRUNED', 'FAILED', 'RUNNING') and `metrics` (each logged value per epoch)."""

    def __init__(self, trial_id: str, hyperparameters: HyperParameters, status: str = "RUNNING",
                 score: float | None = None, best_step: int | None = None,
                 metrics: dict[str, list[float]] | None = None) -> None:
        self.trial_id = trial_id
        self.hyperparameters = hyperparameters
        self.status = status
        self.score = score
        self.best_step = best_step
        self.metrics = metrics or {}
        self.reported_steps: set[int] = set()

    def summary(self) -> None:
        print(f"Trial {self.trial_id} summary")
        print("Hyperparameters:")
        for name, value in self.hyperparameters.values.items():
            print(f"{name}: {value}")
        if self.score is not None:
            print(f"Score: {self.score}")
        if self.status != "COMPLETED":
            print(f"Status: {self.status}")

    def __repr__(self) -> str:
        return f"Trial(trial_id={self.trial_id!r}, status={self.status!r}, score={self.score!r})"


_STATUS = {"COMPLETE": "COMPLETED", "PRUNED": "PRUNED", "FAIL": "FAILED", "RUNNING": "RUNNING",
           "WAITING": "RUNNING"}


class Oracle:
    """The search state, held by an Optuna study: `objective`, `max_trials`, `hyperparameters`
    (the space seen so far), `trials`, `get_best_trials(n)`; `study` is the `optuna.Study`."""

    def __init__(self, objective: Objective, max_trials: int, hyperparameters: HyperParameters,
                 study: Any) -> None:
        self.objective = objective
        self.max_trials = max_trials
        self.hyperparameters = hyperparameters
        self.study = study

    def get_space(self) -> HyperParameters:
        return self.hyperparameters.copy()

    def _trial_id(self, number: int) -> str:
        return f"{number:0{max(2, len(str(self.max_trials - 1)))}d}"

    @property
    def trials(self) -> dict[str, Trial]:
        found = {}
        for frozen in self.study.get_trials(deepcopy=False):
            attrs = frozen.user_attrs
            if attrs.get("interrupted"):
                continue
            hp = self.hyperparameters.copy()
            hp.values = dict(attrs.get("values", {}))
            trial_id = self._trial_id(frozen.number)
            found[trial_id] = Trial(trial_id, hp, _STATUS.get(frozen.state.name, frozen.state.name),
                                    attrs.get("score"), attrs.get("best_step"),
                                    attrs.get("metrics"))
        return found

    def get_best_trials(self, num_trials: int = 1) -> list[Trial]:
        """Completed trials best first, then pruned ones (scored on fewer epochs)."""
        scored = [t for t in self.trials.values()
                  if t.status in ("COMPLETED", "PRUNED") and t.score is not None
                  and math.isfinite(t.score)]
        sign = -1.0 if self.objective.direction == "max" else 1.0
        scored.sort(key=lambda t: (t.status != "COMPLETED", sign * t.score))
        return scored[:num_trials]


class _TrialReporter(Callback):
    """Feeds each epoch's objective to Optuna (`trial.report`), stops the fit when the pruner
    says so, keeps the best epoch's weights, and records the logs."""

    def __init__(self, tuner: "Tuner", optuna_trial: Any, report: bool, checkpoint: str,
                 reported: set[int]) -> None:
        super().__init__()
        # Epochs already reported by an earlier attempt (a retried trial): Optuna keeps the
        # first value of a step and warns on a second.
        self.reported = reported
        self.tuner = tuner
        self.optuna_trial = optuna_trial
        self.report = report
        self.checkpoint = checkpoint
        self.best: float | None = None
        self.best_step: int | None = None
        self.metrics: dict[str, list[float]] = {}
        self.pruned = False

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        for key, value in logs.items():
            if isinstance(value, (int, float)):
                self.metrics.setdefault(key, []).append(float(value))
        objective = self.tuner.oracle.objective
        if objective.name not in logs:
            raise KeyError(
                f"The objective {objective.name!r} is not in the epoch logs, which hold "
                f"{sorted(logs)}. Pass validation_data to search() for a 'val_' objective, or "
                "compile the model with the metric the objective names."
            )
        value = float(logs[objective.name])
        if self.best is None or objective.better(value, self.best) or not math.isfinite(self.best):
            self.best, self.best_step = value, epoch
            if self.checkpoint:
                self.model.save_weights(self.checkpoint)
        if self.report and epoch not in self.reported:
            self.reported.add(epoch)
            self.optuna_trial.report(value, epoch)
            # A verdict after the last epoch would stop nothing: the trial has had its budget.
            last = epoch + 1 >= (self.params.get("epochs") or math.inf)
            if not last and self.optuna_trial.should_prune():
                self.pruned = True
                self.model.stop_training = True


class Tuner:
    """The search loop shared by the three tuners (KerasTuner's `Tuner`)."""

    def __init__(self, hypermodel: Any = None, objective: Any = None, max_trials: int = 10,
                 seed: int | None = None, hyperparameters: HyperParameters | None = None,
                 tune_new_entries: bool = True, allow_new_entries: bool = True,
                 max_retries_per_trial: int = 0, max_consecutive_failed_trials: int = 3,
                 executions_per_trial: int = 1, optimizer: Any = None, loss: Any = None,
                 metrics: Any = None, directory: str | os.PathLike | None = None,
                 project_name: str | None = None, overwrite: bool = False, *,
                 sampler: Any = None, pruner: Any = None, **kwargs: Any) -> None:
        for label, value, least in (("max_trials", max_trials, 1),
                                    ("executions_per_trial", executions_per_trial, 1),
                                    ("max_retries_per_trial", max_retries_per_trial, 0),
                                    ("max_consecutive_failed_trials",
                                     max_consecutive_failed_trials, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(
                    f"`{label}` must be an integer >= {least}. Received: {label}={value!r}."
                )
        unknown = set(kwargs) - {"logger", "tuner_id", "max_model_size", "distribution_strategy"}
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(unknown)}.")
        if hypermodel is None and type(self).run_trial is Tuner.run_trial:
            raise ValueError(
                "Pass a `hypermodel` (a HyperModel or a build(hp) function), or subclass the "
                "tuner and override run_trial."
            )
        if hypermodel is not None and not isinstance(hypermodel, HyperModel):
            if not callable(hypermodel):
                raise TypeError(
                    "`hypermodel` must be a HyperModel or a function build(hp) returning a "
                    f"compiled model. Received: {hypermodel!r}."
                )
            hypermodel = _FunctionHyperModel(hypermodel)
        self.hypermodel = hypermodel
        self.seed = seed
        self.tune_new_entries = tune_new_entries
        self.allow_new_entries = allow_new_entries
        self.max_retries_per_trial = max_retries_per_trial
        self.max_consecutive_failed_trials = max_consecutive_failed_trials
        self.executions_per_trial = executions_per_trial
        self._compile_overrides = {k: v for k, v in
                                   (("optimizer", optimizer), ("loss", loss), ("metrics", metrics))
                                   if v is not None}
        self.directory = os.fspath(directory) if directory is not None else "."
        self.project_name = project_name or "untitled_project"
        if os.sep in self.project_name or self.project_name in (".", ".."):
            raise ValueError(
                "`project_name` must be a single folder name. Received: "
                f"project_name={self.project_name!r}; put the parent folders in `directory`."
            )
        self.project_dir = os.path.join(self.directory, self.project_name)
        if overwrite and os.path.isdir(self.project_dir):
            shutil.rmtree(self.project_dir)
        os.makedirs(self.project_dir, exist_ok=True)

        space = HyperParameters()
        self._given = set()
        if hyperparameters is not None:
            space.merge(hyperparameters)
            self._given = {hp.name for hp in hyperparameters.space}
        saved = self._load_space()
        if saved is not None:
            space.merge(saved, overwrite=False)
        if hypermodel is not None:
            # KerasTuner builds once with the defaults to learn the space before the search.
            probe = space.copy()
            probe._allow_new = allow_new_entries
            hypermodel.build(probe)
            space = probe
            space.values = {hp.name: hp.default for hp in space.space
                            if space._conditions_are_active(hp.conditions)}
        objective = create_objective(objective)
        self._probe_space = list(space.space)
        study = self._open_study(objective, sampler, pruner)
        self.oracle = Oracle(objective, self._trial_budget(max_trials), space, study)
        self._save_space()

    # ------------------------------------------------------------------ Optuna plumbing

    def _trial_budget(self, max_trials: int) -> int:
        return max_trials

    def _default_sampler(self, seed: int | None) -> Any:
        import optuna

        return optuna.samplers.RandomSampler(seed=seed)

    def _default_pruner(self) -> Any:
        import optuna

        return optuna.pruners.NopPruner()

    def _open_study(self, objective: Objective, sampler: Any, pruner: Any) -> Any:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(os.path.join(self.project_dir,
                                                                 "optuna_journal.log")))
        direction = "maximize" if objective.direction == "max" else "minimize"
        existing = [s for s in storage.get_all_studies() if s.study_name == self.project_name]
        if existing and existing[0].direction.name.lower() != direction:
            raise ValueError(
                f"The search in {self.project_dir!r} optimizes in the other direction "
                f"({existing[0].direction.name.lower()}). Pass overwrite=True to start anew, or "
                "another project_name."
            )
        done = len(storage.get_all_trials(existing[0]._study_id)) if existing else 0
        if sampler is None:
            # A resumed search draws a new stream: reseeding as the first run did would
            # propose its first configurations again.
            sampler = self._default_sampler(None if self.seed is None else self.seed + done)
        return optuna.create_study(storage=storage, study_name=self.project_name,
                                   direction=direction, sampler=sampler,
                                   pruner=pruner if pruner is not None else self._default_pruner(),
                                   load_if_exists=True)

    def _space_path(self) -> str:
        return os.path.join(self.project_dir, "tuner.json")

    def _load_space(self) -> HyperParameters | None:
        path = self._space_path()
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as file:
            return HyperParameters.from_config(json.load(file)["hyperparameters"])

    def _save_space(self) -> None:
        config = {"tuner": type(self).__name__,
                  "objective": {"name": self.oracle.objective.name,
                                "direction": self.oracle.objective.direction},
                  "hyperparameters": self.oracle.hyperparameters.get_config()}
        temporary = self._space_path() + ".part"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(config, file, indent=1)
        os.replace(temporary, self._space_path())

    def _recover_interrupted(self) -> None:
        """Trials left RUNNING by a killed search are closed as interrupted and queued again
        with the same values, so the search continues where it stopped."""
        from optuna.trial import TrialState

        study = self.oracle.study
        storage = study._storage
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage.set_trial_user_attr(frozen._trial_id, "interrupted", True)
            storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
            study.enqueue_trial(frozen.params, skip_if_exists=False)

    def _finished(self) -> int:
        from optuna.trial import TrialState

        return sum(1 for t in self.oracle.study.get_trials(deepcopy=False)
                   if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                   and not t.user_attrs.get("interrupted"))

    # ------------------------------------------------------------------ the search

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        """Run trials until `max_trials` are done (counting those of earlier runs of this
        project); `fit_args`/`fit_kwargs` go to `fit` (`x`, `y`, `epochs`, `validation_data`,
        `callbacks`, ...)."""
        import optuna
        from optuna.trial import TrialState

        verbose = fit_kwargs.get("verbose", 1)
        self._recover_interrupted()
        failures = 0
        while self._finished() < self.oracle.max_trials:
            optuna_trial = self.oracle.study.ask()
            hp = self.oracle.hyperparameters.copy()
            tunable = None if self.tune_new_entries or not self._given else self._given
            hp._start_trial(optuna_trial, tunable, self.allow_new_entries)
            trial = Trial(self.oracle._trial_id(optuna_trial.number), hp)
            started = time.monotonic()
            error: BaseException | None = None
            for _ in range(self.max_retries_per_trial + 1):
                try:
                    self._run_and_score(trial, optuna_trial, fit_args, fit_kwargs)
                    error = None
                    break
                except optuna.TrialPruned:
                    error = None
                    trial.status = "PRUNED"
                    break
                except Exception as caught:  # a failing trial is recorded, then retried
                    error = caught
            hp._end_trial()
            self._record(optuna_trial, trial)
            self.oracle.hyperparameters.merge(hp, overwrite=False)
            self._save_space()
            if error is not None:
                failures += 1
                optuna_trial.set_user_attr("error", f"{type(error).__name__}: {error}")
                self.oracle.study.tell(optuna_trial, state=TrialState.FAIL)
                if failures >= self.max_consecutive_failed_trials:
                    raise RuntimeError(
                        f"{failures} consecutive trials failed; the last one raised "
                        f"{type(error).__name__}: {error}"
                    ) from error
                continue
            failures = 0
            if trial.status == "PRUNED":
                self.oracle.study.tell(optuna_trial, state=TrialState.PRUNED)
            else:
                trial.status = "COMPLETED"
                self.oracle.study.tell(optuna_trial, trial.score)
            if verbose:
                self._print_trial(trial, time.monotonic() - started)

    def _record(self, optuna_trial: Any, trial: Trial) -> None:
        optuna_trial.set_user_attr("values", dict(trial.hyperparameters.values))
        optuna_trial.set_user_attr("score", trial.score)
        optuna_trial.set_user_attr("best_step", trial.best_step)
        optuna_trial.set_user_attr("metrics", trial.metrics)

    def _print_trial(self, trial: Trial, seconds: float) -> None:
        name = self.oracle.objective.name
        best = self.oracle.get_best_trials(1)
        print(f"Trial {trial.trial_id} {trial.status.capitalize()} [{seconds:.1f} s]")
        print(f"{name}: {trial.score}")
        if best:
            print(f"Best {name} So Far: {best[0].score}")

    def _run_and_score(self, trial: Trial, optuna_trial: Any, fit_args: tuple,
                       fit_kwargs: dict) -> None:
        trial.optuna_trial = optuna_trial
        results = self.run_trial(trial, *fit_args, **fit_kwargs)
        if getattr(trial, "_pruned", False):
            import optuna

            raise optuna.TrialPruned()
        if trial.score is None:
            trial.score = self._score_results(results)

    def _score_results(self, results: Any) -> float:
        objective = self.oracle.objective
        results = results if isinstance(results, list) else [results]
        scores = []
        for result in results:
            if isinstance(result, (int, float)):
                scores.append(float(result))
            elif isinstance(result, dict):
                scores.append(float(result[objective.name]))
            else:
                values = getattr(result, "history", {}).get(objective.name)
                if not values:
                    raise KeyError(
                        f"The objective {objective.name!r} is not in the fit history "
                        f"({sorted(getattr(result, 'history', {}))})."
                    )
                scores.append(max(values) if objective.direction == "max" else min(values))
        return sum(scores) / len(scores)

    def run_trial(self, trial: Trial, *fit_args: Any, **fit_kwargs: Any) -> Any:
        """Build and train `executions_per_trial` models; returns their histories. The first
        execution reports each epoch to Optuna's pruner."""
        hp = trial.hyperparameters
        user_callbacks = list(fit_kwargs.pop("callbacks", None) or [])
        checkpoint_dir = os.path.join(self.project_dir, f"trial_{trial.trial_id}")
        os.makedirs(checkpoint_dir, exist_ok=True)
        histories, bests, reporter = [], [], None
        for execution in range(self.executions_per_trial):
            model = self._build_model(hp)
            reporter = _TrialReporter(
                self, trial.optuna_trial, report=execution == 0,
                checkpoint=os.path.join(checkpoint_dir, "checkpoint.weights.h5")
                if execution == 0 else "", reported=trial.reported_steps)
            # Each execution starts from fresh callbacks (EarlyStopping's counters, ...).
            callbacks = copy.deepcopy(user_callbacks) + [reporter]
            history = self.hypermodel.fit(hp, model, *fit_args, callbacks=callbacks,
                                          **self._fit_kwargs(fit_kwargs))
            histories.append(history)
            if execution == 0:
                trial.metrics, trial.best_step = reporter.metrics, reporter.best_step
                if reporter.pruned:
                    trial.score, trial._pruned = reporter.best, True
                    return histories
            if reporter.best is not None:
                bests.append(reporter.best)
        if bests and len(bests) == len(histories):
            trial.score = sum(bests) / len(bests)
        return histories

    def _fit_kwargs(self, fit_kwargs: dict) -> dict:
        return fit_kwargs

    def _build_model(self, hp: HyperParameters) -> Any:
        model = self.hypermodel.build(hp)
        if self._compile_overrides:
            # compile's own arguments (get_compile_config() holds their JSON form).
            config = dict(model._compile_config or {})
            config.update(self._compile_overrides)
            optimizer = config.get("optimizer")
            if hasattr(optimizer, "get_config") and hasattr(optimizer, "from_config"):
                # Each trial's model gets its own optimizer state.
                config["optimizer"] = type(optimizer).from_config(optimizer.get_config())
            model.compile(**{k: config[k] for k in ("optimizer", "loss", "metrics") if k in config})
        return model

    # ------------------------------------------------------------------ results

    def get_best_hyperparameters(self, num_trials: int = 1) -> list[HyperParameters]:
        return [t.hyperparameters for t in self.oracle.get_best_trials(num_trials)]

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """The best trials' models, rebuilt and loaded with their best epoch's weights."""
        models = []
        for trial in self.oracle.get_best_trials(num_models):
            model = self.hypermodel.build(trial.hyperparameters)
            model.load_weights(os.path.join(self.project_dir, f"trial_{trial.trial_id}",
                                            "checkpoint.weights.h5"))
            models.append(model)
        return models

    def search_space_summary(self, extended: bool = False) -> None:
        space = self.oracle.hyperparameters.space
        print("Search space summary")
        print(f"Default search space size: {len(space)}")
        for hp in space:
            config = hp.get_config()
            config.pop("name")
            print(f"{hp.name} ({type(hp).__name__})")
            print(config)

    def results_summary(self, num_trials: int = 10) -> None:
        print("Results summary")
        print(f"Results in {self.project_dir}")
        print(f"Showing {num_trials} best trials")
        print(self.oracle.objective)
        for trial in self.oracle.get_best_trials(num_trials):
            print()
            trial.summary()


class RandomSearch(Tuner):
    """Random search: each trial's values drawn by Optuna's `RandomSampler`."""

    def __init__(self, hypermodel: Any = None, objective: Any = None, max_trials: int = 10,
                 seed: int | None = None, hyperparameters: HyperParameters | None = None,
                 tune_new_entries: bool = True, allow_new_entries: bool = True,
                 max_retries_per_trial: int = 0, max_consecutive_failed_trials: int = 3,
                 **kwargs: Any) -> None:
        super().__init__(hypermodel, objective, max_trials, seed, hyperparameters,
                         tune_new_entries, allow_new_entries, max_retries_per_trial,
                         max_consecutive_failed_trials, **kwargs)


class BayesianOptimization(Tuner):
    """Model-based search: Optuna's TPE sampler (a Parzen-estimator model of good and bad
    configurations) in place of KerasTuner's Gaussian process. The first
    `num_initial_points` trials are random (default: 3 per hyperparameter, as KerasTuner);
    `alpha` and `beta` are the Gaussian process's and are kept only for signature
    compatibility."""

    def __init__(self, hypermodel: Any = None, objective: Any = None, max_trials: int = 10,
                 num_initial_points: int | None = None, alpha: float = 1e-4, beta: float = 2.6,
                 seed: int | None = None, hyperparameters: HyperParameters | None = None,
                 tune_new_entries: bool = True, allow_new_entries: bool = True,
                 max_retries_per_trial: int = 0, max_consecutive_failed_trials: int = 3,
                 **kwargs: Any) -> None:
        if num_initial_points is not None and (isinstance(num_initial_points, bool) or not
                                               isinstance(num_initial_points, int)
                                               or num_initial_points < 1):
            raise ValueError(
                "`num_initial_points` must be a positive integer or None. Received: "
                f"num_initial_points={num_initial_points!r}."
            )
        self.num_initial_points = num_initial_points
        self.alpha, self.beta = alpha, beta
        super().__init__(hypermodel, objective, max_trials, seed, hyperparameters,
                         tune_new_entries, allow_new_entries, max_retries_per_trial,
                         max_consecutive_failed_trials, **kwargs)

    def _default_sampler(self, seed: int | None) -> Any:
        import optuna

        startup = self.num_initial_points
        if startup is None:
            # The space is known only after the first build, which runs before the study opens.
            startup = max(3 * len(self._probe_space), 3)
        return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed)


class Hyperband(Tuner):
    """Hyperband: random configurations, trained up to `max_epochs`, with Optuna's
    `HyperbandPruner` (successive halving by `factor` in several brackets) stopping the worse
    ones at each rung. The trial count defaults to Hyperband's own,
    `hyperband_iterations * sum_s ceil((s_max + 1) * factor**s / (s + 1))` with
    `s_max = floor(log_factor(max_epochs))`; `max_trials=` (keyword) sets it instead."""

    def __init__(self, hypermodel: Any = None, objective: Any = None, max_epochs: int = 100,
                 factor: int = 3, hyperband_iterations: int = 1, seed: int | None = None,
                 hyperparameters: HyperParameters | None = None, tune_new_entries: bool = True,
                 allow_new_entries: bool = True, max_retries_per_trial: int = 0,
                 max_consecutive_failed_trials: int = 3, *, max_trials: int | None = None,
                 **kwargs: Any) -> None:
        for label, value, least in (("max_epochs", max_epochs, 1), ("factor", factor, 2),
                                    ("hyperband_iterations", hyperband_iterations, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(
                    f"`{label}` must be an integer >= {least}. Received: {label}={value!r}."
                )
        self.max_epochs, self.factor = max_epochs, factor
        self.hyperband_iterations = hyperband_iterations
        if max_trials is None:
            s_max = _floor_log(max_epochs, factor)
            max_trials = hyperband_iterations * sum(
                math.ceil((s_max + 1) * factor**s / (s + 1)) for s in range(s_max + 1))
        super().__init__(hypermodel, objective, max_trials, seed, hyperparameters,
                         tune_new_entries, allow_new_entries, max_retries_per_trial,
                         max_consecutive_failed_trials, **kwargs)

    def _default_pruner(self) -> Any:
        import optuna

        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=self.max_epochs,
                                              reduction_factor=self.factor)

    def _fit_kwargs(self, fit_kwargs: dict) -> dict:
        # As in KerasTuner, Hyperband owns the epoch budget: `epochs` passed to search is
        # replaced by max_epochs and the pruner decides where each trial stops.
        return {**fit_kwargs, "epochs": self.max_epochs}


def _floor_log(value: int, base: int) -> int:
    exponent = 0
    while base ** (exponent + 1) <= value:
        exponent += 1
    return exponent


__all__ = ["BayesianOptimization", "HyperModel", "Hyperband", "Objective", "Oracle",
           "RandomSearch", "Trial", "Tuner", "create_objective"]
