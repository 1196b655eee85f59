"""Benchmark of the independent checks in ``proofs``.

1. Certificate checking time against network size, up to the ~54 M-weight
   dense MLP of ``benchmarks/nn_reduce.py`` (784 -> 4 x 4096 -> 10, half of
   every hidden layer planted as power-of-two multiples), reduced by
   ``nnreduce.reduce_network``.
2. z3 equivalence (original vs. its lumping reduction), unbounded and on the
   box [-1, 1]^n, for ReLU MLPs of growing width and depth with 30% planted
   proportional duplicates (exact rational factors); the largest network
   proved within 60 s per query, and the plain monolithic encoding (one
   variable per neuron, if-then-else ReLUs) on the small ones for comparison.
3. LEO on the ACAS Xu and MNIST networks of ``/work/shared/models/nn`` on
   their standard input boxes (the NNet files' input minimums/maximums:
   ACAS Xu's operating ranges, MNIST [0, 1]^784): LP/MILP solves, time and
   neurons removed.
4. LEO on small MLPs trained on scikit-learn's digits with and without an L1
   penalty (box [0, 1]^64): removal without and with L1.

Usage::

    python benchmarks/proofs_scaling.py            # everything, full size (slow)
    python benchmarks/proofs_scaling.py --quick    # small sizes only
    python benchmarks/proofs_scaling.py --only cert,z3,leo,digits --json out.json

Run at full size at most once or twice on a shared machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

import proofs
from lumpcore import SolverUnknownError
from nnreduce import Activation, Dense, Network, load_network, reduce_network

HERE = Path(__file__).resolve().parent
MODELS = Path(os.environ.get("LUMPKIT_MODELS", "/work/shared/models/nn"))


def _nn_reduce_bench() -> Any:
    spec = importlib.util.spec_from_file_location("nn_reduce_bench", HERE / "nn_reduce.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def log(*args: Any) -> None:
    print(*args, flush=True)


# ------------------------------------------------------------------ 1. certificates
def bench_certificates(widths: list[int]) -> list[dict[str, Any]]:
    nb = _nn_reduce_bench()
    rows = []
    log("\n== certificate checking (dense 784 -> 4 x W -> 10, half planted) ==")
    log(f"{'width':>6} {'weights':>11} {'reduce s':>9} {'check s':>8} {'ns/weight':>9}  verdict")
    for w in widths:
        net = nb.dense_net(w)
        n_weights = sum(lyr.weight.size for lyr in net.layers if isinstance(lyr, Dense))
        t0 = time.perf_counter()
        red = reduce_network(net)
        t_red = time.perf_counter() - t0
        res = proofs.check_certificate(net, red.network, red.certificate)
        row = {"width": w, "weights": int(n_weights), "reduce_s": t_red,
               "check_s": res.seconds, "valid": res.valid,
               "neurons": [red.neurons_before, red.neurons_after]}
        rows.append(row)
        log(f"{w:>6} {n_weights:>11,} {t_red:>9.2f} {res.seconds:>8.2f} "
            f"{1e9 * res.seconds / n_weights:>9.1f}  {res.message[:60]}")
        del net, red
    return rows


# ------------------------------------------------------------------ 2. z3 scaling
def planted_mlp(n_in: int, width: int, depth: int, frac: float, seed: int) -> Network:
    """Random float32-valued ReLU MLP plus ~frac exact proportional duplicates per layer."""
    rng = np.random.default_rng(seed)
    base = width - round(frac * width)
    Ws: list[np.ndarray] = []
    bs: list[np.ndarray] = []
    prev = n_in
    for _ in range(depth):
        Ws.append(rng.standard_normal((base, prev)).astype(np.float32).astype(np.float64)
                  / np.sqrt(prev))
        bs.append(rng.standard_normal(base).astype(np.float32).astype(np.float64) * 0.1)
        prev = base
    Ws.append(rng.standard_normal((3, prev)).astype(np.float32).astype(np.float64))
    bs.append(np.zeros(3))
    # exact planting on rationals: t = c * v, outgoing weight split s / (1 - s)/c
    We = [np.vectorize(Fraction, otypes=[object])(W) for W in Ws]
    be = [np.vectorize(Fraction, otypes=[object])(b) for b in bs]
    for k in range(depth):
        ndup = width - base
        src = rng.integers(0, base, ndup)
        cs = [Fraction(int(p), int(q)) for p, q in zip(rng.integers(1, 9, ndup),
                                                        rng.integers(1, 9, ndup), strict=True)]
        ss = [Fraction(int(p), 4) for p in rng.integers(1, 4, ndup)]
        W, b = We[k], be[k]
        We[k] = np.vstack([W, np.array([W[v] * c for v, c in zip(src, cs, strict=True)])])
        be[k] = np.concatenate([b, np.array([b[v] * c for v, c in zip(src, cs, strict=True)],
                                            dtype=object)])
        Wn = We[k + 1].copy()
        extra = np.empty((Wn.shape[0], ndup), dtype=object)
        for m, v in enumerate(src):
            extra[:, m] = Wn[:, v] * (1 - ss[m]) / cs[m]
            Wn[:, v] = Wn[:, v] * ss[m]
        We[k + 1] = np.hstack([Wn, extra])
    layers: list[Any] = []
    for k in range(depth + 1):
        layers.append(Dense(We[k], be[k]))
        if k < depth:
            layers.append(Activation("relu"))
    return Network(tuple(layers), (n_in,))


def _timed(a: Network, b: Network, **kw: Any) -> tuple[str, float]:
    """Verdict of ``check_equivalence(a, b, **kw)`` (``unknown`` on time-out) and seconds."""
    t0 = time.perf_counter()
    try:
        v = proofs.check_equivalence(a, b, **kw)
        return v.verdict, time.perf_counter() - t0
    except SolverUnknownError:
        return "unknown", time.perf_counter() - t0


def bench_z3(widths: list[int], depths: list[int], mono_max_relus: int) -> dict[str, Any]:
    log("\n== z3 equivalence, original (30% planted duplicates) vs lumping reduction ==")
    log(f"{'depth':>5} {'width':>5} {'ReLUs':>6} {'reduced':>7} {'unbounded s':>12} "
        f"{'box s':>8} {'monolithic s':>13}")
    rows = []
    largest = None
    for depth in depths:
        for width in widths:
            net = planted_mlp(10, width, depth, 0.3, seed=width * 10 + depth)
            red = reduce_network(net)
            relus = red.neurons_before
            ub, t_ub = _timed(net, red.network, timeout=60)
            bx, t_bx = _timed(net, red.network, box="-1:1", timeout=60)
            mono = ("-", 0.0)
            if relus <= mono_max_relus:
                mono = _timed(net, red.network, share=False, cegar=False, falsify=False,
                              timeout=60)
            rows.append({"depth": depth, "width": width, "relus": relus,
                         "reduced_relus": red.neurons_after, "unbounded": [ub, t_ub],
                         "box": [bx, t_bx], "monolithic": list(mono)})
            mono_txt = f"{mono[0]} {mono[1]:.2f}" if mono[0] != "-" else "-"
            log(f"{depth:>5} {width:>5} {relus:>6} {red.neurons_after:>7} "
                f"{ub} {t_ub:>6.2f} {bx} {t_bx:>6.2f} {mono_txt:>13}")
            if ub == "equivalent" and t_ub < 60 and (largest is None or relus > largest[0]):
                largest = (relus, depth, width, t_ub)
    if largest is not None:
        log(f"largest proved within 60 s (unbounded): {largest[0]} ReLUs "
            f"(depth {largest[1]}, width {largest[2]}) in {largest[3]:.2f} s")
    return {"rows": rows, "largest": largest}


def bench_acas_target() -> dict[str, Any]:
    """The issue's target: ACAS Xu + 30% planted duplicates vs its reduction, unbounded."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_proofs_smt import _plant_network

    acas = load_network(MODELS / "acasxu" / "ACASXU_experimental_v2a_1_1.nnet")
    big = _plant_network(acas, 0.3, seed=0)
    red = reduce_network(big)
    v1, t1 = _timed(big, red.network, timeout=60)
    v2, t2 = _timed(big, acas, timeout=60)
    log(f"\nACAS Xu target: {red.neurons_before} ReLUs vs lumping reduction "
        f"{red.neurons_after}: {v1} in {t1:.2f} s; vs the original ACAS Xu: {v2} in {t2:.2f} s")
    return {"relus": red.neurons_before, "reduced": red.neurons_after,
            "vs_reduction": [v1, t1], "vs_acas": [v2, t2]}


