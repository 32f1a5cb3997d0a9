"""Does `fit` hold more memory than the raw loop? (issue #15: peak within 10%)

For each workload of bench/fit_mlp.py and bench/fit_cnn_lstm.py (the MLP, the small CNN, the
LSTM), each contender trains in a fresh subprocess: the data and the model are built, one
warm-up epoch runs (the optimizer's state, lazily made buffers, the allocator's pools), the
process's peak RSS is reset (`/proc/self/clear_refs`), then `--epochs` epochs run (each a
`fit` call for Lamina). Two peaks are read from /proc/self/status (`VmHWM`), both over the RSS
after `import lamina`: the whole run's (data, model, warm-up epoch, epochs) and the steady-state
epochs' alone. Both are measured from that one baseline, not from the RSS just before the
epochs: a contender that gives its temporaries back between epochs (a `fit` call returns them
to the system, the next call's first steps fault them in again) would otherwise read as
"growing" by what the other kept mapped all along, with no higher peak. Contenders alternate
over `--repeats` runs and the smallest value of each is kept (a run can only be inflated by
noise).

Linux only (reads /proc). Usage: python bench/memory.py [--samples 8192] [--repeats 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = ("MLP", "CNN", "LSTM")
CONTENDERS = ("raw loop", "lamina fit")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _epoch(workload: str, contender: str, samples: int):
    sys.path.insert(0, HERE)
    import fit_cnn_lstm
    import fit_mlp

    if workload == "MLP":
        x, y = fit_mlp.data(samples)
        return fit_mlp.tuned_raw_loop(x, y) if contender == "raw loop" else \
            fit_mlp.lamina_fit(x, y, keras_style=False)
    name = {"CNN": "small CNN", "LSTM": "LSTM"}[workload]
    for label, raw, lamina_epoch in fit_cnn_lstm.workloads(samples):
        if label == name:
            return raw if contender == "raw loop" else lamina_epoch
        del raw, lamina_epoch
    raise ValueError(workload)


def measure_here(workload: str, contender: str, samples: int, epochs: int) -> dict:
    import lamina  # noqa: F401  (both contenders pay for the import alike)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    start = _status_kib("VmRSS")
    epoch = _epoch(workload, contender, samples)
    epoch()  # the first epoch makes the optimizer's state and warms the allocator, in both
    first_peak = _status_kib("VmHWM")
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current RSS
    for _ in range(epochs):
        epoch()
    last_peak = _status_kib("VmHWM")
    return {"steady_peak_mib": (last_peak - start) / 1024,
            "run_peak_mib": (max(first_peak, last_peak) - start) / 1024}


def measure(workload: str, contender: str, samples: int, epochs: int) -> dict:
    command = [sys.executable, __file__, "--one", workload, contender, "--samples", str(samples),
               "--epochs", str(epochs)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS))
    parser.add_argument("--one", nargs=2, metavar=("WORKLOAD", "CONTENDER"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_here(*args.one, args.samples, args.epochs)))
        return
    print(f"peak RSS (MiB) over the RSS after import: over the whole run, and during "
          f"{args.epochs} further epoch(s); {args.samples} samples, min of {args.repeats} runs "
          "per contender")
    for workload in args.workloads:
        runs: dict[str, list[dict]] = {c: [] for c in CONTENDERS}
        for _ in range(args.repeats):
            for contender in CONTENDERS:
                runs[contender].append(measure(workload, contender, args.samples, args.epochs))
        for key, what in (("run_peak_mib", "whole run (data, model, warm-up epoch, epochs)"),
                          ("steady_peak_mib", "steady-state epochs")):
            raw = min(run[key] for run in runs["raw loop"])
            ours = min(run[key] for run in runs["lamina fit"])
            verdict = "ok" if ours <= raw * 1.10 + 1.0 else "MISSED"
            print(f"  {workload:<5} raw {raw:7.1f}   lamina {ours:7.1f}   ({verdict}: target "
                  f"<= 1.10x raw + 1 MiB)  peak over {what}")


if __name__ == "__main__":
    main()
