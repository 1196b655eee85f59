"""Benchmark: reduction time vs one numpy forward pass, and peak memory.

Dense ReLU network 784 -> 4 x 4096 -> 10 (about 54 million float32 weights,
held as float32 by nnreduce) with planted redundancy: in every hidden
layer neuron ``2048 + i`` is ``r_i`` times neuron ``i`` (``r_i`` a power of
two, so the float fast path stays exact), and a convolutional network with
planted duplicate channels.  Prints, for each, the time of one numpy forward
pass (batch 1; float32 matrix-vector products for the dense net, nnreduce's numpy
evaluator for the conv net) measured in the same run, the reduction time in
exact mode and in tolerance mode, their ratios, and peak memory (growth of
the process peak RSS during each reduction, and the process peak RSS).
For the dense network it also prints a floor: the time of the least work
any reduction must do (read every weight once, write the reduced weights
into fresh memory), the blocks known in advance, as a ratio to the forward
pass timed in turn with it; once with the merged weights as float64 (what
nnreduce writes: their exact sums) and once rounded to float32.

Usage: ``python benchmarks/nn_reduce.py [--width 4096] [--conv-channels 64] [--repeat 3]
[--write docs/benchmarks-nn-table.md]``.
Run at full size at most once or twice on a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange

from nnreduce import Activation, Conv2d, Dense, Flatten, MaxPool2d, Network, reduce_network


def _planted_rows(rng: np.random.Generator, half: int, n_in: int) -> np.ndarray:
    base = rng.standard_normal((half, n_in), dtype=np.float32)
    r = (2.0 ** rng.integers(-2, 3, size=half)).astype(np.float32)
    return np.vstack([base, r[:, None] * base])  # exact: powers of two


def dense_net(width: int, n_in: int = 784, n_out: int = 10, depth: int = 4,
              seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    layers: list[Any] = []
    prev = n_in
    for _ in range(depth):
        w = _planted_rows(rng, width // 2, prev)
        b = rng.standard_normal(width // 2, dtype=np.float32)
        b = np.concatenate([b, b * (w[width // 2:, 0] / np.where(w[: width // 2, 0] == 0, 1,
                                                                   w[: width // 2, 0]))])
        layers += [Dense(w, b), Activation("relu")]
        prev = width
    layers.append(Dense(rng.standard_normal((n_out, prev), dtype=np.float32),
                        np.zeros(n_out, dtype=np.float32)))
    return Network(tuple(layers), (n_in,))


def conv_net(channels: int, seed: int = 1) -> Network:
    rng = np.random.default_rng(seed)
    half = channels // 2

    def planted_filters(c_in: int) -> tuple[np.ndarray, np.ndarray]:
        f = rng.standard_normal((half, c_in, 3, 3), dtype=np.float32)
        r = (2.0 ** rng.integers(-2, 3, size=half)).astype(np.float32)
        b = rng.standard_normal(half, dtype=np.float32)
        return (np.concatenate([f, r[:, None, None, None] * f]), np.concatenate([b, r * b]))

    w1, b1 = planted_filters(3)
    w2, b2 = planted_filters(channels)
    dense_in = channels * 8 * 8
    return Network(
        (Conv2d(w1, b1, (1, 1), (1, 1, 1, 1)), Activation("relu"), MaxPool2d((2, 2), (2, 2)),
         Conv2d(w2, b2, (1, 1), (1, 1, 1, 1)), Activation("relu"), MaxPool2d((2, 2), (2, 2)),
         Flatten(),
         Dense(_planted_rows(rng, 256, dense_in), np.zeros(512, dtype=np.float32)),
         Activation("relu"),
         Dense(rng.standard_normal((10, 512), dtype=np.float32),
               np.zeros(10, dtype=np.float32))),
        (3, 32, 32),
    )


def _forward_dense(net: Network, dtype: type = np.float32) -> Callable[[], Any]:
    """Matrix-vector products over the weights as ``dtype`` (float32: the stored arrays)."""
    ws: list[tuple[np.ndarray, np.ndarray]] = [
        (lyr.weight.astype(dtype, copy=False), lyr.bias.astype(dtype, copy=False))
        for lyr in net.layers if isinstance(lyr, Dense)]
    x0: np.ndarray = np.ones(net.input_shape[0], dtype=dtype)

    def run() -> Any:
        x = x0
        for k, (w, b) in enumerate(ws):
            x = w @ x + b
            if k < len(ws) - 1:
                np.maximum(x, 0, out=x)
        return x

    return run


def _forward_conv(net: Network) -> Callable[[], Any]:
    """nnreduce's own numpy evaluator (sliding windows + tensordot).

    It computes in float64; on float32 weights numpy would convert them at
    every call, so it runs on a float64 copy (its fastest form).
    """
    from nnreduce import evaluate

    wide = Network(tuple(
        Conv2d(lyr.weight.astype(np.float64), lyr.bias.astype(np.float64), lyr.stride,
               lyr.padding) if isinstance(lyr, Conv2d)
        else Dense(lyr.weight.astype(np.float64), lyr.bias.astype(np.float64))
        if isinstance(lyr, Dense) else lyr for lyr in net.layers), net.input_shape)
    x = np.ones((1, *net.input_shape))

    def run() -> Any:
        return evaluate(wide, x)

    return run


@njit(parallel=True, cache=False)
def _floor_layer(w: np.ndarray, half: int, s: np.ndarray, out: np.ndarray,
                 seen: np.ndarray) -> None:
    """The least a reduction of one planted layer does, the answer known in advance: kept
    row ``r`` (``r < out.shape[0]``) written to ``out`` (columns ``c`` and ``half + c``
    added, scaled by ``s[c]``, when ``half``; else copied), every other row read once
    (the or of its entries' bits stored, so that the read is not optimised away; an
    integer reduction vectorises, a float maximum would not: until 2026-11-22 it did, and
    its scalar loop made this "floor" slower than the reductions it bounds)."""
    bits = w.view(np.int32)
    for r in prange(w.shape[0]):
        row = w[r]
        if r < out.shape[0]:
            dst = out[r]
            if half:
                for c in range(half):
                    dst[c] = np.float64(row[c]) + s[c] * np.float64(row[half + c])
            else:
                for c in range(row.shape[0]):
                    dst[c] = row[c]
        else:
            b = bits[r]
            acc = np.int32(0)
            for c in range(b.shape[0]):
                acc |= b[c]
            seen[r] = acc


def _floor_dense(net: Network, merged: type = np.float64) -> Callable[[], Any]:
    """A floor for reducing :func:`dense_net`: read every weight once and write the
    reduced network's weights (merged sums as ``merged``; the first layer's kept float32
    rows) into fresh memory, with the blocks known in advance: no keys, no comparisons,
    no checks.  No reduction can do less; what it costs against the forward pass bounds
    how close to it any reduction can come on this machine.  lumpkit stores merged sums
    as float64 (float32 cannot hold them exactly); ``merged=np.float32`` is the floor of
    a design that would round them back to the network's own type."""
    dense = [lyr for lyr in net.layers if isinstance(lyr, Dense)]
    plan = []
    for k, lyr in enumerate(dense):
        n_out, n_in = lyr.weight.shape
        kept = n_out if k == len(dense) - 1 else n_out // 2
        half = 0 if k == 0 else n_in // 2
        plan.append((lyr.weight, half, np.full(max(half, 1), 0.5), kept,
                     np.float32 if k == 0 else merged,
                     np.empty(n_out, dtype=np.int32)))

    def run() -> None:
        for w, half, s, kept, dtype, seen in plan:
            out = np.empty((kept, half or w.shape[1]), dtype=dtype)
            _floor_layer(w, half, s, out, seen)

    run()  # compile
    return run


