"""The training doctor: common training issues diagnosed from what `fit` measured.

`lamina.callbacks.Doctor` collects the statistics during `fit`; `diagnose(record)` turns a run
record into `Diagnosis` findings; `diagnose_run(run_dir)` re-reads a saved one.
"""

from lamina.diagnostics.checks import CODES
from lamina.diagnostics.doctor import (Diagnosis, diagnose, diagnose_run, format_report,
                                       load_record, save_record)

__all__ = ["CODES", "Diagnosis", "diagnose", "diagnose_run", "format_report", "load_record",
           "save_record"]
