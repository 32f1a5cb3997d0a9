"""`lamina.evaluation.report`: the page's numbers are scikit-learn's, computed here independently
from the model's own predictions; images are real PNGs; the worst mistakes are the highest-loss
samples by a numpy computation; hostile class names and doctor text stay text."""

from __future__ import annotations

import base64
import os
import types

import numpy as np
import pytest
from sklearn import metrics
from support.report_page import Page, png

import lamina as keras
from lamina import layers
from lamina.datasets import digits
from lamina.evaluation import classification_scores, report


def train(x, y, model, loss, epochs):
    keras.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=epochs, validation_split=0.2, verbose=0,
                        callbacks=[keras.callbacks.ReduceLROnPlateau(patience=1, factor=0.5)])
    return model, history


@pytest.fixture(scope="module")
def multiclass():
    """A 10-class digits classifier trained briefly, so it still makes mistakes."""
    (x, y), (x_test, y_test) = digits.load_data(test_split=0.25, seed=1)
    model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Flatten(),
                              layers.Dense(10, activation="softmax")])
    model, history = train(x[:600], y[:600], model, "sparse_categorical_crossentropy", 4)
    return model, history, x_test, y_test


@pytest.fixture(scope="module")
def binary():
    """3 against 8, flattened (not images), with a sigmoid output and with raw logits."""
    (x, y), _ = digits.load_data(test_split=0.0, seed=2)
    keep = np.isin(y, (3, 8))
    x, y = x[keep].reshape(-1, 64), (y[keep] == 8).astype(np.int64)
    sigmoid = keras.Sequential([keras.Input(shape=(64,)), layers.Dense(1, activation="sigmoid")])
    logits = keras.Sequential([keras.Input(shape=(64,)), layers.Dense(1)])
    train(x[:200], y[:200], sigmoid, "binary_crossentropy", 2)
    train(x[:200], y[:200], logits, keras.losses.BinaryCrossentropy(from_logits=True), 2)
    return sigmoid, logits, x[200:], y[200:]


@pytest.fixture(scope="module")
def multiclass_report(multiclass, tmp_path_factory):
    model, history, x, y = multiclass
    path = tmp_path_factory.mktemp("multiclass") / "report.html"
    result = report(model, x, y, history=history, path=path, max_mistakes=12)
    return result, path


def test_multiclass_numbers_are_sklearns(multiclass, multiclass_report):
    model, history, x, y = multiclass
    result, path = multiclass_report
    page = Page(path.read_text(encoding="utf-8"))
    probabilities = model.predict(x, verbose=0).astype(np.float64)
    predicted = probabilities.argmax(axis=1)
    assert 0.5 < (predicted == y).mean() < 1, "the fixture should be good but imperfect"

    summary = page.rows("summary-table", "data-metric")
    assert summary["accuracy"] == [pytest.approx((predicted == y).mean(), abs=1e-12)]
    assert summary["accuracy"] == [pytest.approx(metrics.accuracy_score(y, predicted), abs=1e-12)]
    assert summary["roc_auc"] == [pytest.approx(
        metrics.roc_auc_score(y, probabilities, multi_class="ovr", average="macro"), abs=1e-9)]
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y, predicted, labels=range(10), zero_division=0)
    per_class = page.rows("per-class-table", "data-class")
    assert sorted(per_class, key=int) == [str(c) for c in range(10)]
    for c in range(10):
        auc = metrics.roc_auc_score(y == c, probabilities[:, c])
        ap = metrics.average_precision_score(y == c, probabilities[:, c])
        assert per_class[str(c)] == pytest.approx(
            [precision[c], recall[c], f1[c], support[c], auc, ap], abs=1e-12)
    macro = page.rows("per-class-table", "data-average")["macro"]
    assert macro[:3] == pytest.approx(list(metrics.precision_recall_fscore_support(
        y, predicted, average="macro", zero_division=0)[:3]), abs=1e-12)
    assert summary["macro_f1"] == [pytest.approx(metrics.f1_score(y, predicted, average="macro"))]

    confusion = page.rows("confusion-matrix-table", "data-true")
    expected = metrics.confusion_matrix(y, predicted, labels=range(10))
    assert np.array([confusion[str(i)] for i in range(10)]).tolist() == expected.tolist()
    assert result.confusion_matrix.tolist() == expected.tolist()
    assert page.sections == ["summary", "learning-curves", "confusion-matrix", "per-class",
                             "roc-pr", "mistakes"]
    # Atomic: nothing but the report in the folder afterwards.
    assert os.listdir(path.parent) == ["report.html"]


