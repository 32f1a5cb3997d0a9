"""The Doctor's statistics against torch/numpy references, its hooks and sampling, fit(doctor=),
the saved record, the report, verbose output and the `lamina doctor` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import lamina as keras
from lamina import initializers, layers
from lamina.callbacks import Doctor
from lamina.cli import main
from lamina.diagnostics import diagnose, diagnose_run, load_record
from lamina.errors import DataError
from tests.diagnostics import planted


def _data(n=96, features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=2.0, scale=3.0, size=(n, features)).astype("float32")
    y = rng.integers(0, 3, n)
    return x, y


def _model(features=6, hidden_activation="relu", **dense):
    return keras.Sequential([keras.Input((features,)),
                             layers.Dense(8, activation=hidden_activation, **dense),
                             layers.Dense(3, activation="softmax")])


def test_gradient_rms_and_update_ratio_match_a_hand_computed_step():
    keras.set_random_seed(0)
    x, y = _data(32)
    model = _model()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.build((None, 6))
    before = [[p.detach().clone() for p in layer.parameters()] for layer in model.layers]
    state = {n: p.detach().clone() for n, p in model.named_parameters()}
    doctor = Doctor(every=1)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[doctor])
    # The reference: the same step in plain torch.
    reference = _model()
    reference.build((None, 6))
    reference.load_state_dict(state)
    probabilities = reference(torch.from_numpy(x))
    loss = nn.functional.nll_loss(torch.log(probabilities), torch.from_numpy(y))
    loss.backward()
    epoch = doctor.record["epochs"][0]
    assert epoch["loss"][0] == pytest.approx(loss.item(), rel=1e-5)
    for index, layer in enumerate(reference.layers):
        grads = torch.cat([p.grad.flatten() for p in layer.parameters()])
        rms = float(grads.norm() / grads.numel() ** 0.5)
        assert epoch["grad_rms"][0][index] == pytest.approx(rms, rel=1e-4)
        after = list(model.layers[index].parameters())
        moved = torch.cat([(a.detach() - b).flatten() for a, b in zip(after, before[index])])
        size = torch.cat([b.flatten() for b in before[index]]).norm()
        moved = moved.norm()
        assert epoch["update_ratio"][0][index] == pytest.approx(float(moved / size), rel=1e-4)


def test_input_and_label_statistics_match_numpy():
    x, y = _data(96)
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    doctor = Doctor(every=1)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[doctor])
    inputs = doctor.record["epochs"][0]["inputs"]["x"]
    np.testing.assert_allclose(inputs["mean"], x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(inputs["std"], x.std(0), rtol=1e-4)
    labels = doctor.record["epochs"][0]["labels"]
    np.testing.assert_array_equal(labels["histogram"], np.bincount(y, minlength=3))
    assert (labels["min"], labels["max"]) == (y.min(), y.max())


def test_dead_and_saturated_fractions_match_a_forward_pass_with_fixed_weights():
    x, y = _data(96)
    model = keras.Sequential([keras.Input((6,)),
                              layers.Dense(8, activation="tanh",
                                           kernel_initializer=initializers.RandomNormal(
                                               stddev=1.0)),
                              layers.Dense(16, activation="relu",
                                           bias_initializer=initializers.Constant(-1.0)),
                              layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    doctor = Doctor(every=1)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[doctor])
    tanh, dense = model.layers[0], model.layers[1]
    with torch.no_grad():
        squashed = tanh(torch.from_numpy(x))
        hidden = dense(squashed)
    epoch = doctor.record["epochs"][0]
    dead = 1 - (hidden > 0).any(0).float().mean().item()
    saturated = (squashed.abs() > 0.99).float()
    # Both bounds are hit, and some units are dead and some alive: the comparison means something.
    assert (squashed > 0.99).any() and (squashed < -0.99).any() and 0 < dead < 1
    assert epoch["dead"][dense.name] == pytest.approx(dead)
    assert epoch["saturated"][tanh.name] == pytest.approx(saturated.mean().item(), abs=1e-6)


def test_sampling_every_n_steps_leaves_no_hooks_behind():
    x, y = _data(320)
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    doctor = Doctor(every=3)
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[doctor])
    assert [e["steps"] for e in doctor.record["epochs"]] == [[0, 3, 6, 9], [2, 5, 8]]
    assert all(not m._forward_hooks for m in model.modules())
    assert model._lamina_trainer.after_backward_hooks == []


def test_the_default_spacing_samples_a_few_steps_per_epoch():
    x, y = _data(32 * 40)
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    doctor = Doctor()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[doctor])
    assert doctor.record["every"] == 5
    assert doctor.record["epochs"][0]["steps"] == list(range(0, 40, 5))


def test_fit_doctor_true_adds_one_doctor_and_rejects_other_values():
    x, y = planted.digits_data(256)
    model = planted._mlp([32], "relu")
    model.compile(keras.optimizers.SGD(1e-5), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, verbose=0, doctor=True)
    assert isinstance(model.doctor, Doctor)
    assert [d.code for d in model.doctor.diagnoses] == ["lr_too_low"]
    mine = Doctor()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[mine], doctor=True)
    assert model.doctor is mine
    with pytest.raises(TypeError, match="`doctor` must be True, False or a lamina.callbacks"):
        model.fit(x, y, epochs=1, verbose=0, doctor="yes")
    with pytest.raises(ValueError, match="Received: every=0"):
        Doctor(every=0)


def test_verbose_prints_each_finding_once_when_established(capsys):
    x, y = planted.digits_data(256)
    model = planted._mlp([32], "relu")
    model.compile(keras.optimizers.SGD(1e-5), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, verbose=0, callbacks=[Doctor(verbose=True)])
    out = capsys.readouterr().out
    assert out.count("Training doctor: [warning] lr_too_low (epoch 2)") == 1


def test_diagnosis_fields_and_report_order(tmp_path):
    keras.set_random_seed(0)
    doctor = planted.saturated_tanh_wrapped()
    codes = [d.code for d in doctor.diagnoses]
    assert set(codes) == {"saturated_activations", "unnormalized_inputs"}
    saturated = doctor.diagnoses[codes.index("saturated_activations")]
    # A wrapped torch module's layers are named by module path.
    assert saturated.layer == "1" and saturated.severity == "warning"
    assert saturated.epoch == 0 and "tanh outputs" in saturated.evidence
    assert any("replace tanh with relu in 1" in r for r in saturated.remedies)
    report = doctor.report()
    assert report.splitlines()[0] == "Training doctor for model 'sequential': 2 findings, " \
                                     "worst first."


def test_errors_come_before_warnings():
    keras.set_random_seed(0)
    doctor = planted.lr_high_sgd_regression()
    severities = [d.severity for d in doctor.diagnoses]
    assert severities == sorted(severities, key=("error", "warning").index)
    assert "error" in severities


def test_saved_record_round_trips_and_the_command_reports_it(tmp_path, capsys):
    keras.set_random_seed(0)
    x, y = planted.digits_data(256)
    model = planted._mlp([32], "relu")
    model.compile(keras.optimizers.SGD(1e-5), "sparse_categorical_crossentropy")
    doctor = Doctor(log_dir=tmp_path / "run")
    model.fit(x, y, epochs=3, verbose=0, callbacks=[doctor])
    record = load_record(tmp_path / "run")
    assert [d.to_dict() for d in diagnose(record)] == [d.to_dict() for d in doctor.diagnoses]
    found, report = diagnose_run(tmp_path / "run")
    assert report == doctor.report()
    assert (tmp_path / "run" / "doctor.txt").read_text().strip() == report
    assert main(["doctor", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().out.strip() == report


def test_a_failed_fit_still_writes_its_record(tmp_path):
    x, y = planted.digits_data(64)
    x = x.copy()
    x[5, 1] = np.inf
    model = planted._mlp([8], "relu")
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(DataError):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[Doctor(log_dir=tmp_path)])
    found, report = diagnose_run(tmp_path)
    assert [d.code for d in found] == ["nonfinite_inputs"]
    assert "0 NaN and 1 infinite values, the first in sample 5" in report


def test_hostile_or_missing_records_are_refused(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="No training-doctor record"):
        load_record(tmp_path)
    (tmp_path / "doctor.json").write_text('{"version": 1, "history": {"loss": [NaN]}}')
    with pytest.raises(ValueError, match="non-standard JSON constant NaN"):
        load_record(tmp_path)
    (tmp_path / "doctor.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_record(tmp_path)
    assert main(["doctor", str(tmp_path / "missing")]) == 2
    assert "No training-doctor record" in capsys.readouterr().err


def test_the_saved_record_is_strict_json(tmp_path):
    keras.set_random_seed(0)
    doctor = planted.exploding_deep_relu()
    doctor.save(tmp_path)
    text = (tmp_path / "doctor.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the record"))
    assert [d.code for d in diagnose_run(tmp_path)[0]] == ["exploding_gradients"]


def test_findings_name_keras_layers_and_wrapped_module_paths():
    from lamina.layers.layer import Layer

    keras.set_random_seed(0)
    doctor = planted.exploding_subclassed_chain()
    names = {m.name for m in doctor.model.modules() if isinstance(m, Layer)}
    assert doctor.diagnoses[0].layer in names - {doctor.model.name}
    doctor = planted.vanishing_wrapped_torch()
    (finding,) = doctor.diagnoses
    paths = dict(doctor.model.module.named_modules())
    assert finding.layer == "0" and isinstance(paths[finding.layer], nn.Linear)
    assert "replace the sigmoid modules 1..21 with nn.ReLU()" in finding.remedies
