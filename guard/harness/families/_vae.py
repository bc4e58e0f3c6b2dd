"""A small MLP variational autoencoder for vector records in [0, 1] (the digits family's
``kind: vae``), trained and sampled with generators seeded from the loop's numpy generator so a
run is reproducible."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional


class Vae(nn.Module):
    """Encoder dim -> hidden -> (mean, log-variance) of a ``latent``-dim Gaussian; decoder
    latent -> hidden -> dim logits of Bernoulli means."""

    def __init__(self, dim: int, hidden: int, latent: int):
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Mean negative ELBO (nats per record) of ``batch`` (b, dim): Bernoulli cross-entropy
        of the reconstruction plus KL(q(z|x) || N(0, I))."""
        mean, log_var = self.encoder(batch).chunk(2, dim=1)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        logits = self.decoder(mean + torch.exp(0.5 * log_var) * noise)
        reconstruction = functional.binary_cross_entropy_with_logits(logits, batch, reduction="none").sum(1)
        kl = -0.5 * (1 + log_var - mean.square() - log_var.exp()).sum(1)
        return (reconstruction + kl).mean()


class VaeTrainer:
    """Fits one VAE per chain; a model is the list of the chains' state dicts (CPU tensors)."""

    def __init__(self, params, dim: int):
        self.params = params
        self.dim = dim
        self.device = torch.device(params.device)

    def _network(self, seed: int, state: dict | None) -> Vae:
        """A VAE with weights initialised from ``seed`` (global torch RNG left untouched), or
        loaded from ``state``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = Vae(self.dim, self.params.hidden, self.params.latent)
        if state is not None:
            network.load_state_dict(state)
        return network.to(self.device)

    def fit(self, records: np.ndarray, rng: np.random.Generator, start: list[dict] | None) -> list[dict]:
        """Train on ``records`` (chains, n, dim) for ``epochs`` epochs, from ``start`` or fresh."""
        states = []
        for chain, points in enumerate(records):
            seed = int(rng.integers(0, 2**62))
            network = self._network(seed, None if start is None else start[chain])
            generator = torch.Generator(self.device).manual_seed(seed)
            data = torch.as_tensor(points, dtype=torch.float32, device=self.device)
            optimiser = torch.optim.Adam(network.parameters(), lr=self.params.learning_rate)
            for _ in range(self.params.epochs):
                for batch in torch.randperm(len(data), generator=generator, device=self.device).split(
                    self.params.batch_size
                ):
                    optimiser.zero_grad()
                    network.loss(data[batch], generator).backward()
                    optimiser.step()
            states.append({name: value.detach().cpu() for name, value in network.state_dict().items()})
        return states

    @torch.no_grad()
    def sample(self, model: list[dict], n: int, rng: np.random.Generator) -> np.ndarray:
        """Decoder means at z ~ N(0, lambda^2 I): (chains, n, dim) float64 in [0, 1]."""
        outputs = []
        for state in model:
            network = self._network(0, state)
            generator = torch.Generator(self.device).manual_seed(int(rng.integers(0, 2**62)))
            latent = self.params.sampling_bias * torch.randn(
                (n, self.params.latent), generator=generator, device=self.device
            )
            outputs.append(torch.sigmoid(network.decoder(latent)).double().cpu().numpy())
        return np.stack(outputs)
