"""``gaussian``: a d-dimensional Gaussian refitted on its own samples, thousands of chains at once.

Real data is N(0, I_d). Each generation fits the mean and the full covariance to the training set
(MLE divides by n, the unbiased estimator by n - 1) and samples from N(mean, lambda^2 cov), where
lambda is the sampling bias (1 = unbiased sampling). Generation 0 is already one fit (to real
data), so with MLE refits on n = N samples the expected fitted variance at generation g is
((N - 1)/N)^(g + 1) and its median about exp(-2 (g + 1)/N) (FIELD §5 counts refits).

Ledger metrics (over the chains of one seed):
  ``variance``          mean over chains of the mean fitted variance over dimensions
  ``variance_median``, ``variance_p10``, ``variance_p90``   quantiles of that per-chain value
  ``variance_lt_0.1``   share of chains whose mean fitted variance is below 0.1
  ``tail_mass``         median over chains of P(|x_j| > 2) under the fitted model, averaged over
                        dimensions (model-based, closed form: 0.0455 for the real N(0, 1)); the
                        median chain is the typical model
  ``tail_mass_mean``    the same, mean over chains (dominated by chains whose mean drifted away)
  ``mean_abs``          mean over chains and dimensions of |fitted mean|
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from scipy.special import ndtr

from guard.errors import GuardError
from guard.harness.families import FamilyParams, VectorRecords

TAIL_THRESHOLD = 2.0  # |x| beyond which mass counts as tail


class Params(FamilyParams):
    chains: int = Field(1000, ge=1, description="independent chains per seed, fitted as one array")
    dim: int = Field(1, ge=1, description="dimensions d")
    estimator: Literal["mle", "unbiased"] = "mle"
    sampling_bias: float = Field(1.0, gt=0.0, description="lambda: samples are mean + lambda * noise")


class GaussianModel:
    """Fitted parameters of every chain: ``mean`` (chains, d) and ``cov`` (chains, d, d)."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray):
        self.mean = mean
        self.cov = cov


DIRECTIONS = {
    "variance": "two_sided",
    "variance_median": "two_sided",
    "variance_p10": "higher_is_better",
    "variance_p90": "two_sided",
    "variance_lt_0.1": "lower_is_better",
    "tail_mass": "higher_is_better",
    "tail_mass_mean": "two_sided",
    "mean_abs": "lower_is_better",
}


class GaussianFamily(VectorRecords):
    directions = DIRECTIONS
    init = "scratch"

    def __init__(self, params: Params, n_train: int):
        self.params = params
        self.chains = params.chains
        self.ddof = 0 if params.estimator == "mle" else 1
        if n_train <= params.dim:
            raise GuardError(
                f"model.dim: {params.dim} must be below n_train ({n_train}) for a full covariance"
            )

    def draw_real(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((self.chains, n, self.params.dim))

    def fit(
        self, records: np.ndarray, rng: np.random.Generator, start: GaussianModel | None
    ) -> GaussianModel:
        mean = records.mean(axis=1)
        centred = records - mean[:, None, :]
        cov = np.matmul(centred.transpose(0, 2, 1), centred) / (records.shape[1] - self.ddof)
        return GaussianModel(mean, cov)

    def sample(self, model: GaussianModel, n: int, rng: np.random.Generator) -> np.ndarray:
        eigenvalues, eigenvectors = np.linalg.eigh(model.cov)
        root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None, :]  # cov = root root^T
        noise = rng.standard_normal((self.chains, n, self.params.dim))
        return model.mean[:, None, :] + self.params.sampling_bias * np.einsum("cij,cnj->cni", root, noise)

    def measure(self, model: GaussianModel, rng: np.random.Generator) -> dict[str, float]:
        variances = np.diagonal(model.cov, axis1=1, axis2=2)  # (chains, d)
        per_chain = variances.mean(axis=1)
        std = np.sqrt(np.maximum(variances, 1e-300))
        tail = ndtr((-TAIL_THRESHOLD - model.mean) / std) + ndtr((model.mean - TAIL_THRESHOLD) / std)
        tail_per_chain = tail.mean(axis=1)
        p10, median, p90 = np.quantile(per_chain, [0.1, 0.5, 0.9])
        return {
            "variance": float(per_chain.mean()),
            "variance_median": float(median),
            "variance_p10": float(p10),
            "variance_p90": float(p90),
            "variance_lt_0.1": float((per_chain < 0.1).mean()),
            "tail_mass": float(np.median(tail_per_chain)),
            "tail_mass_mean": float(tail_per_chain.mean()),
            "mean_abs": float(np.abs(model.mean).mean()),
        }


def build(params: Params, n_train: int) -> GaussianFamily:
    return GaussianFamily(params, n_train)


def expected_mle_variance(n_train: int, generation: int) -> float:
    """E[fitted variance] at ledger generation g of replace with MLE refits on ``n_train``
    samples: ((N-1)/N)^(g+1), generation 0 being the first fit."""
    return ((n_train - 1) / n_train) ** (generation + 1)
