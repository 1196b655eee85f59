""".nnet files as other tools write them, each checked by an independent NNet evaluator.

The oracle below reads the sisl/NNet text itself and evaluates it in ``Fraction``
arithmetic with the format's semantics (clip each input to its minimum/maximum,
``(x - mean) / range``, ReLU hidden layers, a linear output layer, ``y * range + mean``);
it shares no code with ``nnreduce``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import LumpkitWarning, ModelFormatError
from lumpkit._cli import main
from nnreduce import (
    Activation,
    Dense,
    Network,
    Normalization,
    evaluate_exact,
    load_network,
    network_sha256,
    save_network,
)

DATA = Path(__file__).parent / "data" / "nn"


# ------------------------------------------------------------------ the oracle
def _oracle_parse(text: str) -> dict[str, Any]:
    rows = [ln.strip().lstrip("\ufeff") for ln in re.split(r"\r\n|\r|\n", text)]
    rows = [r for r in rows if r and not r.startswith("//")]

    def nums(r: str) -> list[Fraction]:
        return [Fraction(float(t)) for t in re.split(r"[,\s]+", r) if t]

    n_layers = int(nums(rows[0])[0])
    sizes = [int(v) for v in nums(rows[1])]
    # rows[2] is the unused flag line
    mins, maxs, means, ranges = (nums(r) for r in rows[3:7])
    it = iter(rows[7:])
    weights, biases = [], []
    for k in range(n_layers):
        weights.append([nums(next(it)) for _ in range(sizes[k + 1])])
        biases.append([nums(next(it))[0] for _ in range(sizes[k + 1])])
    return {"n_in": sizes[0], "mins": mins, "maxs": maxs, "means": means, "ranges": ranges,
            "W": weights, "b": biases}


def _oracle_eval(m: dict[str, Any], x: list[float]) -> list[Fraction]:
    v = []
    for i in range(m["n_in"]):
        xi = Fraction(x[i])
        xi = m["mins"][i] if xi < m["mins"][i] else m["maxs"][i] if xi > m["maxs"][i] else xi
        v.append((xi - m["means"][i]) / m["ranges"][i])
    for k, (w, b) in enumerate(zip(m["W"], m["b"], strict=True)):
        pre = [sum((wi * vi for wi, vi in zip(row, v, strict=True)), Fraction(0)) + bi
               for row, bi in zip(w, b, strict=True)]
        v = pre if k == len(m["W"]) - 1 else [max(p, Fraction(0)) for p in pre]
    return [y * m["ranges"][-1] + m["means"][-1] for y in v]


def _agree_on_random_inputs(path: Path, text: str, rng: random.Random, n: int = 12) -> None:
    net = load_network(path)
    m = _oracle_parse(text)
    for _ in range(n):  # inside and outside the clipping box
        x = [rng.uniform(float(lo) - 2, float(hi) + 2)
             for lo, hi in zip(m["mins"], m["maxs"], strict=True)]
        assert list(evaluate_exact(net, np.array([x]))[0]) == _oracle_eval(m, x)


# ------------------------------------------------------- files by other writers
def _random_model(rng: random.Random) -> dict[str, Any]:
    sizes = [rng.randint(1, 4) for _ in range(rng.randint(2, 4))]
    n = sizes[0]
    mins = [rng.choice([-1.0, -2.5, 0.0, -65504.0]) for _ in range(n)]
    return {"sizes": sizes, "mins": mins,
            "maxs": [lo + rng.choice([0.5, 3.0, 131008.0]) for lo in mins],
            "means": [rng.uniform(-1, 1) for _ in range(n + 1)],
            "ranges": [rng.choice([1.0, 2.0, 0.3, -1.5]) for _ in range(n + 1)],
            "W": [[[rng.gauss(0, 1) for _ in range(sizes[k])] for _ in range(sizes[k + 1])]
                  for k in range(len(sizes) - 1)],
            "b": [[rng.gauss(0, 1) for _ in range(sizes[k + 1])]
                  for k in range(len(sizes) - 1)]}


def _write(m: dict[str, Any], style: str) -> str:
    sizes = m["sizes"]
    fmt = (lambda v: f"{v:.5e}") if style == "sisl" else (
        (lambda v: f"{v:+.6E}") if style == "upper_e" else repr)
    sep, end, nl, flag = ",", ",", "\n", "0,"
    head = ["// Neural Network File Format by Kyle Julian, Stanford 2016"]
    if style == "neuralverification_jl":  # its print_header: ", " and a text flag line
        sep, flag = ", ", "This line extraneous"
        head = ["//Default header text.", "//Should replace with the real deal."]
    elif style == "spaces":
        sep, end = " ", ""
    elif style == "tabs":
        sep, end = "\t", ""
    elif style == "no_trailing_comma":
        end = ""
    elif style == "crlf":
        nl = "\r\n"
    elif style == "cr":
        nl = "\r"
    elif style == "bom":
        head = ["\ufeff// saved by a Windows editor"]
    elif style == "indented_comments":
        head = ["   // indented", "\t// tab"]

    def row(vs: list[float]) -> str:
        return sep.join(fmt(float(v)) for v in vs) + end

    header = sep.join(str(v) for v in (len(sizes) - 1, sizes[0], sizes[-1], max(sizes))) + end
    out = [*head, header, sep.join(map(str, sizes)) + end, flag,
           row(m["mins"]), row(m["maxs"]), row(m["means"]), row(m["ranges"])]
    for w, b in zip(m["W"], m["b"], strict=True):
        out += [row(r) for r in w] + [fmt(float(v)) + end for v in b]
    if style == "blank_lines_and_comments":
        out = [x for y in out for x in (y, "", "   ", "// between")]
    return nl.join(out) + nl


@pytest.mark.parametrize("style", [
    "sisl", "neuralverification_jl", "upper_e", "spaces", "tabs", "no_trailing_comma", "crlf",
    "cr", "bom", "indented_comments", "blank_lines_and_comments"])
def test_nnet_written_by_other_tools_matches_the_oracle(tmp_path: Path, style: str) -> None:
    """NeuralVerification.jl writes a text flag line, editors a BOM, others indent comments:
    all used to be refused; every variant must read as the oracle reads it."""
    rng = random.Random(style)
    for trial in range(3):
        text = _write(_random_model(rng), style)
        path = tmp_path / f"m{trial}.nnet"
        path.write_bytes(text.encode("utf-8"))
        _agree_on_random_inputs(path, text, rng)


_BASE = """// t
2,2,1,3,
2,3,1,
0,
-1,-1,
1,1,
0,0,0,
1,1,1,
1,2,
3,4,
5,6,
0.5,
0.5,
0.5,
1,1,1,
0,
"""


@pytest.mark.parametrize(("old", "new", "match"), [
    ("1,1,1,\n0,\n", "1,1,1,\n0,\n7,8,\n", r":17: 1 more line\(s\) after the last bias"),
    ("2,2,1,3,", "2,3,1,3,", r":3: the layer sizes give 2 inputs and 1 outputs, the header "
                             r"\(line 2\) 3 and 1"),
    ("2,3,1,\n", "2,3.5,1,\n", r":3: layer size entry 2 is 3.5; expected a whole number"),
    ("2,3,1,\n", "2,-3,1,\n", r":3: layer size entry 2 is -3.0"),
    ("2,2,1,3,", "nan,2,1,3,", r":2: header entry 1 is nan"),
    ("2,2,1,3,", "inf,2,1,3,", r":2: header entry 1 is inf"),
    ("-1,-1,\n1,1,", "2,-1,\n1,1,", r":5: input 0 has minimum 2.0 above its maximum 1.0"),
    ("1,2,\n", "1_0,2,\n", r":9: entry 1 \('1_0'\) is not a number"),
    # (a full-width digit is a digit to Python's float, not to the format)
    ("1,2,\n", "\uff11,2,\n", r":9: entry 1 \('\uff11'\) is not a number"),
    # non-finite weights, biases and means named by line, not by the layer built from them
    ("3,4,\n", "3,nan,\n", r":10: layer 0 weight row: entry 2 is nan"),
    ("1,1,1,\n0,\n", "1,1,1,\nInfinity,\n", r":16: layer 1 bias: entry 1 is inf"),
    ("0,0,0,\n", "0,1e999,0,\n", r":7: the input means and output mean: entry 2 is inf"),
])
def test_inconsistent_nnet_files_are_refused(tmp_path: Path, old: str, new: str,
                                             match: str) -> None:
    """Trailing lines, a header that contradicts the layer sizes, a fractional size and an
    empty clipping box were read silently (a box with min > max even evaluated unlike the
    NNet tools); NaN in the header raised a bare ValueError; a NaN weight was named by
    the layer built from it, not by its line."""
    assert old in _BASE
    path = tmp_path / "m.nnet"
    path.write_text(_BASE.replace(old, new, 1))
    with pytest.raises(ModelFormatError, match=match) as info:
        load_network(path)
    assert str(path) in str(info.value)


def test_the_base_file_of_the_refusals_reads(tmp_path: Path) -> None:
    path = tmp_path / "m.nnet"
    path.write_text(_BASE)
    _agree_on_random_inputs(path, _BASE, random.Random(0))


# ----------------------------------------------------------------- round trips
def test_network_without_normalisation_round_trips_identically(tmp_path: Path) -> None:
    """write_nnet writes +-DBL_MAX bounds, mean 0 and range 1 for "no normalisation"; they
    used to come back as a Normalization, so the hash of the file read back differed."""
    rng = np.random.default_rng(1)
    net = Network((Dense(rng.normal(size=(3, 2)), rng.normal(size=3)), Activation("relu"),
                   Dense(rng.normal(size=(2, 3)), rng.normal(size=2))), (2,))
    save_network(net, tmp_path / "m.nnet")
    back = load_network(tmp_path / "m.nnet")
    assert back.normalization is None
    assert network_sha256(back) == network_sha256(net)
    m = _oracle_parse((tmp_path / "m.nnet").read_text())
    x = rng.normal(size=(5, 2)) * 1e3
    assert [list(r) for r in evaluate_exact(net, x)] == [_oracle_eval(m, list(xi)) for xi in x]


def test_only_the_clip_side_left_open_is_dropped(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    net = Network((Dense(rng.normal(size=(3, 2)), rng.normal(size=3)), Activation("relu"),
                   Dense(rng.normal(size=(1, 3)), [0.0])), (2,),
                  Normalization([0, 0], [1, 1], [0], [1], input_max=[1.5, 2.0]))
    save_network(net, tmp_path / "m.nnet")
    back = load_network(tmp_path / "m.nnet")
    assert back.normalization is not None and back.normalization.input_min is None
    assert network_sha256(back) == network_sha256(net)
    _agree_on_random_inputs(tmp_path / "m.nnet", (tmp_path / "m.nnet").read_text(),
                            random.Random(2))


@pytest.mark.parametrize("suffix", [".nnet", ".onnx"])
def test_an_exact_normalisation_rounded_on_export_is_announced(tmp_path: Path,
                                                               suffix: str) -> None:
    """An output range of 1/3 is written as the nearest float64: as for weights, the file
    is then not the network exactly and save_network must say so (it was silent)."""
    pytest.importorskip("onnx")
    net = Network((Dense(np.eye(2), np.zeros(2)), Activation("relu"),
                   Dense(np.ones((1, 2)), [0.0])), (2,),
                  Normalization([0, 0], [1, 1], [0], [Fraction(1, 3)]))
    with pytest.warns(LumpkitWarning, match="1 exact parameter values"):
        save_network(net, tmp_path / f"m{suffix}")


def test_reduced_twin_file_equals_the_original_under_the_oracle(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``lumpkit nn reduce`` on a twin network: the hidden layer halves, and the written
    .nnet evaluates, under the oracle, exactly like the original file."""
    src = DATA / "twin/twin_ladder-5_inp-2_layers-5_width-1_margin.nnet"
    model = tmp_path / "twin.nnet"
    shutil.copy(src, model)
    assert main(["nn", "reduce", str(model), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [(lr["before"], lr["after"]) for lr in summary["layers"]] == [(10, 5)]
    a = _oracle_parse(model.read_text())
    b = _oracle_parse((tmp_path / "twin.reduced.nnet").read_text())
    assert len(b["W"][0]) == 5
    rng = random.Random(4)
    for _ in range(20):
        x = [rng.uniform(-12, 12) for _ in range(5)]
        assert _oracle_eval(a, x) == _oracle_eval(b, x)
