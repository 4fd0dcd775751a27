"""k-nearest-neighbour balls in feature space, shared by precision/recall and density/coverage.

Distances come from torch.cdist on row chunks, so 10k x 10k never holds more than one
chunk x N block (1000 x 10k float32 = 40 MB). float32 is enough: the metrics only ask
whether a distance is below a k-NN radius, and callers centre the features first so
the |x|^2 + |y|^2 - 2 x.y form cdist uses does not lose the small distances.
"""

from __future__ import annotations

import torch

from ..errors import GenforgeError

CHUNK = 1000


def knn_radii(x: torch.Tensor, k: int, chunk: int = CHUNK) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    if len(x) <= k:
        raise GenforgeError(f"k-NN radii with k={k} need more than {k} samples, got {len(x)}")
    # The (k+1)-th smallest distance in a row: the smallest is the point itself. topk of a small k
    # gives the same value as kthvalue about 4 times faster on a CPU (a partial sort of k+1 items).
    return torch.cat([torch.cdist(x[i:i + chunk], x).topk(k + 1, dim=1, largest=False).values[:, -1]
                      for i in range(0, len(x), chunk)])


def balls_containing(queries: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor,
                     chunk: int = CHUNK) -> torch.Tensor:
    """For each query, how many balls B(center_i, radius_i) contain it (closed balls)."""
    return torch.cat([(torch.cdist(queries[i:i + chunk], centers) <= radii).sum(1)
                      for i in range(0, len(queries), chunk)])


def nearest_distance(queries: torch.Tensor, points: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """Distance from each query to its nearest point."""
    return torch.cat([torch.cdist(queries[i:i + chunk], points).min(1).values for i in range(0, len(queries), chunk)])