# ------------------------------------------------------------------ 3. LEO
def bench_leo_models(milp_time_limit: float, time_limit: float) -> list[dict[str, Any]]:
    log("\n== LEO on the reference networks (standard input boxes) ==")
    files = [MODELS / "acasxu" / "ACASXU_experimental_v2a_1_1.nnet",
             MODELS / "acasxu" / "ACASXU_experimental_v2a_2_7.nnet",
             MODELS / "mnist" / "mnist10x10.nnet",
             MODELS / "mnist" / "mnist10x20.nnet",
             MODELS / "mnist" / "mnist20x20.nnet"]
    rows = []
    for f in files:
        net = load_network(f)
        res = proofs.leo_reduce(net, None, milp_time_limit=milp_time_limit,
                                time_limit=time_limit, confirm="none")
        info = res.to_json()
        info["model"] = f.name
        rows.append(info)
        log(f"{f.name:<36} {res.neurons_before:>4} -> {res.neurons_after:>4} "
            f"({100 * res.removed_fraction:5.1f}% removed; inactive {info['stably_inactive']}, "
            f"active {info['stably_active']}, undecided {res.undecided}; "
            f"{res.milp_calls} LP/MILP solves {res.milp_seconds:.1f} s; total {res.seconds:.1f} s)")
    return rows


