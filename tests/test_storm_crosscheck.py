"""Cross-check of the engine with a real tool: Storm's strong bisimulation.

QVBench CTMCs (tests/data/qvbench, CC-BY 4.0, see the README there) are built
with stormpy at small parameter values.  Forward refinement of the rate matrix
(Storm's transition matrix: rates and self-loops, no generator diagonal) from
the partition by labels must give exactly as many blocks as
``stormpy.transformations.perform_bisimulation`` (STRONG, all state labels,
rewards not preserved) on the same built model, in exact and float
arithmetic, and on the model built with exact rationals.  Storm's initial
partition ignores the ``init`` label (THEORY section 2), so it is left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lumpcore import WeightedGraph, coarsest_lumping
from markov import from_stormpy, lump

stormpy = pytest.importorskip("stormpy")
tr = pytest.importorskip("stormpy.transformations")
dev = pytest.importorskip("stormpy.developer")

QV = Path(__file__).parent / "data" / "qvbench"

_SMALL = [
    ("tandem/tandem.prism", "c=15"),
    ("cluster/cluster.prism", "N=4"),
    ("polling/polling.3.prism", ""),
    ("polling/polling.4.prism", ""),
    ("polling/polling.5.prism", ""),
]
CASES = [
    # 5,168 states, 435 self-loops; exact build and rationals take ~10 s
    pytest.param("embedded/embedded.prism", "MAX_COUNT=4", marks=pytest.mark.slow,
                 id="embedded MAX_COUNT=4"),
    *(pytest.param(f, c, id=f"{f.split('/')[0]} {c or f.split('/')[1]}") for f, c in _SMALL),
]


def build(path: Path, constants: str, exact: bool = False) -> object:
    old = dev.get_log_level()
    dev.set_log_level(dev.LogLevel.ERR)
    try:
        prog = stormpy.parse_prism_program(str(path), prism_compatibility=True)
        if constants:
            prog, _ = stormpy.instantiate_constants(prog, constants)
        builder = stormpy.build_model[stormpy.Rational] if exact else stormpy.build_model
        return builder(prog)
    finally:
        dev.set_log_level(old)


def storm_quotient(model: object, rewards: bool = False) -> object:
    """Storm's strong bisimulation quotient, all state labels kept (and with ``rewards``
    every reward model)."""
    opts = tr.BisimulationOptions()
    opts.bisimulation_type = tr.BisimulationType.STRONG
    opts.state_label_preservation = tr.StateLabelPreservation.ALL
    opts.preserve_all_rewards = rewards
    return tr.perform_bisimulation(model, [], options=opts)


@pytest.mark.parametrize(("name", "constants"), CASES)
def test_engine_forward_equals_storm_bisimulation(name: str, constants: str) -> None:
    model = build(QV / name, constants)
    storm = storm_quotient(model)
    chain = from_stormpy(model)
    n, src, dst, val = chain.rate_edges()  # Storm's transition matrix, read back
    assert n == model.nr_states and src.size == model.nr_transitions
    labels = sorted(x for x in chain.labels if x != "init")
    initial = [frozenset(x for x in labels if s in set(chain.labels[x].tolist()))
               for s in range(n)]
    graph = WeightedGraph.from_edges(n, src, dst, val)
    for arithmetic in ("exact", "float"):
        res = coarsest_lumping(graph, initial, direction="forward", arithmetic=arithmetic)
        assert res.num_blocks == storm.nr_states, arithmetic
    # the same through markov.lump, and on the model built with exact rationals
    via_markov = lump(chain, "bisim", rewards=())
    assert via_markov.num_blocks == storm.nr_states
    assert via_markov.quotient.n == storm.nr_states
    exact_chain = from_stormpy(build(QV / name, constants, exact=True))
    assert exact_chain.exact
    assert lump(exact_chain, "bisim", rewards=()).num_blocks == storm.nr_states


@pytest.mark.slow
def test_self_loops_matter_for_storm_compatibility() -> None:
    """embedded has self-loops; Storm counts them, so dropping them changes the answer."""
    model = build(QV / "embedded/embedded.prism", "MAX_COUNT=4")
    storm = storm_quotient(model)
    chain = from_stormpy(model)
    assert chain.loops is not None
    n, src, dst, val = chain.rate_edges()
    keep = src != dst
    labels = sorted(x for x in chain.labels if x != "init")
    initial = [frozenset(x for x in labels if s in set(chain.labels[x].tolist()))
               for s in range(n)]
    no_loops = coarsest_lumping(WeightedGraph.from_edges(n, src[keep], dst[keep], val[keep]),
                                initial, direction="forward")
    assert no_loops.num_blocks != storm.nr_states


@pytest.mark.slow
def test_state_rewards_only_partition_matches_storm() -> None:
    """THEORY's embedded figures (MAX_COUNT=4: 812 blocks of 5,168) are Storm's answer
    with NO state labels and all (state) rewards preserved; the labels other than init
    give 1,457 (test above).  lump with labels=[] and the rewards reproduces 812."""
    model = build(QV / "embedded/embedded.prism", "MAX_COUNT=4")
    opts = tr.BisimulationOptions()
    opts.bisimulation_type = tr.BisimulationType.STRONG
    opts.state_label_preservation = tr.StateLabelPreservation.NONE
    opts.preserve_all_rewards = True
    storm = tr.perform_bisimulation(model, [], options=opts)
    chain = from_stormpy(model)
    assert sorted(chain.rewards) == ["danger", "down", "up"]  # state rewards only
    res = lump(chain, "bisim", labels=[])
    assert res.num_blocks == storm.nr_states == 812


def test_storm_ignores_the_init_label() -> None:
    """THEORY section 2: on polling.5 Storm gives 48 blocks although its labelling has
    `init`; separating the initial state (respecting `init`) gives 240."""
    model = build(QV / "polling/polling.5.prism", "")
    storm = storm_quotient(model)
    assert "init" in model.labeling.get_labels()
    chain = from_stormpy(model)
    assert lump(chain, "bisim", rewards=()).num_blocks == storm.nr_states == 48
    with_init = lump(chain, "bisim", rewards=(), labels=sorted(chain.labels))
    assert with_init.num_blocks == chain.n == 240


def test_folded_action_rewards_give_storms_reward_values() -> None:
    """Action rewards are folded into state reward rates (Storm's total reward vector).
    Oracle: Storm's own model checking of the reward properties on the same model: the
    long-run repair rate of cluster (a CTMC), before and after lumping, and the expected
    number of coin flips of the die (a DTMC, accumulated until absorption)."""
    import warnings

    import stormpy.examples.files as ex

    from lumpcore import LumpkitWarning
    from markov import read_prism, stationary, transient

    prog = stormpy.parse_prism_program(str(QV / "cluster/cluster.prism"),
                                       prism_compatibility=True)
    prog, _ = stormpy.instantiate_constants(prog, "N=2")
    prop = stormpy.parse_properties('R{"num_repairs"}=? [S]', prog)[0]
    model = stormpy.build_model(prog, [prop])
    want = stormpy.model_checking(model, prop).get_value(model.initial_states[0])
    with pytest.warns(LumpkitWarning, match="'num_repairs': transition/action rewards are fol"):
        chain = read_prism(QV / "cluster/cluster.prism", {"N": 2})
    r = np.asarray(chain.rewards["num_repairs"], dtype=np.float64)
    assert float(stationary(chain) @ r) == pytest.approx(want, rel=1e-6)
    res = lump(chain, "ordinary")  # respects every reward structure
    assert res.num_blocks < chain.n
    rq = np.asarray(res.quotient.rewards["num_repairs"], dtype=np.float64)
    assert float(stationary(res.quotient) @ rq) == pytest.approx(want, rel=1e-6)

    die = stormpy.parse_prism_program(ex.prism_dtmc_die)
    prop = stormpy.parse_properties('R{"coin_flips"}=? [F "done"]', die)[0]
    model = stormpy.build_model(die, [prop])
    want = stormpy.model_checking(model, prop).get_value(model.initial_states[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LumpkitWarning)
        chain = read_prism(ex.prism_dtmc_die, exact=True)
    flips = np.asarray([float(x) for x in chain.rewards["coin_flips"]])
    got = sum(float(transient(chain, t) @ flips) for t in range(200))
    # Storm iterates to a relative precision of 1e-6; by hand the expectation is 11/3
    assert want == pytest.approx(got, rel=1e-6) and got == pytest.approx(11 / 3, rel=1e-12)


def test_folded_float_rewards_agree_with_storm_bisimulation() -> None:
    """cluster N=16 (10,132 states) has a transition reward ('num_repairs'): Storm's strong
    bisimulation that preserves it finds 5,117 blocks on the float model.  lumpkit folds the
    reward exactly from the floats and rounds once, so its bisimulation respecting the reward
    agrees; folded in float arithmetic in file order (before 2026-11-22), states with the same
    exact value got different last bits and nothing merged (10,132 blocks)."""
    import warnings

    model = build(QV / "cluster/cluster.prism", "N=16")
    storm = storm_quotient(model, rewards=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the folding warning
        chain = from_stormpy(model)
    assert "num_repairs" in chain.rewards
    got = lump(chain, "bisim")  # every reward structure respected (the default)
    assert got.num_blocks == storm.nr_states < model.nr_states
