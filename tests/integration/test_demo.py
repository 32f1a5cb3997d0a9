"""The main job: `lamina demo` trains the digits CNN to >= 97% and writes its report folder."""

from __future__ import annotations

import json

from lamina.cli import main


def test_demo_reaches_97_percent_and_writes_the_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["demo", "--output-dir", str(run), "--verbose", "0"]) == 0
    for name in ("model.keras", "history.csv", "learning_curves.png", "confusion_matrix.png",
                 "classification_report.txt", "metrics.json"):
        assert (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97
    assert (run / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert f"Run folder: {run.resolve()}" in out and "precision" in out

    import lamina

    model = lamina.models.load_model(run / "model.keras")
    assert model.count_params() > 0


def test_version_command(capsys):
    from lamina import __version__

    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__
