"""lumpkit vs Storm: strong bisimulation (and exact lumpability) on QVBench CTMCs.

For cluster, tandem, kanban, polling and fms at two sizes each, every case runs
in its own subprocess (so peak memory is per case):

1. build the model once with stormpy (float, all labels, no rewards needed);
2. Storm: ``perform_bisimulation`` (STRONG, all state labels, rewards not
   preserved) on the built model, timed;
3. convert the built model to a ``markov.CTMC`` (timed, not compared);
4. lumpkit: ``markov.lump(chain, "bisim", rewards=())`` timed in full (initial
   partition, engine, quotient), with the engine's share reported too; the
   block counts must equal Storm's;
5. lumpkit: ``markov.lump(chain, "exact")`` (exact lumpability; no Storm
   equivalent).

Times are the best of ``--repeats`` runs, in seconds, measured in the same
process on the same built model.  Peak memory is the process's peak resident
set size (``ru_maxrss``) after Storm and at the end.

Usage::

    python benchmarks/ctmc_vs_storm.py                 # both sizes (heavy)
    python benchmarks/ctmc_vs_storm.py --size small    # quick
    python benchmarks/ctmc_vs_storm.py --write docs/benchmarks-ctmc.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ROOT.parent / "shared" / "models" / "qvbench"

#: (model, file, constants) at a small and a large size (large: about 0.5 to 2 M states).
CASES: dict[str, list[tuple[str, str, str]]] = {
    "small": [
        ("cluster", "cluster/cluster.prism", "N=64"),
        ("tandem", "tandem/tandem.prism", "c=255"),
        ("kanban", "kanban/kanban.prism", "t=3"),
        ("polling", "polling/polling.13.prism", ""),
        ("fms", "fms/fms.prism", "n=5"),
    ],
    "large": [
        ("cluster", "cluster/cluster.prism", "N=128"),
        ("tandem", "tandem/tandem.prism", "c=511"),
        ("kanban", "kanban/kanban.prism", "t=4"),
        ("polling", "polling/polling.15.prism", ""),
        ("fms", "fms/fms.prism", "n=6"),
    ],
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _best(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def worker(path: str, constants: str, repeats: int) -> dict[str, Any]:
    """Run one case; return its measurements (called in a subprocess)."""
    import stormpy
    import stormpy.developer as dev
    import stormpy.transformations as tr

    import markov

    dev.set_log_level(dev.LogLevel.ERR)
    # warm the engine's compiled kernels (numba cache) outside the timings
    markov.lump(markov.paper_example_2(), "bisim")
    markov.lump(markov.paper_example_2(), "exact")
    markov.lump(markov.paper_example_2().to_float(), "exact")

    t0 = time.perf_counter()
    prog = stormpy.parse_prism_program(path, prism_compatibility=True)
    if constants:
        prog, _ = stormpy.instantiate_constants(prog, constants)
    opts = stormpy.BuilderOptions()
    opts.set_build_all_labels()
    model = stormpy.build_model(prog, options=opts)
    build_s = time.perf_counter() - t0

    bopts = tr.BisimulationOptions()
    bopts.bisimulation_type = tr.BisimulationType.STRONG
    bopts.state_label_preservation = tr.StateLabelPreservation.ALL
    bopts.preserve_all_rewards = False
    storm_s, quotient = _best(lambda: tr.perform_bisimulation(model, [], options=bopts), repeats)
    storm_blocks = int(quotient.nr_states)
    del quotient
    rss_storm = _rss_mib()

    t0 = time.perf_counter()
    chain = markov.from_stormpy(model)
    convert_s = time.perf_counter() - t0
    n, m = int(model.nr_states), int(model.nr_transitions)
    del prog

    ours_s, res = _best(lambda: markov.lump(chain, "bisim", rewards=()), repeats)
    engine_s = res.seconds
    ours_blocks = res.num_blocks
    del res
    exact_s, ex = _best(lambda: markov.lump(chain, "exact"), repeats)
    return {
        "states": n,
        "transitions": m,
        "build_s": build_s,
        "convert_s": convert_s,
        "storm_blocks": storm_blocks,
        "storm_s": storm_s,
        "ours_blocks": ours_blocks,
        "ours_s": ours_s,
        "engine_s": engine_s,
        "exact_blocks": ex.num_blocks,
        "exact_s": exact_s,
        "exact_engine_s": ex.seconds,
        "rss_storm_mib": rss_storm,
        "rss_peak_mib": _rss_mib(),
    }


def run_case(models: Path, name: str, file: str, constants: str, repeats: int,
             timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", str(models / file), constants,
           "--repeats", str(repeats)]
    label = f"{name} {constants or Path(file).stem.split('.', 1)[1]}"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"case": label, "error": f"timed out after {timeout:.0f} s"}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"case": label, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    out: dict[str, Any] = json.loads(lines[-1])
    out["case"] = label
    return out


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | states | transitions | Storm blocks | our blocks | Storm bisim s | "
            "our bisim s (engine) | ratio ours/Storm | exact-lump blocks | exact-lump s "
            "(engine) | peak RSS MiB (after Storm / end) |")
    sep = "|" + "---|" * 11
    out = [head, sep]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['case']} | {r['error']} |" + " |" * 9)
            continue
        ratio = r["ours_s"] / r["storm_s"] if r["storm_s"] > 0 else float("inf")
        same = "" if r["ours_blocks"] == r["storm_blocks"] else " (DIFFERENT)"
        out.append(
            f"| {r['case']} | {r['states']:,} | {r['transitions']:,} | {r['storm_blocks']:,} | "
            f"{r['ours_blocks']:,}{same} | {r['storm_s']:.3f} | {r['ours_s']:.3f} "
            f"({r['engine_s']:.3f}) | {ratio:.2f} | {r['exact_blocks']:,} | "
            f"{r['exact_s']:.3f} ({r['exact_engine_s']:.3f}) | "
            f"{r['rss_storm_mib']:.0f} / {r['rss_peak_mib']:.0f} |"
        )
    return "\n".join(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("small", "large", "both"), default="both")
    ap.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS)
    ap.add_argument("--only", nargs="*", help="model names to run (default: all five)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per case")
    ap.add_argument("--write", type=Path, help="write the table (markdown) to this file")
    ap.add_argument("--worker", nargs=2, metavar=("PATH", "CONSTANTS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.repeats)))
        return 0
    sizes = ["small", "large"] if args.size == "both" else [args.size]
    rows = []
    for size in sizes:
        for name, file, constants in CASES[size]:
            if args.only and name not in args.only:
                continue
            r = run_case(args.models_dir, name, file, constants, args.repeats, args.timeout)
            r["size"] = size
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.write:
        from markov._fileio import atomic_write

        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        import stormpy

        header = (
            "# Benchmark: lumpkit vs Storm on QVBench CTMCs\n\n"
            f"Run {stamp} on {machine()}; stormpy {stormpy.__version__}.  Produced by "
            "`python benchmarks/ctmc_vs_storm.py --write docs/benchmarks-ctmc.md` "
            f"(best of {args.repeats} runs per timing).\n\n"
            "*Storm bisim s*: `stormpy.transformations.perform_bisimulation` (STRONG, all "
            "state labels, rewards not preserved) on the already-built model, quotient "
            "included.  *our bisim s*: `markov.lump(chain, 'bisim', rewards=())` on the same "
            "model converted to a `markov.CTMC` (initial partition, engine in exact "
            "arithmetic, quotient); in brackets the engine (`lumpcore.coarsest_lumping`) "
            "alone.  *ratio* = our bisim s / Storm bisim s (target <= 1.0).  *exact-lump*: "
            "`markov.lump(chain, 'exact')` (exact lumpability; no Storm equivalent).  "
            "Peak RSS is the worker process's peak resident memory after Storm's run and at "
            "the end (includes the stormpy model).\n\n"
        )
        atomic_write(args.write, lambda fh: fh.write(header + text + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
