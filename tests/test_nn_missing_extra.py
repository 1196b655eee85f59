"""Without an optional extra, reading that format says which extra to install."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lumpcore import LumpkitError
from nnreduce import Activation, Dense, Network, load_network, save_network


@pytest.mark.parametrize(
    ("ext", "module", "extra"), [(".onnx", "onnx", "onnx"), (".pt", "torch", "torch")]
)
def test_missing_extra_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str, module: str, extra: str
) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: object, **kwargs: object) -> object:
        return None if name == module else real(name, *args, **kwargs)  # type: ignore[arg-type]

    path = tmp_path / f"m{ext}"
    path.write_bytes(b"not really a model")
    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(LumpkitError, match=rf"lumpkit\[{extra}\]") as err:
        load_network(path)
    assert isinstance(err.value, ImportError)
    net = Network((Dense(np.eye(2), np.zeros(2)), Activation("relu")), (2,))
    with pytest.raises(ImportError, match=module):
        save_network(net, tmp_path / f"out{ext}")
    assert not (tmp_path / f"out{ext}").exists()