def train_digits(l1: float, seed: int = 0, epochs: int = 300) -> tuple[Network, float]:
    import torch
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        if l1:
            loss = loss + l1 * sum(p.abs().sum() for n, p in model.named_parameters()
                                   if n.endswith("weight"))
        loss.backward()
        opt.step()
    acc = float((model(X).argmax(1) == y).float().mean())
    layers: list[Any] = []
    for m in model:
        if isinstance(m, torch.nn.Linear):
            layers.append(Dense(m.weight.detach().double().numpy(),
                                m.bias.detach().double().numpy()))
        else:
            layers.append(Activation("relu"))
    return Network(tuple(layers), (64,)), acc


def bench_digits(l1: float) -> list[dict[str, Any]]:
    log("\n== LEO on MLPs trained on scikit-learn digits (box [0, 1]^64) ==")
    rows = []
    for penalty in (0.0, l1):
        net, acc = train_digits(penalty)
        res = proofs.leo_reduce(net, "0:1", milp_time_limit=10, time_limit=300,
                                confirm="none")
        lumped = reduce_network(res.network)
        info = res.to_json()
        info.update(l1=penalty, train_accuracy=acc, after_lumping=lumped.neurons_after)
        rows.append(info)
        log(f"L1 {penalty:<7g} train acc {acc:.3f}: {res.neurons_before} -> {res.neurons_after} "
            f"hidden ReLUs ({100 * res.removed_fraction:.1f}% removed; inactive "
            f"{info['stably_inactive']}, active {info['stably_active']}, folded {res.folded}); "
            f"then lumping -> {lumped.neurons_after}; {res.seconds:.1f} s")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes only")
    p.add_argument("--only", default="cert,z3,acas,leo,digits",
                   help="comma-separated parts: cert, z3, acas, leo, digits")
    p.add_argument("--max-width", type=int, default=4096,
                   help="largest hidden width of the certificate benchmark (4096: ~54 M weights)")
    p.add_argument("--milp-time-limit", type=float, default=5.0)
    p.add_argument("--leo-time-limit", type=float, default=300.0)
    p.add_argument("--l1", type=float, default=2e-3)
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    args = p.parse_args()
    parts = set(args.only.split(","))
    out: dict[str, Any] = {}
    if "cert" in parts:
        widths = [256, 512] if args.quick else [w for w in (256, 512, 1024, 2048, 4096)
                                                if w <= args.max_width]
        out["certificates"] = bench_certificates(widths)
    if "z3" in parts:
        if args.quick:
            out["z3"] = bench_z3([10, 20], [2], mono_max_relus=30)
        else:
            out["z3"] = bench_z3([10, 20, 50, 100, 200, 400], [2, 4, 6], mono_max_relus=100)
    if "acas" in parts:
        out["acas_target"] = bench_acas_target()
    if "leo" in parts:
        out["leo"] = bench_leo_models(args.milp_time_limit,
                                      30.0 if args.quick else args.leo_time_limit)
    if "digits" in parts:
        out["digits"] = bench_digits(args.l1)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
