"""The `keras-tricks` command."""

import argparse
import sys


def _demo(args):
    from keras_tricks.datasets import load_digits
    from keras_tricks.studies import init_study

    train, dev = load_digits(seed=args.seed)
    print(
        f"Digits: {len(train[0])} training and {len(dev[0])} dev examples "
        f"(scikit-learn's embedded copy, no download).",
        flush=True,
    )
    report = init_study(
        train, dev, depth=args.depth, epochs=args.epochs, seed=args.seed
    )
    print(report)
    print(
        "\nN(0,1) weights saturate the deep tanh net (|tanh| > 0.99) and its "
        "first-layer gradient explodes; it stays near chance (0.1). Glorot, "
        "He and LSUV keep the signal in range and train."
    )
    return 0


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def build_parser():
    """The argument parser of `keras-tricks`."""
    parser = argparse.ArgumentParser(
        prog="keras-tricks",
        description="Show what each deep-learning training trick does.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="initialisation study on the embedded digits data"
    )
    demo.add_argument(
        "--depth", type=_positive_int, default=20, help="hidden layers (default 20)"
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=10,
        help="training epochs per variant (default 10)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    """Entry point of the `keras-tricks` command."""
    args = build_parser().parse_args(argv)
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
