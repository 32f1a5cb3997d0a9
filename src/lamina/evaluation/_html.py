"""The report's HTML: inline CSS, PNG images as data URIs, no script, every text escaped.

Each number sits in a cell whose `data-value` holds it at full precision (the visible text is
rounded), so tools and tests read the page's numbers exactly.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
from typing import Any

import numpy as np

from lamina.evaluation import plots

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1d2329; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: right; }
th { background: #f6f8fa; } th.name { text-align: left; }
img.plot { max-width: 100%; height: auto; }
.meta, .note { color: #57606a; }
.mistakes { display: flex; flex-wrap: wrap; gap: .8rem; }
.mistakes figure { margin: 0; width: 120px; font-size: .75rem; }
.mistakes img { width: 96px; image-rendering: pixelated; border: 1px solid #d0d7de; }
td.text { text-align: left; }
tr[data-severity="error"] th, tr[data-severity="critical"] th { color: #b42318; }
tr[data-severity="warning"] th { color: #9a6700; }
"""


def render(result: Any, *, history: Any, doctor: Any, images: np.ndarray | None,
           title: str) -> str:
    """The whole page for an `EvaluationReport`."""
    count, classes = result.probabilities.shape
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    sections = [
        _summary(result),
        _learning_curves(history, result.images),
        _confusion(result),
        _per_class(result),
        _curves(result),
        _mistakes(result, images),
    ]
    if doctor is not None:
        sections.append(_doctor(doctor))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>{_e(title)}</h1>\n<p class=\"meta\">{count} samples, {classes} classes"
        f"{' (binary)' if result.binary else ''}. Written {_e(stamp)} by Lamina.</p>\n"
        + "\n".join(sections) + "\n</body></html>\n"
    )


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _number(value: float, digits: int = 4) -> str:
    value = float(value)
    shown = "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return f'<td data-value="{value!r}">{shown}</td>'


def _plot(figure: Any, name: str, alt: str, images: dict[str, bytes]) -> str:
    images[name] = plots.figure_png(figure)
    return _png(images[name], alt)


def _png(data: bytes, alt: str, css: str = "plot") -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img class="{css}" alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(heading)}</h2>\n{body}\n</section>'


def _summary(result: Any) -> str:
    rows = [
        ("accuracy", "Accuracy", result.accuracy),
        ("macro_precision", "Precision (macro)", result.averages["macro"]["precision"]),
        ("macro_recall", "Recall (macro)", result.averages["macro"]["recall"]),
        ("macro_f1", "F1 (macro)", result.averages["macro"]["f1"]),
        ("weighted_f1", "F1 (weighted)", result.averages["weighted"]["f1"]),
        ("roc_auc", "ROC AUC" + ("" if result.binary else " (one-vs-rest, macro)"),
         result.roc_auc),
        ("average_precision", "Average precision" + ("" if result.binary else " (macro)"),
         result.average_precision),
        ("mean_loss", "Mean cross-entropy", float(np.mean(result.losses))),
    ]
    body = "".join(f'<tr data-metric="{key}"><th class="name">{_e(label)}</th>{_number(value)}</tr>'
                   for key, label, value in rows)
    return _section("summary", "Summary", f'<table id="summary-table">{body}</table>')


def _learning_curves(history: Any, images: dict[str, bytes]) -> str:
    if history is None:
        return _section("learning-curves", "Learning curves",
                        '<p class="note">No training history was given.</p>')
    logs, _ = plots.history_dict(history)
    if not any(logs.values()):
        return _section("learning-curves", "Learning curves",
                        '<p class="note">The training history is empty.</p>')
    note = ("" if any(key in logs for key in plots.LEARNING_RATE_KEYS) else
            '<p class="note">The learning rate was not logged (ReduceLROnPlateau and '
            "LearningRateScheduler log it each epoch).</p>")
    figure = plots.learning_curves_figure(history)
    return _section("learning-curves", "Learning curves and learning rate",
                    _plot(figure, "learning_curves", "Learning curves", images) + note)


def _confusion(result: Any) -> str:
    names = result.class_names
    matrix = result.confusion_matrix
    header = "".join(f'<th class="name">{_e(name)}</th>' for name in names)
    rows = "".join(
        f'<tr data-true="{i}"><th class="name">{_e(names[i])}</th>'
        + "".join(f'<td data-value="{int(v)}">{int(v)}</td>' for v in matrix[i]) + "</tr>"
        for i in range(len(names))
    )
    figure = plots.confusion_matrix_figure(matrix, names)
    return _section(
        "confusion-matrix", "Confusion matrix",
        _plot(figure, "confusion_matrix", "Confusion matrix", result.images)
        + '<p class="note">Rows are true labels, columns predicted labels.</p>'
        + f'<table id="confusion-matrix-table"><tr><th>true \\ predicted</th>{header}</tr>'
        + rows + "</table>")


def _per_class(result: Any) -> str:
    header = ("<tr><th class=\"name\">class</th><th>precision</th><th>recall</th><th>F1</th>"
              "<th>support</th><th>ROC AUC</th><th>average precision</th></tr>")
    rows = []
    for c, name in enumerate(result.class_names):
        rows.append(
            f'<tr data-class="{c}"><th class="name">{_e(name)}</th>'
            + _number(result.precision[c]) + _number(result.recall[c]) + _number(result.f1[c])
            + f'<td data-value="{int(result.support[c])}">{int(result.support[c])}</td>'
            + _number(result.roc_auc_per_class[c]) + _number(result.average_precision_per_class[c])
            + "</tr>")
    for average, values in result.averages.items():
        rows.append(
            f'<tr data-average="{average}"><th class="name">{average} average</th>'
            + _number(values["precision"]) + _number(values["recall"]) + _number(values["f1"])
            + f'<td data-value="{int(result.support.sum())}">{int(result.support.sum())}</td>'
            + "<td></td><td></td></tr>")
    return _section("per-class", "Per-class metrics",
                    f'<table id="per-class-table">{header}{"".join(rows)}</table>')


