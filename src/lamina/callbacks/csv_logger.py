"""CSVLogger: one row of logs per epoch."""

from __future__ import annotations

import csv
import os

from lamina._registry import register
from lamina.callbacks.callback import Callback


@register("CSVLogger")
class CSVLogger(Callback):
    """Streams epoch results to a CSV file (`epoch,loss,...`); `append=True` continues a file."""

    _chief_only = True  # in a distributed run only rank 0 writes the file

    def __init__(self, filename: str, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, append
        self._file = None
        self._writer = None
        self._keys: list[str] | None = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename)
        directory = os.path.dirname(self.filename)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._keys = None
        if exists:
            with open(self.filename, newline="") as existing:
                header = next(csv.reader(existing, delimiter=self.separator), None)
            self._keys = header[1:] if header else None
            self._writer = csv.writer(self._file, delimiter=self.separator)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator)
            self._writer.writerow(["epoch", *self._keys])
        self._writer.writerow([epoch, *(logs.get(k, "NA") for k in self._keys)])
        self._file.flush()

    def state_dict(self):
        # The rows written so far: a resumed run rewrites them and appends, so rows written
        # after the backup (and before the interruption) are not repeated.
        if self._file is None:
            return {}
        self._file.flush()
        with open(self.filename, newline="") as written:
            return {"content": written.read(), "keys": self._keys}

    def load_state_dict(self, state):
        if "content" not in state or self._file is None:
            return
        self._file.close()
        with open(self.filename, "w", newline="") as rewritten:
            rewritten.write(state["content"])
        self._file = open(self.filename, "a", newline="")
        self._keys = state["keys"]
        self._writer = csv.writer(self._file, delimiter=self.separator)

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None
