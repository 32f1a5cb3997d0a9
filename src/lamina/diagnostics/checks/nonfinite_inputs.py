"""NaN/Inf in the data: what fit's up-front validation or its non-finite guard found."""

from __future__ import annotations

from lamina.diagnostics.doctor import Diagnosis, Run

CODE = "nonfinite_inputs"


def check(run: Run) -> list[Diagnosis]:
    for event in run.events:
        if event.get("kind") == "nonfinite_inputs":
            where = event.get("where", "x")
            remedies = [f"drop or impute those samples: keep = np.isfinite({where})"
                        f".reshape(len({where}), -1).all(axis=1)",
                        "for streamed data, filter or repair batches in the generator or "
                        "PyDataset (look for division by zero or log of 0 in the loader)"]
            return [Diagnosis(CODE, "error", event["message"], remedies,
                              epoch=event.get("epoch"))]
    return []
