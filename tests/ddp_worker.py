"""One rank of a small data-parallel job, for tests/test_distributed.py (run by torchrun, or
as a plain process): a deterministic autoencoder (no noise, no BatchNorm) trained through the
genforge training loop on fixed random images, so that runs with different numbers of ranks
can be compared weight for weight.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py OUT STEPS BATCH [resume]
"""

import sys

import torch
from torch import nn

from genforge.data import ImageSet
from genforge.models.base import GenerativeModel, ModelConfig
from genforge.train.distributed import start, stop
from genforge.train.loop import TrainConfig, train


class Plain(GenerativeModel):
    """x -> linear -> tanh -> linear -> sigmoid, mean squared error: every step a pure function
    of the weights and the batch."""

    name = "plain"

    def __init__(self):
        super().__init__(ModelConfig(image_shape=(1, 8, 8), latent_dim=4, lr=1e-2, batch_size=16))
        self.encoder, self.decoder = nn.Linear(64, 4), nn.Linear(4, 64)

    def loss(self, x, y=None):
        recon = torch.sigmoid(self.decoder(torch.tanh(self.encoder(x.flatten(1))))).view_as(x)
        return {"loss": ((recon - x) ** 2).mean()}

    def generate(self, z, labels=None):
        return torch.sigmoid(self.decoder(z)).view(-1, 1, 8, 8)


def main(out: str, steps: int, batch: int, resume: bool) -> None:
    group, device = start("cpu", timeout_s=60)
    torch.manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (256, 1, 8, 8), generator=torch.Generator().manual_seed(1),
                                  dtype=torch.uint8))
    model = Plain()
    config = TrainConfig(steps=steps, batch_size=batch, seed=3, log_every=5, sample_every=10_000)
    finished = False
    try:
        train(model, data, out, config, resume=resume, progress=False, group=group)
        finished = True
    finally:
        stop(group, finished)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), len(sys.argv) > 4 and sys.argv[4] == "resume")
