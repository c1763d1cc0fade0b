"""Notebook helpers: the strengths cache returns what a fresh computation gives."""

from __future__ import annotations

import torch

from rgflow.explain import receptive_field_strengths
from rgflow.nbtools import cached_strengths


def test_cached_strengths_match_and_survive_damage(tiny_flow, tmp_path):
    fresh = receptive_field_strengths(tiny_flow, n_samples=2, seed=3)

    first = cached_strengths(tiny_flow, 2, 3, cache_dir=tmp_path)
    files = list((tmp_path / "strengths").glob("*.pt"))
    assert len(files) == 1
    again = cached_strengths(tiny_flow, 2, 3, cache_dir=tmp_path)
    for result in (first, again):
        assert torch.equal(result.strength, fresh.strength)
        assert torch.equal(result.maps, fresh.maps)
        assert (result.levels == fresh.levels).all()

    files[0].write_bytes(b"not a tensor file")  # damaged: recomputed, not trusted
    assert torch.equal(
        cached_strengths(tiny_flow, 2, 3, cache_dir=tmp_path).strength, fresh.strength
    )

    with torch.no_grad():  # another model (or seed) gets another key
        next(tiny_flow.parameters()).add_(0.1)
    cached_strengths(tiny_flow, 2, 3, cache_dir=tmp_path)
    assert len(list((tmp_path / "strengths").glob("*.pt"))) == 2