def test_images_are_embedded_pngs_and_the_page_needs_nothing_else(multiclass_report):
    result, path = multiclass_report
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    # learning curves, confusion matrix, ROC/PR, then one thumbnail per mistake
    assert len(page.images) == 3 + len(page.mistakes)
    plots = [png(image["src"]) for image in page.images if image["class"] == "plot"]
    assert len(plots) == 3 and all(image.width > 300 for image in plots)
    embedded = [base64.b64decode(image["src"].split(",", 1)[1]) for image in page.images[:3]]
    assert embedded == [result.images[name] for name in
                        ("learning_curves", "confusion_matrix", "roc_pr")]
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert not [name for name in page.attributes if name.startswith("on")]
    assert "http://" not in text and "https://" not in text


def test_worst_mistakes_are_the_highest_loss_samples(multiclass, multiclass_report):
    model, history, x, y = multiclass
    result, path = multiclass_report
    page = Page(path.read_text(encoding="utf-8"))
    probabilities = model.predict(x, verbose=0).astype(np.float64)
    loss = -np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1))
    wrong = np.flatnonzero(probabilities.argmax(1) != y)
    assert len(wrong) > 12
    shown = [int(m["data-index"]) for m in page.mistakes]
    assert len(shown) == 12 and set(shown) <= set(wrong.tolist())
    assert shown == result.mistakes.tolist()
    assert [float(m["data-loss"]) for m in page.mistakes] == pytest.approx(
        np.sort(loss[wrong])[::-1][:12], rel=1e-9)
    for mistake in page.mistakes:
        index = int(mistake["data-index"])
        assert int(mistake["data-true"]) == y[index]
        assert int(mistake["data-predicted"]) == probabilities[index].argmax()
        # The thumbnail is the sample itself: digits are in [0, 1], shown times 255.
        thumbnail = np.asarray(png(mistake["thumbnail"]))
        assert thumbnail.tolist() == np.round(x[index, :, :, 0] * 255).astype(np.uint8).tolist()


def test_binary_sigmoid_and_logits(binary, tmp_path):
    sigmoid, logits, x, y = binary
    for model, from_logits in ((sigmoid, False), (logits, True)):
        path = tmp_path / f"{model.name}.html"
        result = report(model, x, y, class_names=["three", "eight"], path=path, max_mistakes=50)
        page = Page(path.read_text(encoding="utf-8"))
        score = model.predict(x, verbose=0)[:, 0].astype(np.float64)
        predicted = (score > (0 if from_logits else 0.5)).astype(np.int64)
        assert 0.5 < (predicted == y).mean() < 1
        summary = page.rows("summary-table", "data-metric")
        # AUC depends only on the order of the scores: logits and probabilities agree.
        assert summary["roc_auc"] == [pytest.approx(metrics.roc_auc_score(y, score), abs=1e-9)]
        assert summary["average_precision"] == [pytest.approx(
            metrics.average_precision_score(y, score), abs=1e-9)]
        assert summary["accuracy"] == [pytest.approx((predicted == y).mean(), abs=1e-12)]
        confusion = page.rows("confusion-matrix-table", "data-true")
        assert [confusion["0"], confusion["1"]] == metrics.confusion_matrix(y, predicted).tolist()
        per_class = page.rows("per-class-table", "data-class")
        precision, recall, f1, _ = metrics.precision_recall_fscore_support(y, predicted)
        for c in (0, 1):
            assert per_class[str(c)][:3] == pytest.approx([precision[c], recall[c], f1[c]])
        # Not images: the mistakes are a table, losses the binary cross-entropy.
        if from_logits:
            loss = np.logaddexp(0, -score * (2 * y - 1))
        else:
            p_true = np.where(y == 1, score, 1 - score)
            loss = -np.log(np.clip(p_true, 1e-7, 1))
        wrong = np.flatnonzero(predicted != y)
        shown = [int(m["data-index"]) for m in page.mistakes]
        assert len(shown) == min(50, len(wrong)) and set(shown) <= set(wrong.tolist())
        assert [float(m["data-loss"]) for m in page.mistakes] == pytest.approx(
            np.sort(loss[wrong])[::-1][:50], rel=1e-6)
        assert all(m.get("thumbnail") is None for m in page.mistakes)
        assert "mistakes-table" in page.cells
        assert result.binary and result.roc_auc == pytest.approx(metrics.roc_auc_score(y, score))


def test_history_defaults_to_the_models_and_its_learning_rate_is_drawn(multiclass, tmp_path):
    model, history, x, y = multiclass
    assert "learning_rate" in history.history
    path = tmp_path / "with.html"
    report(model, x, y, path=path)  # model.history, set by fit()
    page = Page(path.read_text(encoding="utf-8"))
    assert any(image.get("alt") == "Learning curves" for image in page.images)
    assert "The learning rate was not logged" not in "".join(page.text)

    bare = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Flatten(),
                             layers.Dense(10, activation="softmax")])
    path = tmp_path / "without.html"
    report(bare, x, y, path=path, images=False)
    page = Page(path.read_text(encoding="utf-8"))
    assert "No training history was given." in "".join(page.text)
    assert not any(image.get("alt") == "Learning curves" for image in page.images)
    assert "mistakes-table" in page.cells  # images=False: a table, no thumbnails