def _curves(result: Any) -> str:
    if not result.curves:
        return _section("roc-pr", "ROC and precision-recall curves",
                        '<p class="note">No curve: the labels hold a single class.</p>')
    figure = plots.roc_pr_figure(result.curves)
    what = ("the positive class " + _e(result.class_names[1]) if result.binary
            else "each class against the rest")
    return _section("roc-pr", "ROC and precision-recall curves",
                    f'<p class="note">For {what}.</p>'
                    + _plot(figure, "roc_pr", "ROC and precision-recall curves", result.images))


def _mistakes(result: Any, images: np.ndarray | None) -> str:
    if not len(result.mistakes):
        return _section("mistakes", "Worst mistakes", '<p class="note">No mistakes.</p>')
    names = result.class_names
    note = ('<p class="note">Misclassified samples with the highest loss '
            "(cross-entropy of the true class), worst first.</p>")
    items = []
    for index in result.mistakes:
        true, predicted = int(result.labels[index]), int(result.predictions[index])
        attributes = (f'data-index="{int(index)}" data-loss="{float(result.losses[index])!r}" '
                      f'data-true="{true}" data-predicted="{predicted}"')
        confidence = float(result.probabilities[index, predicted])
        caption = (f"#{int(index)}: true {_e(names[true])}, predicted {_e(names[predicted])} "
                   f"(p={confidence:.2f}), loss {float(result.losses[index]):.2f}")
        if images is not None:
            items.append(f'<figure class="mistake" {attributes}>'
                         + _png(_thumbnail(images[index]), f"sample {int(index)}", "thumbnail")
                         + f"<figcaption>{caption}</figcaption></figure>")
        else:
            items.append(
                f'<tr class="mistake" {attributes}><td>{int(index)}</td>'
                f'<td class="text">{_e(names[true])}</td><td class="text">{_e(names[predicted])}</td>'
                + _number(confidence) + _number(result.losses[index]) + "</tr>")
    if images is not None:
        return _section("mistakes", "Worst mistakes",
                        note + f'<div class="mistakes">{"".join(items)}</div>')
    header = ("<tr><th>sample</th><th>true</th><th>predicted</th><th>p(predicted)</th>"
              "<th>loss</th></tr>")
    return _section("mistakes", "Worst mistakes",
                    note + f'<table id="mistakes-table">{header}{"".join(items)}</table>')


def _thumbnail(image: np.ndarray) -> bytes:
    """One image as PNG at its own resolution (the page scales it up, pixelated).

    uint8 images are shown as they are, values in [0, 1] times 255, anything else (standardized
    inputs) stretched from its own minimum to maximum.
    """
    from PIL import Image

    if image.dtype != np.uint8:
        image = image.astype(np.float64)
        low, high = float(image.min()), float(image.max())
        if not (low >= 0 and high <= 1):
            image = (image - low) / (high - low) if high > low else np.zeros_like(image)
        image = np.round(np.nan_to_num(image) * 255).astype(np.uint8)
    if image.shape[-1] == 1:
        image = image[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _doctor(doctor: Any) -> str:
    diagnoses = list(doctor.diagnoses or [])
    if not diagnoses:
        return _section("doctor", "Training doctor",
                        '<p class="note">The doctor watched training and found nothing to '
                        "report.</p>")
    header = ("<tr><th class=\"name\">severity</th><th class=\"name\">finding</th><th>epoch</th>"
              "<th class=\"name\">layer</th><th class=\"name\">evidence</th>"
              "<th class=\"name\">remedies</th></tr>")
    rows = []
    for diagnosis in diagnoses:
        severity = str(getattr(diagnosis, "severity", "") or "")
        # Callbacks see epochs from 0; the page counts them from 1, as the progress bar does.
        epoch = getattr(diagnosis, "epoch", None)
        remedies = getattr(diagnosis, "remedies", None) or []
        if isinstance(remedies, str):
            remedies = [remedies]
        evidence = getattr(diagnosis, "evidence", None)
        if isinstance(evidence, dict):
            evidence = "; ".join(f"{key}: {value}" for key, value in evidence.items())
        rows.append(
            f'<tr class="diagnosis" data-severity="{_e(severity.lower())}">'
            f'<th class="name">{_e(severity)}</th>'
            f'<td class="text">{_e(getattr(diagnosis, "code", ""))}</td>'
            f"<td>{_e(epoch + 1 if isinstance(epoch, int) else epoch or '')}</td>"
            f'<td class="text">{_e(getattr(diagnosis, "layer", None) or "")}</td>'
            f'<td class="text">{_e(evidence if evidence is not None else "")}</td>'
            f'<td class="text"><ul>{"".join(f"<li>{_e(r)}</li>" for r in remedies)}</ul></td>'
            "</tr>")
    return _section("doctor", "Training doctor",
                    f'<table id="doctor-table">{header}{"".join(rows)}</table>')
