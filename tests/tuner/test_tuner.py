"""The tuners end to end on digits: search quality, pruning, resume after a kill, results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import optuna
import pytest

import lamina
import lamina.tuner as kt
from lamina import layers


@pytest.fixture(scope="module")
def digits():
    (x, y), (xv, yv) = lamina.datasets.digits.load_data()
    return x.reshape(len(x), -1), y, xv.reshape(len(xv), -1), yv


def build(hp):
    model = lamina.Sequential([
        layers.Input((64,)),
        layers.Dense(hp.Int("units", 16, 48, step=16), activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=lamina.optimizers.Adam(hp.Float("lr", 1e-5, 1e-1, sampling="log")),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_random_search_finds_a_clearly_better_configuration(digits, tmp_path, capsys):
    x, y, xv, yv = digits
    lamina.set_random_seed(0)
    tuner = kt.RandomSearch(build, objective=kt.Objective("val_accuracy", "max"), max_trials=8,
                            seed=3, directory=tmp_path, project_name="search")
    tuner.search(x, y, epochs=3, batch_size=64, validation_data=(xv, yv), verbose=0)
    trials = tuner.oracle.trials
    assert len(trials) == 8 and all(t.status == "COMPLETED" for t in trials.values())
    scores = sorted(t.score for t in trials.values())
    assert scores[-1] > 0.85 and scores[-1] - scores[0] > 0.3, scores
    # Each score is the best epoch's val_accuracy, which the recorded history holds.
    for trial in trials.values():
        assert trial.score == max(trial.metrics["val_accuracy"])
    best_hp = tuner.get_best_hyperparameters(2)
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert best_hp[0].values == best_trial.hyperparameters.values
    assert best_trial.score == scores[-1]
    # The best model comes back with its best epoch's weights: it scores what the trial scored.
    model = tuner.get_best_models(1)[0]
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    accuracy = model.evaluate(xv, yv, verbose=0)[1]
    assert abs(accuracy - best_trial.score) < 1e-6
    tuner.search_space_summary()
    tuner.results_summary(num_trials=3)
    out = capsys.readouterr().out
    assert "Default search space size: 2" in out and "units (Int)" in out and "lr (Float)" in out
    assert 'Objective(name="val_accuracy", direction="max")' in out
    assert out.count("summary\nHyperparameters:") == 3 and f"Score: {scores[-1]}" in out
    # Searching again with the budget spent runs nothing.
    tuner.search(x, y, epochs=3, batch_size=64, validation_data=(xv, yv), verbose=0)
    assert len(tuner.oracle.trials) == 8
    # The state on disk is JSON only: every journal line parses, no pickle anywhere.
    with open(tmp_path / "search" / "optuna_journal.log", "rb") as file:
        for line in file:
            json.loads(line)
    json.loads((tmp_path / "search" / "tuner.json").read_text())


class TunedFit(kt.HyperModel):
    """KerasTuner's way to tune training itself: `fit` reads hyperparameters too."""

    def build(self, hp):
        model = lamina.Sequential([layers.Input((64,)), layers.Dropout(hp["dropout"]),
                                   layers.Dense(32, activation="relu"),
                                   layers.Dense(10, activation="softmax")])
        model.compile(optimizer=lamina.optimizers.AdamW(hp["learning_rate"],
                                                        weight_decay=hp["weight_decay"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, batch_size=hp["batch_size"], **kwargs)


def test_bayesian_optimization_on_the_sheet_space_uses_tpe(digits, tmp_path):
    x, y, xv, yv = digits
    lamina.set_random_seed(1)
    tuner = kt.BayesianOptimization(TunedFit(), objective="val_loss", max_trials=5,
                                    num_initial_points=2, seed=0,
                                    hyperparameters=kt.sheet_space(), directory=tmp_path,
                                    project_name="bo", overwrite=True)
    assert tuner.oracle.objective == kt.Objective("val_loss", "min")
    assert isinstance(tuner.oracle.study.sampler, optuna.samplers.TPESampler)
    tuner.search(x[:400], y[:400], epochs=1, validation_data=(xv, yv), verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 5
    for trial in trials:
        values = trial.hyperparameters.values
        assert 1e-5 <= values["learning_rate"] <= 1e-3 and values["batch_size"] in (16, 32, 64, 128)
        assert 0.1 <= values["dropout"] <= 0.5 and 1e-5 <= values["weight_decay"] <= 1e-2
    assert len({t.hyperparameters.values["learning_rate"] for t in trials}) == 5
    best = tuner.oracle.get_best_trials(5)
    assert [t.score for t in best] == sorted(t.score for t in trials)   # min first


def test_hyperband_prunes_bad_trials_early(digits, tmp_path):
    x, y, xv, yv = digits
    lamina.set_random_seed(2)
    tuner = kt.Hyperband(build, objective="val_accuracy", max_epochs=9, factor=3, seed=5,
                         directory=tmp_path, project_name="hb", max_trials=12)
    assert isinstance(tuner.oracle.study.pruner, optuna.pruners.HyperbandPruner)
    tuner.search(x[:600], y[:600], epochs=1, batch_size=64, validation_data=(xv, yv), verbose=0)
    trials = list(tuner.oracle.trials.values())
    pruned = [t for t in trials if t.status == "PRUNED"]
    completed = [t for t in trials if t.status == "COMPLETED"]
    assert len(trials) == 12 and len(pruned) >= 2, [(t.status, t.score) for t in trials]
    # `epochs=1` was replaced by max_epochs; pruned trials stopped before it.
    assert all(len(t.metrics["val_accuracy"]) == 9 for t in completed)
    assert all(len(t.metrics["val_accuracy"]) < 9 for t in pruned)
    assert max(t.score for t in completed) > max(t.score for t in pruned)
    # Hyperband's own trial count when max_trials is not given: 9 + 5 + 3 for 9 epochs, factor 3.
    assert kt.Hyperband(build, max_epochs=9, factor=3, directory=tmp_path,
                        project_name="count").oracle.max_trials == 17


_KILLED_SEARCH = """
import os, signal, sys
import torch
torch.set_num_threads(1)
import lamina
# `import lamina` leaves Optuna (and lamina.tuner) unimported; the tuner imports it.
assert "optuna" not in sys.modules and "lamina.tuner" not in sys.modules
import lamina.tuner as kt
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
from lamina import layers
sys.path.insert(0, {test_dir!r})
from test_tuner import build

class KillDuringThirdTrial(lamina.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        trials = kt_tuner.oracle.study.get_trials(deepcopy=False)
        if len(trials) == 3 and epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

(x, y), (xv, yv) = lamina.datasets.digits.load_data()
x, xv = x.reshape(len(x), -1)[:300], xv.reshape(len(xv), -1)
kt_tuner = kt.RandomSearch(build, objective="val_accuracy", max_trials=4, seed=0,
                           directory={directory!r}, project_name="resume")
kt_tuner.search(x, y[:300], epochs=3, validation_data=(xv, yv), verbose=0,
                callbacks=[KillDuringThirdTrial()])
"""


def test_a_killed_search_continues_where_it_stopped(digits, tmp_path):
    x, y, xv, yv = digits
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(_KILLED_SEARCH.format(
        test_dir=os.path.dirname(__file__), directory=str(tmp_path))))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == -9, run.stderr[-2000:]
    journal = tmp_path / "resume" / "optuna_journal.log"
    before = optuna.load_study(study_name="resume", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    states = [t.state.name for t in before.trials]
    assert states == ["COMPLETE", "COMPLETE", "RUNNING"]
    interrupted = before.trials[2].params
    finished = {t.number: t.user_attrs["values"] for t in before.trials[:2]}

    tuner = kt.RandomSearch(build, objective="val_accuracy", max_trials=4, seed=0,
                            directory=tmp_path, project_name="resume")
    tuner.search(x[:300], y[:300], epochs=3, validation_data=(xv, yv), verbose=0)
    trials = tuner.oracle.study.trials
    kept = [t for t in trials if not t.user_attrs.get("interrupted")]
    assert len(kept) == 4 and all(t.state.name == "COMPLETE" for t in kept)
    # The two finished trials were kept, not rerun; the interrupted one ran again, same values.
    assert {t.number: t.user_attrs["values"] for t in kept[:2]} == finished
    assert kept[2].params == interrupted
    assert len(tuner.oracle.trials) == 4
    # The resumed sampler draws new values rather than replaying the first run's stream.
    assert kept[3].params != kept[0].params


def test_tune_new_entries_false_keeps_unlisted_values_at_their_default(digits, tmp_path):
    x, y, xv, yv = digits
    space = kt.HyperParameters()
    space.Float("lr", 1e-3, 1e-2, sampling="log")
    tuner = kt.RandomSearch(build, objective="val_accuracy", max_trials=3, seed=0,
                            hyperparameters=space, tune_new_entries=False,
                            directory=tmp_path, project_name="fixed")
    tuner.search(x[:200], y[:200], epochs=1, validation_data=(xv, yv), verbose=0)
    values = [t.hyperparameters.values for t in tuner.oracle.trials.values()]
    assert all(v["units"] == 16 for v in values)
    assert len({v["lr"] for v in values}) == 3
    with pytest.raises(RuntimeError, match="allow_new_entries=False"):
        kt.RandomSearch(build, hyperparameters=space, allow_new_entries=False,
                        directory=tmp_path, project_name="strict")


def test_overwrite_starts_anew_and_errors_name_the_fix(digits, tmp_path):
    x, y, xv, yv = digits
    tuner = kt.RandomSearch(build, objective="val_accuracy", max_trials=1,
                            directory=tmp_path, project_name="p")
    tuner.search(x[:100], y[:100], epochs=1, validation_data=(xv, yv), verbose=0)
    again = kt.RandomSearch(build, objective="val_accuracy", max_trials=1,
                            directory=tmp_path, project_name="p", overwrite=True)
    assert again.oracle.trials == {}
    with pytest.raises(ValueError, match=r"Could not infer the direction .* 'val_wer'.*Objective"):
        kt.RandomSearch(build, objective="val_wer", directory=tmp_path, project_name="q")
    with pytest.raises(ValueError, match=r"other direction \(maximize\)"):
        kt.RandomSearch(build, objective="val_loss", directory=tmp_path, project_name="p")
    with pytest.raises(ValueError, match=r"`max_trials` must be an integer >= 1\. Received: max_trials=0"):
        kt.RandomSearch(build, max_trials=0, directory=tmp_path, project_name="r")
    bad = kt.RandomSearch(build, objective="val_accuracy", max_trials=1,
                          max_consecutive_failed_trials=1, directory=tmp_path, project_name="s")
    with pytest.raises(RuntimeError, match=r"objective 'val_accuracy' is not in the epoch logs"):
        bad.search(x[:100], y[:100], epochs=1, verbose=0)


class Recording(kt.HyperModel):
    """Builds a small MLP with a conditional branch and records what each fit achieved."""

    def __init__(self, fail_first=0):
        super().__init__()
        self.bests, self.fail_first, self.calls = [], fail_first, 0

    def build(self, hp):
        kind = hp.Choice("kind", ["wide", "deep"])
        stack = [layers.Input((64,))]
        with hp.conditional_scope("kind", ["wide"]):
            if kind == "wide":
                stack.append(layers.Dense(hp.Int("width", 32, 64, step=32), activation="relu"))
        with hp.conditional_scope("kind", ["deep"]):
            if kind == "deep":
                for _ in range(hp.Int("depth", 2, 3)):
                    stack.append(layers.Dense(16, activation="relu"))
        model = lamina.Sequential([*stack, layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, **kwargs):
        self.calls += 1
        history = model.fit(*args, **kwargs)
        if self.calls <= self.fail_first:
            # After training, so a retried trial has already reported its epochs once.
            raise RuntimeError("flaky data source")
        self.bests.append(max(history.history["val_accuracy"]))
        return history


def test_conditional_branches_executions_and_retries(digits, tmp_path):
    x, y, xv, yv = digits
    hypermodel = Recording(fail_first=1)
    tuner = kt.RandomSearch(hypermodel, objective="val_accuracy", max_trials=6, seed=4,
                            executions_per_trial=2, max_retries_per_trial=1,
                            directory=tmp_path, project_name="cond")
    tuner.search(x[:300], y[:300], epochs=1, validation_data=(xv, yv), verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert [t.status for t in trials] == ["COMPLETED"] * 6
    # The first fit raised and was retried once: 1 + 6 trials x 2 executions fits in all.
    assert hypermodel.calls == 13 and len(hypermodel.bests) == 12
    for index, trial in enumerate(trials):
        first, second = hypermodel.bests[2 * index:2 * index + 2]
        assert trial.score == pytest.approx((first + second) / 2, rel=1e-12)
        values = trial.hyperparameters.values
        assert ("width" in values) == (values["kind"] == "wide")
        assert ("depth" in values) == (values["kind"] == "deep")
    assert {t.hyperparameters.values["kind"] for t in trials} == {"wide", "deep"}
    # Both branches are in the space the tuner keeps on disk.
    saved = json.loads((tmp_path / "cond" / "tuner.json").read_text())
    assert {hp["config"]["name"] for hp in saved["hyperparameters"]["space"]} == \
        {"kind", "width", "depth"}


def test_failed_trials_are_recorded_and_count(digits, tmp_path):
    x, y, xv, yv = digits
    hypermodel = Recording(fail_first=2)
    tuner = kt.RandomSearch(hypermodel, objective="val_accuracy", max_trials=3, seed=0,
                            directory=tmp_path, project_name="fail")
    tuner.search(x[:200], y[:200], epochs=1, validation_data=(xv, yv), verbose=0)
    statuses = [t.status for t in tuner.oracle.trials.values()]
    assert statuses == ["FAILED", "FAILED", "COMPLETED"]
    frozen = tuner.oracle.study.trials[0]
    assert frozen.user_attrs["error"] == "RuntimeError: flaky data source"
    assert [t.status for t in tuner.oracle.get_best_trials(3)] == ["COMPLETED"]


def test_the_tuner_compiles_with_its_own_optimizer_loss_and_metrics(digits, tmp_path):
    x, y, xv, yv = digits

    def uncompiled(hp):
        return lamina.Sequential([layers.Input((64,)),
                                  layers.Dense(hp.Int("units", 8, 16, step=8)),
                                  layers.Dense(10, activation="softmax")])

    adam = lamina.optimizers.Adam(1e-2)
    tuner = kt.RandomSearch(uncompiled, objective="val_accuracy", max_trials=2, seed=0,
                            optimizer=adam,
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                            directory=tmp_path, project_name="compiled")
    tuner.search(x[:300], y[:300], epochs=2, validation_data=(xv, yv), verbose=0)
    assert all(t.status == "COMPLETED" and t.score > 0.3 for t in tuner.oracle.trials.values())
    # Each trial trained its own copy: the optimizer passed in was never built.
    assert not adam.built and adam.iterations == 0
