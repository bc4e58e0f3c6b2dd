"""``gmm``: a Gaussian mixture refitted by EM on its own samples; real data is the 2-D grid of
``grid`` x ``grid`` Gaussian modes (the 25-mode benchmark at the defaults: centres at
{-4, -2, 0, 2, 4}^2, standard deviation 0.05).

Each generation fits ``components`` full-covariance components with scikit-learn's EM, started
from k-means (``init: scratch``), from the previous generation's mixture (``previous``) or from
the generation-0 mixture (``pretrained``). Samples come from N(mean_k, lambda^2 cov_k) with the
sampling bias lambda (1 = unbiased; lambda < 1 is MAD's precision-for-recall trade).

Ledger metrics (mean over chains), on ``n_eval`` samples of the model against a fixed real
reference of the same size:
  ``modes_covered``  grid modes that receive at least ``mode_min_share`` of their expected share
                     of samples (n_eval / modes) within 3 mode standard deviations (PacGAN's
                     rule, as a share)
  ``high_quality``   share of samples within 3 standard deviations of some mode
  ``precision``, ``recall``, ``density``, ``coverage``   PRDC (Naeem et al. 2020, k = ``prdc_k``)
  ``frechet``        Frechet distance of Gaussians fitted to samples and reference (squared units)
  ``total_variance`` trace of the samples' covariance (squared units): a poor diversity metric,
                     it moves little while modes vanish
  ``component_std``  weight-averaged sqrt(trace(cov_k) / 2) of the fitted components (units)
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from sklearn.mixture import GaussianMixture

from guard.harness.families import FamilyParams, InitMode, VectorRecords, sample_categorical
from guard.metrics.drift import frechet_distance, prdc

QUALITY_RADIUS = 3.0  # a sample within this many mode standard deviations of a centre is on it


class Params(FamilyParams):
    chains: int = Field(1, ge=1, description="independent chains per seed (one EM fit each)")
    grid: int = Field(5, ge=1, description="modes per side of the square grid")
    spacing: float = Field(2.0, gt=0.0, description="distance between neighbouring centres")
    mode_std: float = Field(0.05, gt=0.0, description="standard deviation of every real mode")
    components: int = Field(25, ge=1, description="mixture components fitted")
    init: InitMode = "scratch"
    sampling_bias: float = Field(1.0, gt=0.0, description="lambda: samples are mean + lambda * noise")
    em_iterations: int = Field(100, ge=1)
    reg_covar: float = Field(1e-6, ge=0.0, description="added to covariance diagonals by EM")
    n_eval: int = Field(1000, ge=10, description="model samples (and reference size) for the metrics")
    mode_min_share: float = Field(0.2, gt=0.0, le=1.0)
    prdc_k: int = Field(5, ge=1)
    reference_seed: int = Field(2**31 - 1, description="seed of the fixed real reference")


class MixtureModel:
    """Fitted mixtures of every chain: ``weights`` (chains, C), ``means`` (chains, C, 2),
    ``covariances`` (chains, C, 2, 2)."""

    def __init__(self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray):
        self.weights = weights
        self.means = means
        self.covariances = covariances


def sample_mixture(model: MixtureModel, n: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws per chain from N(mean_k, scale^2 cov_k), k ~ weights: (chains, n, d)."""
    component = sample_categorical(model.weights, n, rng)  # (chains, n)
    chain = np.arange(len(component))[:, None]
    eigenvalues, eigenvectors = np.linalg.eigh(model.covariances)
    roots = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))[..., None, :]  # cov = root root^T
    noise = rng.standard_normal(component.shape + (model.means.shape[-1],))
    return model.means[chain, component] + scale * np.einsum("cnij,cnj->cni", roots[chain, component], noise)