def _floor_ratio(floor: Callable[[], Any], forward: Callable[[], Any], rounds: int = 5
                 ) -> tuple[float, float]:
    """Best floor time and its ratio to the best forward pass, the two timed in turns."""
    best_floor = best_fwd = float("inf")
    for _ in range(rounds):
        best_fwd = min(best_fwd, _best(forward, 3))
        time.sleep(0.3)
        best_floor = min(best_floor, _best(floor, 1))
    return best_floor, best_floor / best_fwd


def _float64_pass(make: Callable[..., Callable[[], Any]], net: Network) -> float:
    """Best of 5 forward passes over float64 copies of the weights, timed once up front;
    the copies (twice the float32 weights) are freed before any reduction runs, so that
    they do not add to the memory the reductions' page faults contend with."""
    run = make(net, np.float64)
    run()
    sec = _best(run, 5)
    del run
    gc.collect()
    return sec


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _measure(net: Network, **kw: Any) -> tuple[float, float, float, int, Any]:
    """Time one reduction (wall, CPU, and the CPU spent in the kernel) and measure its
    peak extra resident memory.

    The kernel's share is mostly page faults on fresh memory; on a virtual
    machine with transparent huge pages they can stall for a while (memory
    compaction), which is what makes single runs vary.

    On Linux the kernel's peak-RSS mark is reset before the call, so the peak
    growth is ``VmHWM`` after minus ``VmRSS`` before: the true peak of the
    reduction's own allocations (numpy and numba alike).  Elsewhere the growth
    of ``ru_maxrss`` is reported, a lower bound.
    """
    gc.collect()
    exact_peak = _reset_peak()
    before = (_status_kib("VmRSS") if exact_peak else None)
    before_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    c = time.process_time()
    sys0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    red = reduce_network(net, **kw)
    system = resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0
    cpu = time.process_time() - c
    sec = time.perf_counter() - t
    peak = _status_kib("VmHWM") if exact_peak else None
    if before is not None and peak is not None:
        growth = (peak - before) * 1024
    else:
        growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_max) * 1024
    return sec, cpu, system, growth, red


