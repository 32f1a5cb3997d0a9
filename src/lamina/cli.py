"""The `lamina` command: `lamina demo` trains the digits CNN and writes a report folder;
`lamina doctor RUN_DIR` diagnoses a finished run from the record its Doctor saved there."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lamina", description="Lamina: Keras on torch.nn.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a small CNN on the bundled digits and report")
    demo.add_argument("--output-dir", default=None,
                      help="run folder (default: runs/demo-<timestamp>)")
    demo.add_argument("--epochs", type=int, default=60)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None)
    doctor = commands.add_parser(
        "doctor", help="diagnose a finished run from its doctor.json (exit 1 with findings)")
    doctor.add_argument("run_dir", help="folder a Doctor(log_dir=...) or doctor.save() wrote")
    commands.add_parser("version", help="print the version")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return _doctor(args.run_dir)
    if args.command == "version":
        from lamina import __version__

        print(__version__)
        return 0
    from lamina.demo import run_demo

    results = run_demo(args.output_dir, epochs=args.epochs, seed=args.seed,
                       verbose="auto" if args.verbose is None else args.verbose)
    return 0 if results["test_accuracy"] >= 0.97 else 1


def _doctor(run_dir: str) -> int:
    from lamina.diagnostics import diagnose_run

    try:
        found, report = diagnose_run(run_dir)
    except (OSError, ValueError) as error:
        print(f"lamina doctor: {error}", file=sys.stderr)
        return 2
    print(report)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