def fit_mixture(
    points: np.ndarray, components: int, start: MixtureModel | None, chain: int, seed: int, params: Params
) -> GaussianMixture:
    """scikit-learn EM on ``points`` (n, d), from k-means or from chain ``chain`` of ``start``."""
    initial = {}
    if start is not None:
        initial = {
            "weights_init": start.weights[chain] / start.weights[chain].sum(),
            "means_init": start.means[chain],
            "precisions_init": np.linalg.inv(
                start.covariances[chain] + params.reg_covar * np.eye(points.shape[1])
            ),
        }
    mixture = GaussianMixture(
        components, covariance_type="full", max_iter=params.em_iterations, reg_covar=params.reg_covar,
        random_state=seed, **initial,
    )  # fmt: skip
    return mixture.fit(points)


DIRECTIONS = {
    "modes_covered": "higher_is_better",
    "high_quality": "higher_is_better",
    "precision": "higher_is_better",
    "recall": "higher_is_better",
    "density": "two_sided",
    "coverage": "higher_is_better",
    "frechet": "lower_is_better",
    "total_variance": "two_sided",
    "component_std": "two_sided",
}


class GridMixtureFamily(VectorRecords):
    directions = DIRECTIONS

    def __init__(self, params: Params, n_train: int):
        self.params = params
        self.chains = params.chains
        self.init = params.init
        axis = (np.arange(params.grid) - (params.grid - 1) / 2) * params.spacing
        self.centres = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
        n_modes = len(self.centres)
        self.truth = MixtureModel(
            np.full((1, n_modes), 1.0 / n_modes),
            self.centres[None],
            np.broadcast_to(params.mode_std**2 * np.eye(2), (1, n_modes, 2, 2)),
        )
        self.reference = sample_mixture(
            self.truth, params.n_eval, 1.0, np.random.default_rng(params.reference_seed)
        )[0]

    def draw_real(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([sample_mixture(self.truth, n, 1.0, rng) for _ in range(self.chains)])

    def fit(self, records: np.ndarray, rng: np.random.Generator, start: MixtureModel | None) -> MixtureModel:
        seeds = rng.integers(0, 2**31 - 1, size=self.chains)
        fits = [
            fit_mixture(records[c], self.params.components, start, c, int(seeds[c]), self.params)
            for c in range(self.chains)
        ]
        return MixtureModel(
            np.stack([f.weights_ for f in fits]), np.stack([f.means_ for f in fits]),
            np.stack([f.covariances_ for f in fits]),
        )  # fmt: skip

    def sample(self, model: MixtureModel, n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_mixture(model, n, self.params.sampling_bias, rng)

    def measure(self, model: MixtureModel, rng: np.random.Generator) -> dict[str, float]:
        samples = self.sample(model, self.params.n_eval, rng)
        rows = [self._chain_metrics(chain_samples) for chain_samples in samples]
        traces = np.trace(model.covariances, axis1=2, axis2=3)  # (chains, C)
        component_std = (model.weights * np.sqrt(traces / 2)).sum(axis=1) / model.weights.sum(axis=1)
        metrics = {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}
        metrics["component_std"] = float(component_std.mean())
        return metrics

    def _chain_metrics(self, samples: np.ndarray) -> dict[str, float]:
        """Mode coverage, PRDC, Frechet distance and total variance of one chain's (n, 2) samples."""
        distances = np.linalg.norm(samples[:, None, :] - self.centres[None], axis=2)
        on_mode = distances.min(axis=1) <= QUALITY_RADIUS * self.params.mode_std
        per_mode = np.bincount(distances.argmin(axis=1)[on_mode], minlength=len(self.centres))
        expected = len(samples) / len(self.centres)
        covariance = np.cov(samples.T)
        return {
            "modes_covered": float((per_mode >= self.params.mode_min_share * expected).sum()),
            "high_quality": float(on_mode.mean()),
            **prdc(self.reference, samples, k=self.params.prdc_k),
            "frechet": frechet_distance(
                self.reference.mean(0), np.cov(self.reference.T), samples.mean(0), covariance
            ),
            "total_variance": float(np.trace(covariance)),
        }


def build(params: Params, n_train: int) -> GridMixtureFamily:
    return GridMixtureFamily(params, n_train)
