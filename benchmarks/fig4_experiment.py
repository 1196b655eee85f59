"""Run the paper's section 5 experiment (Fig. 4) outside Jupyter.

The experiment lives in ``docs/section5_fig4.ipynb`` (one source of truth);
this script executes that notebook headlessly, prints its text output and
writes the figure (default ``docs/figures/fig4.png``).

Usage::

    python benchmarks/fig4_experiment.py                      # scikit-learn digits
    python benchmarks/fig4_experiment.py --mnist mnist.npz    # a local MNIST file
    python benchmarks/fig4_experiment.py --figures /tmp/figs  # somewhere else

``--mnist`` takes a local ``.npz`` with ``x_train, y_train, x_test, y_test``
(28x28, values 0-255, as distributed with Keras); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, help="local mnist.npz (default: sklearn digits)")
    parser.add_argument(
        "--figures", type=Path, default=DOCS / "figures", help="folder for fig4.png"
    )
    args = parser.parse_args(argv)

    import nbclient
    import nbformat

    os.environ["LUMPKIT_FIGURES"] = str(args.figures.resolve())
    if args.mnist is not None:
        if not args.mnist.is_file():
            parser.error(f"--mnist {args.mnist}: no such file")
        os.environ["LUMPKIT_MNIST"] = str(args.mnist.resolve())
    nb = nbformat.read(DOCS / "section5_fig4.ipynb", as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(
        nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(DOCS)}}
    ).execute()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                sys.stdout.write(out["text"])
    print(f"figure: {args.figures / 'fig4.png'} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
