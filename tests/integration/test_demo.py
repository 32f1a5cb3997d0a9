"""The main job: `lamina demo` trains the digits CNN to >= 97% and writes its report folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics
from support.report_page import Page

from lamina.cli import main


def test_demo_reaches_97_percent_and_writes_the_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["demo", "--output-dir", str(run), "--verbose", "0"]) == 0
    for name in ("model.keras", "history.csv", "learning_curves.png", "confusion_matrix.png",
                 "classification_report.txt", "metrics.json", "report.html"):
        assert (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97
    assert (run / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert f"Run folder: {run.resolve()}" in out and "precision" in out

    import lamina

    model = lamina.models.load_model(run / "model.keras")
    assert model.count_params() > 0

    # report.html holds sklearn's numbers for the saved model on the demo's test split.
    _, (x_test, y_test) = lamina.datasets.digits.load_data(test_split=0.2, seed=0)
    predicted = model.predict(x_test, verbose=0).argmax(axis=1)
    page = Page((run / "report.html").read_text(encoding="utf-8"))
    accuracy = page.rows("summary-table", "data-metric")["accuracy"][0]
    assert accuracy == sklearn_metrics.accuracy_score(y_test, predicted)
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-6)  # lamina's own metric
    confusion = page.rows("confusion-matrix-table", "data-true")
    assert np.array([confusion[str(i)] for i in range(10)]).tolist() == (
        sklearn_metrics.confusion_matrix(y_test, predicted).tolist())


def test_version_command(capsys):
    from lamina import __version__

    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__
