"""``lumpkit demo``: the paper's examples end to end, with no input files.

Three parts, each checked exactly and reported in a few lines:

1. Example 2 of Ressi et al.: the eight-state CTMC lumped by proportional
   exact lumpability; the stationary distribution of the original chain is
   compared with the one the quotient predicts.
2. Fig. 3: a hidden neuron whose incoming weights and bias are twice those of
   another is pruned; the certificate is checked independently and z3 proves
   the reduced network equal to the original on every input.
3. The erratum: the reduction that the paper's Definition 6 (as printed)
   allows is refuted by a counterexample, re-checked in exact arithmetic.

All the work is done by :mod:`markov`, :mod:`nnreduce` and :mod:`proofs`;
this module only calls their public API and prints.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from lumpcore import VerificationError, rational_to_str

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``demo`` command to the argparse subparsers ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the paper's examples end to end (no input files, a few seconds)",
        description=(
            "Run the examples of Ressi et al., 'Neural Networks Reduction via Lumping' "
            "(AIxIA 2022): Example 2 (proportional exact lumping of a CTMC), Fig. 3 "
            "(pruning a proportional neuron, proved equivalent) and the erratum to "
            "Definition 6 (refuted by a counterexample)."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the results as one JSON document")
    p.set_defaults(func=_run)


def _q(x: Any) -> str:
    """An exact number as ``p/q`` text."""
    return rational_to_str(Fraction(x))


def _states(block: Sequence[int]) -> str:
    """A block of 0-based states written 1-based, as in the paper."""
    return "{" + ",".join(str(s + 1) for s in block) + "}"


def _example_2() -> dict[str, Any]:
    """Example 2: proportional exact lumping and the stationary distribution."""
    import numpy as np

    from markov import lump, paper_example_2, stationary
    from proofs import check_markov_lumping

    chain = paper_example_2()
    res = lump(chain, "proportional-exact")
    check = check_markov_lumping(
        chain, res.blocks, "proportional_exact", rho=list(res.rho) if res.rho is not None else None
    )
    if not check.valid:
        raise VerificationError(f"Example 2: the lumping failed the exact check: {check.condition}")
    pi = stationary(chain, exact=True)
    pit = stationary(res.quotient, exact=True)
    # THEORY section 2: block masses = stationary distribution of the quotient,
    # and the distribution is uniform inside every block.
    masses_ok = all(sum(pi[s] for s in blk) == pit[b] for b, blk in enumerate(res.blocks))
    uniform_ok = all(len({pi[s] for s in blk}) == 1 for blk in res.blocks)
    if not (masses_ok and uniform_ok):
        raise VerificationError("Example 2: stationary distribution does not match the quotient")
    assert res.rho is not None
    return {
        "states": chain.n,
        "transitions": chain.num_transitions,
        "blocks": [[s + 1 for s in blk] for blk in res.blocks],
        "rho": [_q(r) for r in res.rho],
        "quotient_states": res.quotient.n,
        "stationary": [_q(p) for p in pi],
        "stationary_quotient": [_q(p) for p in pit],
        "block_masses_match": masses_ok,
        "uniform_in_blocks": uniform_ok,
        "exact_check_valid": check.valid,
        "stationary_float_max_error": float(
            np.max(np.abs(stationary(chain) - np.array(pi, dtype=float)))
        ),
    }


def _fig3_network() -> Any:
    """Fig. 3: hidden neuron t has twice the incoming weights and bias of v."""
    import numpy as np

    from nnreduce import Activation, Dense, Network

    def exact(rows: Any) -> Any:
        return np.array(rows, dtype=object)

    w1 = exact([[1, -1], [2, -2], [Fraction(1, 2), 3]])  # rows: v, t = 2 v, unrelated w
    b1 = exact([Fraction(1, 4), Fraction(1, 2), -1])
    w2 = exact([[1, 3, -1], [-2, 1, 1]])  # outgoing weights to z1, z2
    b2 = exact([0, 1])
    return Network(
        (Dense(w1, b1), Activation("relu"), Dense(w2, b2)),
        (2,),
    )


def _fig3() -> dict[str, Any]:
    """Fig. 3: reduce, check the certificate, prove equivalence with z3."""
    from nnreduce import dense_layers, reduce_network
    from proofs import check_certificate, check_equivalence

    net = _fig3_network()
    red = reduce_network(net)
    cert = check_certificate(net, red.network, red.certificate)
    if not cert.valid:
        raise VerificationError(f"Fig. 3: certificate rejected: {cert.condition}")
    verdict = check_equivalence(net, red.network, timeout=30.0)
    if not verdict.equivalent:
        raise VerificationError(f"Fig. 3: reduction refuted at input {verdict.input}")
    layer = red.layers[0]
    return {
        "hidden_before": layer.neurons_before,
        "hidden_after": layer.neurons_after,
        "blocks": [list(b) for b in layer.blocks],
        "rho": [[_q(r) for r in rs] for rs in layer.rho],
        "reduced_output_weights": [[_q(w) for w in row] for row in dense_layers(red.network)[1][0]],
        "certificate_valid": cert.valid,
        "equivalent": verdict.equivalent,
        "proof": verdict.statement,
        "proof_method": verdict.method,
        "proof_seconds": verdict.seconds,
    }


def _erratum() -> dict[str, Any]:
    """The erratum: the reduction printed Def. 6 allows, refuted."""
    from nnreduce import reduce_network
    from proofs import check_equivalence, erratum_example

    ex = erratum_example()
    # falsify=False: the counterexample comes from z3 itself, not from sampling
    verdict = check_equivalence(ex.original, ex.reduced, timeout=30.0, falsify=False)
    if verdict.equivalent or verdict.input is None or verdict.outputs is None:
        raise VerificationError("erratum: the unsound reduction was not refuted")
    sound = reduce_network(ex.original)
    sound_verdict = check_equivalence(ex.original, sound.network, timeout=30.0)
    return {
        "refuted": True,
        "method": verdict.method,
        "input": [_q(x) for x in verdict.input],
        "original_output": [_q(x) for x in verdict.outputs[0]],
        "def6_reduced_output": [_q(x) for x in verdict.outputs[1]],
        "sound_reduction_equivalent": sound_verdict.equivalent,
        "sound_rho": [[[_q(r) for r in rs] for rs in lay.rho] for lay in sound.layers],
    }


def _print_report(r: dict[str, Any]) -> None:
    e, f, x = r["example_2"], r["fig3"], r["erratum"]
    blocks = " ".join(_states([s - 1 for s in b]) for b in e["blocks"])
    print("lumpkit demo: the examples of Ressi et al., 'Neural Networks Reduction via Lumping'")
    print()
    print(f"1. Example 2: CTMC with {e['states']} states, {e['transitions']} transitions")
    print(f"   proportional exact lumping: {len(e['blocks'])} blocks {blocks}")
    print(f"   rho = {', '.join(e['rho'])}")
    passed = "passed" if e["exact_check_valid"] else "FAILED"
    print(f"   independent exact check of the lumping: {passed}")
    print(f"   stationary pi      = {', '.join(e['stationary'])}")
    print(f"   quotient pi (4)    = {', '.join(e['stationary_quotient'])}")
    ok = e["block_masses_match"] and e["uniform_in_blocks"]
    print(
        "   block masses of pi equal the quotient's, pi uniform inside blocks: "
        f"{'yes (exact)' if ok else 'NO'}"
    )
    print()
    print("2. Fig. 3: hidden neurons v, t, w of a ReLU layer, t = 2 v (weights and bias)")
    rho_t = f["rho"][0][1] if len(f["blocks"][0]) > 1 else "-"
    print(
        f"   reduction: hidden neurons {f['hidden_before']} -> {f['hidden_after']}, "
        f"t merged into v with rho(t) = {rho_t}"
    )
    rows = "; ".join(" ".join(row) for row in f["reduced_output_weights"])
    print(f"   reduced output weights (v gained 2 x t's): [{rows}]")
    valid = "valid" if f["certificate_valid"] else "INVALID"
    print(f"   certificate checked independently: {valid}")
    print(
        f"   z3 ({f['proof_method']}, {f['proof_seconds']:.2f} s): "
        f"{'equal on every input of R^2' if f['equivalent'] else 'NOT equivalent'}"
    )
    print()
    print("3. Erratum: Definition 6 as printed (unscaled sums) merges v, t with rho = 1")
    print(
        f"   counterexample x = {', '.join(x['input'])}: original o = "
        f"{', '.join(x['original_output'])}, Def. 6 reduction o = "
        f"{', '.join(x['def6_reduced_output'])} (found by {x['method']}, re-checked exactly)"
    )
    print(
        "   the scaled condition (lumpkit) reduces it soundly: "
        f"{'proved equivalent' if x['sound_reduction_equivalent'] else 'NOT equivalent'}"
    )
    print()
    print(f"all checks passed in {r['seconds']:.1f} s")


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    report: dict[str, Any] = {
        "example_2": _example_2(),
        "fig3": _fig3(),
        "erratum": _erratum(),
    }
    report["seconds"] = time.perf_counter() - start
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0
