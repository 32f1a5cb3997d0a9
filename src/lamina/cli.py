"""The `lamina` command: `lamina demo` trains the digits CNN and writes a report folder."""

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
    commands.add_parser("version", help="print the version")
    args = parser.parse_args(argv)
    if args.command == "version":
        from lamina import __version__

        print(__version__)
        return 0
    from lamina.demo import run_demo

    results = run_demo(args.output_dir, epochs=args.epochs, seed=args.seed,
                       verbose="auto" if args.verbose is None else args.verbose)
    return 0 if results["test_accuracy"] >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
