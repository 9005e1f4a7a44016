"""The writer's mask rendering: the bit-parallel composition against the loop over layers, and batches of
items against items one by one (the same PNG bytes)."""

from __future__ import annotations

import random

import numpy as np


def _random_ends(rng: random.Random, total: int) -> np.ndarray:
    """Run ends of a random layer (runs alternate background, foreground from 0; zero-length runs too)."""
    cuts = sorted(rng.randrange(0, total + 1) for _ in range(rng.randrange(0, 12)))
    if rng.random() < 0.3:
        cuts = [0, *cuts]  # an empty first background run: foreground from pixel 0
    return np.array([*cuts, total], dtype=np.int64)


def test_bit_composition_equals_the_loop_over_layers():
    from dsformats_voc.writer import _XOR_LAYERS, _segments

    rng = random.Random(11)
    for _ in range(2000):
        total = rng.randrange(1, 200)
        count = rng.choice([1, 2, 3, 7, rng.randrange(1, _XOR_LAYERS + 1)])
        layers = [_random_ends(rng, total) for _ in range(count)]
        fast = _segments(layers, total)
        slow = _segments(layers, total, bits=False)
        for a, b in zip(fast, slow, strict=True):
            assert a.tolist() == b.tolist()
        assert fast[1].sum() == total


def test_batches_render_the_same_bytes_as_single_items():
    from dsformats_voc.writer import render_mask_batch, render_masks

    rng = random.Random(5)
    palette = bytes(range(256)) * 3
    payloads = []
    for _ in range(40):
        if rng.random() < 0.2:
            payloads.append(None)
            continue
        height, width = rng.randrange(1, 40), rng.randrange(1, 40)
        layers = []
        for number in range(rng.randrange(1, 9)):
            if rng.random() < 0.25:
                bitmap = np.array([rng.random() < 0.4 for _ in range(height * width)], dtype=bool)
                data = np.packbits(bitmap)
            else:
                data = [
                    v
                    for _ in range(rng.randrange(3, 8))
                    for v in (rng.uniform(-3, width + 3), rng.uniform(-3, height + 3))
                ]
            layers.append((data, rng.randrange(1, 20), number + 1))
        payloads.append((width, height, layers, palette, rng.random() < 0.8))
    batched = render_mask_batch(payloads)
    assert batched == [None if p is None else render_masks(p) for p in payloads]
    assert render_mask_batch([None, None]) == [None, None]