def bench(name: str, net: Network, forward: Callable[[], Any], forward64: float,
          repeat: int) -> list[dict[str, Any]]:
    """Print and return one row per mode: times, ratio to the forward pass, peak memory.

    The float32 forward pass (best of 5) is timed right before every
    reduction, so each ratio compares two measurements taken under the same
    machine load (``forward64``, the float64 pass, is informational and was
    timed once up front);
    the run with the smallest ratio of ``repeat`` runs is kept, after two
    untimed warm-up runs of every mode.  A mode's runs follow each other: with
    the modes taking turns (tried 2026-11-22), every tolerance run came right
    after a certificate run and spent 0.5-0.6 s of system time in page faults
    (0.02 s in sequence) in both full runs.  The first call of each mode is
    timed apart (before the warm-up) and reported as well: it pays for the
    process's first touches of fresh memory, which on a virtual machine can
    cost more than the reduction's own work.
    """
    forward()
    w_bytes32 = net.num_params * 4
    w_bytes64 = net.num_params * 8
    print(f"== {name}: {net.num_params / 1e6:.1f} M parameters "
          f"({w_bytes32 / 2**20:.0f} MiB as float32, {w_bytes64 / 2**20:.0f} MiB as float64)")
    rows: list[dict[str, Any]] = []
    modes: list[tuple[str, dict[str, Any], int | None]] = [
        ("exact", {"certify": False}, 10), ("exact + certificate", {}, None),
        ("tolerance 1e-6", {"tolerance": 1e-6, "certify": False}, 3)]
    firsts = []
    for _, kw, _ in modes:  # first calls: the process's first touches of fresh memory
        time.sleep(0.5)
        firsts.append(_measure(net, **kw)[0])
    for _ in range(2):  # warm up every mode before the timed runs
        for _, kw, _ in modes:
            reduce_network(net, **kw)
    for (label, kw, target), first in zip(modes, firsts, strict=True):
        runs = []
        for _ in range(repeat):
            fwd = _best(forward, 5)
            fwd64 = forward64
            # BLAS worker threads spin for a while after a call; let them go idle so
            # that they do not compete with the reduction's own threads for the cores
            time.sleep(0.5)
            sec, cpu, system, peak, red = _measure(net, **kw)
            # only the counts are kept: a retained reduced network (130 MiB here) would
            # make every later run write into fresh pages (page faults a user's repeated
            # calls do not pay: their results are freed), which doubled to quintupled the
            # later runs until 2026-11-22
            counts = ([lr.neurons_before for lr in red.layers],
                      [lr.neurons_after for lr in red.layers])
            del red
            runs.append((sec / fwd, fwd, fwd64, sec, cpu, system, peak, counts))
        ratio, fwd, fwd64, sec, cpu, system, peak, (before, after) = min(runs,
                                                                          key=lambda r: r[0])
        verdict = "" if target is None else ("met" if ratio <= target else "MISSED")
        print(f"   {label:<20} {sec:8.3f} s (CPU {cpu:.3f} s, system {system:.3f} s; "
              f"first call {first:.3f} s; all runs {' '.join(f'{r[3]:.3f}' for r in runs)} s); "
              f"forward {fwd * 1e3:.2f} ms "
              f"(float64: {fwd64 * 1e3:.2f} ms); {ratio:7.1f} x forward "
              f"({sec / fwd64:.1f} x the float64 pass)"
              + (f" (target <= {target}x: {verdict})" if target else "")
              + f"; peak extra memory {peak / 2**20:.0f} MiB = {peak / w_bytes32:.2f} x "
              f"float32 weights; neurons {before} -> {after}")
        rows.append({"network": name, "mode": label, "seconds": sec, "cpu": cpu,
                     "system": system,
                     "first": first,
                     "forward_ms": fwd * 1e3, "ratio": ratio, "forward64_ms": fwd64 * 1e3,
                     "ratio64": sec / fwd64, "target": target,
                     "verdict": verdict, "peak_mib": peak / 2**20,
                     "peak_x": peak / w_bytes32, "params": net.num_params,
                     "neurons": f"{sum(before)} -> {sum(after)}"})
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"   process max RSS so far: {rss / 2**20:.0f} MiB "
          f"(network itself: {w_bytes32 / 2**20:.0f} MiB, float32)")
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| network | mode | reduction s (CPU s, system s) | first call s | "
           "forward ms, float32 (float64) | "
           "ratio to float32 pass (to float64 pass) | target | "
           "peak extra MiB (x float32 weights) | hidden neurons |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        target = f"<= {r['target']}x: {r['verdict']}" if r["target"] else "-"
        out.append(f"| {r['network']} | {r['mode']} | {r['seconds']:.3f} ({r['cpu']:.3f}, "
                   f"{r['system']:.3f}) | "
                   f"{r['first']:.3f} | "
                   f"{r['forward_ms']:.2f} ({r['forward64_ms']:.2f}) | {r['ratio']:.1f} "
                   f"({r['ratio64']:.1f}) | {target} | "
                   f"{r['peak_mib']:.0f} ({r['peak_x']:.2f}) | {r['neurons']} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--conv-channels", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", type=Path, help="also write the table (markdown) to this file")
    args = ap.parse_args()
    # warm up (compiles the kernels) so that the timings below are of the work only
    for warm in (dense_net(64, n_in=16, depth=2), conv_net(4)):
        reduce_network(warm)
        reduce_network(warm, tolerance=1e-6)
    t = time.perf_counter()
    net = dense_net(args.width)
    print(f"built dense network in {time.perf_counter() - t:.1f} s")
    rows = bench(f"dense 784-4x{args.width}-10 ReLU", net, _forward_dense(net),
                 _float64_pass(_forward_dense, net), args.repeat)
    floor_s, floor_x = _floor_ratio(_floor_dense(net), _forward_dense(net))
    f32_s, f32_x = _floor_ratio(_floor_dense(net, np.float32), _forward_dense(net))
    floor_line = (f"floor of the dense reduction (read every weight once, write the reduced "
                  f"weights into fresh memory; blocks known, nothing checked): "
                  f"{floor_s * 1e3:.1f} ms = {floor_x:.1f} x the float32 forward pass "
                  f"(merged weights rounded to float32 instead of float64: "
                  f"{f32_s * 1e3:.1f} ms = {f32_x:.1f} x)")
    print("   " + floor_line)
    del net
    cnet = conv_net(args.conv_channels)
    rows += bench(f"conv 3x32x32, 2x{args.conv_channels} channels + dense 512", cnet,
                  _forward_conv(cnet), _best(_forward_conv(cnet), 5), args.repeat)
    text = table(rows) + "\n\n" + floor_line[0].upper() + floor_line[1:] + "."
    print()
    print(text)
    if args.write:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        args.write.write_text(
            f"<!-- generated by benchmarks/nn_reduce.py on {stamp}, load {load:.1f} -->\n"
            + text + "\n")


if __name__ == "__main__":
    main()
