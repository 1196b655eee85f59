"""Scaling benchmark of :func:`lumpcore.coarsest_lumping` on random sparse graphs.

For each size ``n`` (default 10^4, 10^5, 10^6 nodes, average degree 5) and
each direction, a random graph with *planted* lumpable structure is built:

* nodes are put into random classes of 1 to 5 nodes; a random quotient
  graph on the classes is lifted: for a quotient edge ``A -> B`` of weight
  ``h`` every member of ``A`` sends ``h / (|A| rho(t))`` to every member
  ``t`` of ``B`` (about ``5 n`` edges in all; with ``--weights dyadic``
  it sends ``h / rho(t)``, so every weight is a small dyadic rational).  ``rho`` is 1 on half of the
  classes and 1, 2 or 4 at random on the others, so the classes are
  backward-lumpable in proportional mode, and in plain mode where the
  factors agree.  For the forward direction the edges are reversed.
* 1 % of the edges are then rewired at random (breaking some classes), and
  the initial partition gives each class one of three labels (2 % of the
  nodes get a random label), so the engine has to refine from 3 blocks down
  to about ``n / 3``.

Then all four modes (backward/forward x plain/proportional) are timed in
exact and in float arithmetic.  Every measurement runs in a fresh child
process (the graph is passed through a temporary ``.npz`` file) so that peak
memory can be measured: the child warms up numba on a tiny graph (not timed),
resets the kernel's peak-RSS counter, times one call, and reports the peak
resident set size during the call.

The column ``norm`` is ``cpu / (m log2 n)`` divided by the same quantity at
the smallest size, per mode and arithmetic: it stays near 1 (or falls) when
the time grows like ``m log n``.  CPU seconds of the measuring process are
used because the benchmark machine may be shared; wall seconds are printed
too.

Usage::

    python benchmarks/engine_scaling.py                 # 1e4, 1e5, 1e6
    python benchmarks/engine_scaling.py --sizes 1000 10000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

import numpy as np

MODES = [
    ("backward", False),
    ("backward", True),
    ("forward", False),
    ("forward", True),
]
ARITHMETICS = ["exact", "float"]


# --------------------------------------------------------------- generator
def planted_graph(
    n: int, degree: float, seed: int, noise: float = 0.01, weights: str = "general"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Backward-lumpable (up to ``noise``) random graph; returns src, dst, w, labels.

    ``weights='general'``: a member of ``A`` sends ``h / (|A| rho(t))`` (not
    dyadic for ``|A|`` = 3, 5); ``'dyadic'``: it sends ``h / rho(t)``.
    """
    rng = np.random.default_rng(seed)
    # classes of 1..5 nodes (mean 3), nodes shuffled
    sizes = rng.integers(1, 6, n)
    cls_sorted = np.repeat(np.arange(sizes.shape[0]), sizes)[:n]
    size = np.bincount(cls_sorted)
    k = size.shape[0]
    ptr = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(size, out=ptr[1:])
    members = rng.permutation(n)  # members[ptr[c]:ptr[c+1]] is class c
    cls = np.empty(n, dtype=np.int64)
    cls[members] = cls_sorted
    # quotient graph with about degree * n / E[|A| |B|] edges (E = 9)
    h = max(1, round(degree * n / float(np.mean(size)) ** 2))
    ha = rng.integers(0, k, h)
    hb = rng.integers(0, k, h)
    hw = rng.choice(np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, -1.0]), h)
    # lift: every member of A sends hw / (|A| rho(t)) to every member t of B
    cnt = size[ha] * size[hb]
    e = np.repeat(np.arange(h), cnt)
    j = np.arange(e.shape[0]) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    src = members[ptr[ha[e]] + j // size[hb[e]]]
    dst = members[ptr[hb[e]] + j % size[hb[e]]]
    # per-node factors: rho = 1 on half of the classes, 1, 2 or 4 on the others
    scaled_class = rng.random(k) < 0.5
    rho = np.where(scaled_class[cls], rng.choice(np.array([1.0, 2.0, 4.0]), n), 1.0)
    w = hw[e] / rho[dst]
    if weights == "general":
        w = w / size[ha[e]]
    # noise: rewire some edges
    m = src.shape[0]
    noisy = rng.random(m) < noise
    src[noisy] = rng.integers(0, n, int(noisy.sum()))
    dst[noisy] = rng.integers(0, n, int(noisy.sum()))
    # initial partition: a label per class, some nodes relabelled at random
    labels = rng.integers(0, 3, k)[cls]
    odd = rng.random(n) < 2 * noise
    labels[odd] = rng.integers(0, 3, int(odd.sum()))
    perm = rng.permutation(m)  # edge order carries no structure
    return src[perm], dst[perm], w[perm], labels


# ------------------------------------------------------------------- child
def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _child(path: str, direction: str, proportional: bool, arithmetic: str, repeat: int) -> None:
    from lumpcore import WeightedGraph, coarsest_lumping

    data = np.load(path)
    n = int(data["n"])
    g = WeightedGraph.from_edges(n, data["src"], data["dst"], data["w"])
    labels = data["labels"]
    if direction == "forward":
        g = g.reversed()  # the planted structure is backward; reversing makes it forward
    # warm-up (numba compilation or cache load), not timed
    tiny = WeightedGraph.from_edges(4, [0, 1, 2, 3], [1, 2, 3, 0], np.array([1.0, 2.0, 1.0, 2.0]))
    coarsest_lumping(tiny, [0, 0, 1, 1], direction=direction, proportional=proportional,
                     arithmetic=arithmetic)
    base = _rss_kib("VmRSS")
    try:  # reset the peak-RSS counter (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    best = cpu = math.inf
    lump = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        lump = coarsest_lumping(g, labels, direction=direction, proportional=proportional,
                                arithmetic=arithmetic)
        t1, c1 = time.perf_counter(), time.process_time()
        if t1 - t0 < best:
            best, cpu = t1 - t0, c1 - c0
    assert lump is not None
    peak = _rss_kib("VmHWM")
    print(json.dumps({
        "n": n, "m": g.num_edges, "blocks": lump.num_blocks, "seconds": best, "cpu": cpu,
        "peak_mib": peak / 1024, "extra_mib": (peak - base) / 1024 if reset else None,
        "splits": lump.splits, "rounds": lump.rounds, "verify_rounds": lump.verify_rounds,
    }))


# ------------------------------------------------------------------ parent
def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    p.add_argument("--degree", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", choices=["general", "dyadic"], default="general",
                   help="edge weights h/(|A| rho) (general floats) or h/rho (dyadic)")
    p.add_argument("--repeat", type=int, default=0,
                   help="timed calls per measurement, best taken (default: 3 below 1e6 nodes, 1)")
    p.add_argument("--markdown", help="also write the table as Markdown to this file")
    p.add_argument("--child", nargs=4, metavar=("NPZ", "DIR", "PROP", "ARITH"),
                   help=argparse.SUPPRESS)
    p.add_argument("--child-repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        path, direction, prop, arithmetic = args.child
        _child(path, direction, prop == "1", arithmetic, args.child_repeat)
        return 0

    rows = []
    header = (f"{'nodes':>9} {'edges':>9} {'direction':>9} {'mode':>12} {'arith':>5} "
              f"{'blocks':>8} {'seconds':>8} {'cpu s':>8} {'norm':>5} {'peak MiB':>9} "
              f"{'extra MiB':>9}")
    print(f"# lumpcore engine scaling, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"# {_machine()}; weights: {args.weights}; degree {args.degree}; seed {args.seed}")
    print(header)
    base: dict[tuple[str, bool, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            src, dst, w, labels = planted_graph(n, args.degree, args.seed, weights=args.weights)
            path = os.path.join(tmp, f"g{n}.npz")
            np.savez(path, n=n, src=src, dst=dst, w=w, labels=labels)
            repeat = args.repeat or (3 if n < 10**6 else 1)
            for direction, prop in MODES:
                for arithmetic in ARITHMETICS:
                    cmd = [sys.executable, os.path.abspath(__file__), "--child", path, direction,
                           "1" if prop else "0", arithmetic, "--child-repeat", str(repeat)]
                    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    if out.returncode != 0:
                        print(out.stderr, file=sys.stderr)
                        return 1
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    per = r["cpu"] / (r["m"] * math.log2(r["n"]))
                    key = (direction, prop, arithmetic)
                    base.setdefault(key, per)
                    r |= {"direction": direction, "proportional": prop,
                          "arithmetic": arithmetic, "norm": per / base[key]}
                    rows.append(r)
                    extra = "" if r["extra_mib"] is None else f"{r['extra_mib']:.0f}"
                    mode = "proportional" if prop else "plain"
                    print(f"{r['n']:>9} {r['m']:>9} {direction:>9} {mode:>12} "
                          f"{arithmetic:>5} {r['blocks']:>8} {r['seconds']:>8.3f} {r['cpu']:>8.3f} "
                          f"{r['norm']:>5.2f} {r['peak_mib']:>9.0f} {extra:>9}", flush=True)
    if args.markdown:
        _write_markdown(args.markdown, rows, args)
    return 0


def _write_markdown(path: str, rows: list[dict], args: argparse.Namespace) -> None:
    lines = [
        "| nodes | edges | direction | mode | arithmetic | blocks | seconds | cpu s | norm | "
        "peak MiB | extra MiB |",
        "| ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        extra = "" if r["extra_mib"] is None else f"{r['extra_mib']:.0f}"
        lines.append(
            f"| {r['n']} | {r['m']} | {r['direction']} | "
            f"{'proportional' if r['proportional'] else 'plain'} | {r['arithmetic']} | "
            f"{r['blocks']} | {r['seconds']:.3f} | {r['cpu']:.3f} | {r['norm']:.2f} | "
            f"{r['peak_mib']:.0f} | "
            f"{extra} |"
        )
    text = "\n".join(lines) + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
