"""The distances of the alignment stage (fpt/models/align.py), as ORCA computes them (sjunhongshen/ORCA):

- `mmd`: src/utils.py `MMD_loss`: a sum of 5 Gaussian kernels (bandwidths the mean pairwise squared distance / 4
  times 1, 2, 4, 8, 16), the biased estimate mean(XX + YY - XY - YX), against as many source rows as there are
  target rows, drawn at random with replacement.
- `otdd`: src/embedder.py `otdd` (on the otdd package's `DatasetDistance`): optimal transport between labelled
  sets, the cost of (x, y) -> (x', y') being |x - x'|^2 + W2^2(class y, class y'), the class-to-class W2 exact
  (inner_ot_method='exact'), the outer problem geomloss's debiased Sinkhorn at entreg 0.1. ORCA calls it once per
  target class (all its rows one label) against the whole labelled source, so a target class's cost to a source
  row is |x - x'|^2 + W2^2(that class, the row's class). Here both problems are solved exactly by POT's network
  simplex (`ot.emd2`, differentiable through its cost): at ORCA's epsilon of 0.1 against costs of 10 to 1000 (pooled
  embeddings) the debiased Sinkhorn value is the exact one within about epsilon, and POT's log-domain Sinkhorn did not
  converge in 2,000 iterations there (1.9 s per call on CPU; the exact solver: 3 ms).

Axes: n target rows, m source rows, h features.
"""

from __future__ import annotations

import numpy as np
import torch

KERNEL_MUL, KERNEL_NUM = 2.0, 5  # ORCA's MMD_loss defaults
CLASSES = 10  # ORCA's infer_labels(k=10): k-means labels where a set has none


def pooled(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(b, t, h) -> (b, h): the mean over real positions (ORCA pools its embedder's output with .mean(1))."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp_min(1)


def mmd(source: torch.Tensor, target: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """ORCA's MMD_loss: target (n, h) against n source rows of (m, h) drawn with replacement."""
    n = target.shape[0]
    src = source[torch.randint(source.shape[0], (n,), generator=gen)].to(target)
    total = torch.cat([src, target])  # (2n, h)
    d2 = torch.cdist(total, total).pow(2)
    bandwidth = d2.detach().sum() / (total.shape[0] ** 2 - total.shape[0]) / KERNEL_MUL ** (KERNEL_NUM // 2)
    k = sum(torch.exp(-d2 / (bandwidth * KERNEL_MUL**i)) for i in range(KERNEL_NUM))
    return (k[:n, :n] + k[n:, n:] - k[:n, n:] - k[n:, :n]).mean()


def _w2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact squared 2-Wasserstein distance between two point clouds with uniform weights (POT's network simplex)."""
    import ot

    return ot.emd2(_uniform(a), _uniform(b), torch.cdist(a, b).pow(2))


def _uniform(x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=x.dtype, device=x.device)


class LabelledSource:
    """The source features (m, h) with their labels: what each target class is scored against."""

    def __init__(self, feats: torch.Tensor, labels: torch.Tensor):
        self.feats, self.labels = feats, labels
        self.classes = sorted(set(labels.tolist()))
        self.index = torch.tensor([self.classes.index(c) for c in labels.tolist()])  # (m,) each row's class position

    def otdd(self, target: torch.Tensor) -> torch.Tensor:
        """OTDD between one target class (n, h) (all one label, as ORCA calls it) and the labelled source: exact OT
        over the cost |x - x'|^2 + W2^2(the target class, the source row's class)."""
        import ot

        src = self.feats.to(target)
        w = torch.stack([_w2(target, src[self.labels == c]) for c in self.classes])  # (k,) to each source class
        cost = torch.cdist(target, src).pow(2) + w[self.index.to(target.device)][None, :]  # (n, m)
        return ot.emd2(_uniform(target), _uniform(src), cost)


def kmeans_labels(values: torch.Tensor, k: int = CLASSES, seed: int = 0) -> torch.Tensor:
    """(n,) labels from k-means on (n, ...) values (ORCA's infer_labels); fewer clusters when there are fewer rows."""
    from sklearn.cluster import KMeans

    flat = values.reshape(values.shape[0], -1).double().cpu().numpy()
    k = max(1, min(k, len(np.unique(flat, axis=0))))
    return torch.as_tensor(KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(flat), dtype=torch.long)