HOSTILE = ["<script>alert(1)</script>", '$\\frac{x" onload="alert(2)']


class Diagnosis(types.SimpleNamespace):
    pass


def test_hostile_class_names_and_doctor_text_stay_text(binary, tmp_path):
    sigmoid, _, x, y = binary
    doctor = types.SimpleNamespace(diagnoses=[
        Diagnosis(code="overfitting", severity="warning", epoch=3, layer=None,
                  evidence={"gap": "<b>0.4</b>"}, remedies=["Add <Dropout>", "More data & aug"]),
        Diagnosis(code="dead_relu</td><script>", severity="error", epoch=0, layer="dense_1",
                  evidence="80% zero", remedies="Use LeakyReLU"),
    ], report=lambda: "text")
    path = tmp_path / "report.html"
    report(sigmoid, x, y, class_names=HOSTILE, doctor=doctor, path=path)
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert "script" not in page.tags and "b" not in page.tags
    assert not [name for name in page.attributes if name.startswith("on")]
    words = "\n".join(page.text)
    for name in HOSTILE:
        assert name in words  # shown as the literal text
    assert "Add <Dropout>" in words and "More data & aug" in words and "gap: <b>0.4</b>" in words
    assert "dead_relu</td><script>" in words
    assert page.sections[-1] == "doctor"
    header, first, second = page.table_text["doctor-table"]
    assert header == ["severity", "finding", "epoch", "layer", "evidence", "remedies"]
    # Epochs count from 1 on the page, as the progress bar counts them.
    assert first == ["warning", "overfitting", "4", "", "gap: <b>0.4</b>",
                     "Add <Dropout>More data & aug"]
    assert second == ["error", "dead_relu</td><script>", "1", "dense_1", "80% zero",
                      "Use LeakyReLU"]

    quiet = types.SimpleNamespace(diagnoses=[])
    report(sigmoid, x, y, doctor=quiet, path=path)
    assert "found nothing to report" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("kwargs, y_change, error, words", [
    ({"class_names": ["a", "b", "c"]}, None, ValueError, "must name each of the model's 2 classes"),
    ({}, lambda y: y + 1, ValueError, "outside 0..1"),
    ({}, lambda y: y[:-1], ValueError, "one class id per sample"),
    ({}, lambda y: y + 0.5, ValueError, "integer class ids"),
    ({"doctor": object()}, None, TypeError, "`doctor` must be"),
    ({"images": True}, None, ValueError, "images=True needs"),
    ({"max_mistakes": -1}, None, ValueError, "max_mistakes=-1"),
])
def test_bad_arguments_say_what_to_fix(binary, tmp_path, kwargs, y_change, error, words):
    sigmoid, _, x, y = binary
    if y_change is not None:
        y = y_change(y)
    with pytest.raises(error, match=words.replace("(", r"\(").replace("$", r"\$")):
        report(sigmoid, x, y, path=tmp_path / "r.html", **kwargs)
    assert not (tmp_path / "r.html").exists()


def test_one_hot_labels_and_classes_absent_from_y(multiclass):
    model, _, x, y = multiclass
    probabilities = model.predict(x, verbose=0).astype(np.float64)
    keep = y != 9
    one_hot = np.eye(10)[y[keep]]
    result = classification_scores(one_hot, probabilities[keep])
    assert result.labels.tolist() == y[keep].tolist()
    assert np.isnan(result.roc_auc_per_class[9]) and np.isnan(result.average_precision_per_class[9])
    per_class = [metrics.roc_auc_score(y[keep] == c, probabilities[keep, c]) for c in range(9)]
    assert result.roc_auc_per_class[:9] == pytest.approx(per_class, abs=1e-12)
    assert result.roc_auc == pytest.approx(np.mean(per_class), abs=1e-12)
    assert result.support[9] == 0 and result.recall[9] == 0
    with pytest.raises(ValueError, match="not multi-label targets"):
        classification_scores(np.ones((len(x), 10)), probabilities)


def test_non_finite_outputs_and_non_models_are_refused(tmp_path):
    class Diverged:
        def predict(self, x, batch_size=None, verbose=0):
            return np.full((len(x), 3), np.nan)

    with pytest.raises(ValueError, match="3 non-finite outputs|non-finite outputs"):
        report(Diverged(), np.zeros((1, 4)), np.zeros(1), path=tmp_path / "r.html")
    with pytest.raises(TypeError, match="predict\\(\\)"):
        report(object(), np.zeros((1, 4)), np.zeros(1), path=tmp_path / "r.html")
