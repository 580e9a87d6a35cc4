"""Batches built by token budget, so long texts travel alone and short ones are not padded."""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[int], token_budget: int, max_batch_size: int) -> list[list[int]]:
    """Group text indices, longest first, so that each batch's padded size fits the budget.

    A batch costs `len(batch) * longest_length` tokens once padded; a single text longer than
    the budget still gets a batch of its own. Returns indices into `lengths`.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (
            len(current) >= max_batch_size or (len(current) + 1) * longest > token_budget
        ):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
