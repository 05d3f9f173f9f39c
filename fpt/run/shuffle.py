"""The test-time order check (`eval.shuffle_tokens=true`): the same model on the same test set with the order of
each example's real tokens permuted (pads stay at the end), reported as test_shuffled/acc. A model that reads
order loses accuracy; one that reads a bag of tokens does not."""

from __future__ import annotations

import torch

SEED = 4321  # the permutations: the same for every run and every model, so rows compare


def shuffle_tokens(x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x (b, t, d) or (b, t) ids with right padding `mask` (b, t) -> x with each row's real tokens in a random order."""
    b, t = mask.shape
    keys = torch.rand(b, t, generator=generator).to(mask.device)  # (b, t) in [0, 1): real tokens sort first, at random
    keys = torch.where(mask.bool(), keys, 2.0 + torch.arange(t, device=mask.device, dtype=keys.dtype))  # pads keep their place
    perm = keys.argsort(dim=1)  # (b, t)
    if x.dim() == 3:
        return x.gather(1, perm[..., None].expand_as(x))
    return x.gather(1, perm)
