"""`make bench`: runs the benchmarks and writes benchmarks/RESULTS.md."""

import sys


def main():
    print(
        "No benchmarks are implemented yet: the overhead ratios against native "
        "Keras arrive with the layers, optimizer, callbacks, data and tuning "
        "issues. Nothing was measured and benchmarks/RESULTS.md was not written."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
