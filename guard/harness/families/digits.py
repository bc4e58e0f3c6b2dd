"""``digits``: generative models of scikit-learn's bundled handwritten digits (1797 real 8 x 8
images, pixels scaled to [0, 1]), refitted on their own samples.

Real data: a fixed split (``test_share`` held out as the metrics' reference, by ``split_seed``);
fresh real records are drawn without replacement from the training split. Two models:

* ``kind: pca_gmm``: PCA to ``pca_components`` axes of the training set, a full-covariance
  Gaussian mixture of ``gmm_components`` in that space; samples are mapped back and clipped to
  [0, 1]. ``init: previous`` / ``pretrained`` start EM from that mixture carried into the new
  PCA axes.
* ``kind: vae``: a small MLP VAE (64 -> hidden -> latent, Bernoulli-mean decoder), trained
  ``epochs`` epochs with Adam; samples are decoder means at z ~ N(0, lambda^2 I). ``init``
  chooses fresh weights or those of the previous / generation-0 model.

The sampling bias lambda scales the noise in the PCA-GMM components or the latent prior.

Ledger metrics (mean over chains), on ``n_eval`` model samples against the held-out reference,
in pixel space (64 dims, units of full intensity):
  ``frechet``           Frechet distance of Gaussians fitted to samples and reference
  ``precision``, ``recall``, ``density``, ``coverage``   PRDC (Naeem et al. 2020, k = ``prdc_k``)
  ``pixel_variance``    trace of the samples' covariance
  ``classes_covered``   digit classes that get at least ``class_min_share`` of their expected share
                        of samples, as labelled by a logistic regression fitted on the real
                        training split
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from guard.errors import GuardError
from guard.harness.families import FamilyParams, InitMode, VectorRecords
from guard.harness.families.gmm import MixtureModel, fit_mixture, sample_mixture
from guard.metrics.drift import frechet_distance, prdc

N_CLASSES = 10
PIXEL_MAX = 16.0  # load_digits intensities run 0..16


class Params(FamilyParams):
    chains: int = Field(1, ge=1, description="independent chains per seed")
    kind: Literal["pca_gmm", "vae"] = "pca_gmm"
    init: InitMode = "scratch"
    sampling_bias: float = Field(1.0, gt=0.0, description="lambda: scale of the sampling noise")
    test_share: float = Field(0.3, gt=0.0, lt=1.0, description="share held out as the reference")
    split_seed: int = 0
    n_eval: int = Field(500, ge=10, description="model samples for the metrics")
    prdc_k: int = Field(5, ge=1)
    class_min_share: float = Field(0.2, gt=0.0, le=1.0)
    pca_components: int = Field(20, ge=1, le=64)
    gmm_components: int = Field(10, ge=1)
    em_iterations: int = Field(100, ge=1)
    reg_covar: float = Field(1e-6, ge=0.0)
    latent: int = Field(16, ge=1)
    hidden: int = Field(256, ge=1)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(2e-3, gt=0.0)
    device: str = Field("cpu", description="torch device for the VAE: cpu, cuda, cuda:1, ...")


class PcaMixtureModel:
    """Per chain: PCA ``centre`` (chains, 64) and orthonormal ``axes`` (chains, k, 64), and the
    mixture in PCA coordinates."""

    def __init__(self, centre: np.ndarray, axes: np.ndarray, mixture: MixtureModel):
        self.centre = centre
        self.axes = axes
        self.mixture = mixture


def _pca(points: np.ndarray, n_axes: int) -> tuple[np.ndarray, np.ndarray]:
    """(centre (d,), axes (n_axes, d)) of ``points`` (n, d): the leading principal directions."""
    centre = points.mean(axis=0)
    _, _, right = np.linalg.svd(points - centre, full_matrices=False)
    return centre, right[:n_axes]


def _carry_mixture(start: PcaMixtureModel, chain: int, centre: np.ndarray, axes: np.ndarray) -> MixtureModel:
    """Chain ``chain`` of ``start``'s mixture expressed in new PCA coordinates (centre, axes)."""
    old_axes = start.axes[chain]
    change = old_axes @ axes.T  # (k_old, k_new)
    means = (start.mixture.means[chain] @ old_axes + start.centre[chain] - centre) @ axes.T
    covariances = change.T @ start.mixture.covariances[chain] @ change
    return MixtureModel(start.mixture.weights[chain][None], means[None], covariances[None])


DIRECTIONS = {
    "frechet": "lower_is_better",
    "precision": "higher_is_better",
    "recall": "higher_is_better",
    "density": "two_sided",
    "coverage": "higher_is_better",
    "pixel_variance": "two_sided",
    "classes_covered": "higher_is_better",
}


class DigitsFamily(VectorRecords):
    directions = DIRECTIONS

    def __init__(self, params: Params, n_train: int):
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression

        self.params = params
        self.chains = params.chains
        self.init = params.init
        images, labels = load_digits(return_X_y=True)
        order = np.random.default_rng(params.split_seed).permutation(len(images))
        n_test = int(round(params.test_share * len(images)))
        self.reference = images[order[:n_test]] / PIXEL_MAX
        self.train_images = images[order[n_test:]] / PIXEL_MAX
        if n_train > len(self.train_images):
            raise GuardError(
                f"n_train: {n_train} exceeds the {len(self.train_images)} training images of digits"
            )
        self.labeller = LogisticRegression(max_iter=2000).fit(self.train_images, labels[order[n_test:]])
        if params.kind == "vae":
            from guard.harness.families._vae import VaeTrainer

            self.vae = VaeTrainer(params, dim=self.train_images.shape[1])

    def draw_real(self, n: int, rng: np.random.Generator) -> np.ndarray:
        pool = len(self.train_images)
        picks = np.stack([rng.choice(pool, n, replace=n > pool) for _ in range(self.chains)])
        return self.train_images[picks]

    def fit(self, records: np.ndarray, rng: np.random.Generator, start):
        if self.params.kind == "vae":
            return self.vae.fit(records, rng, start)
        fitted = []
        for chain, points in enumerate(records):
            centre, axes = _pca(points, self.params.pca_components)
            carried = None if start is None else _carry_mixture(start, chain, centre, axes)
            seed = int(rng.integers(0, 2**31 - 1))
            mixture = fit_mixture(
                (points - centre) @ axes.T, self.params.gmm_components, carried, 0, seed, self.params
            )
            fitted.append((centre, axes, mixture))
        return PcaMixtureModel(
            np.stack([c for c, _, _ in fitted]), np.stack([a for _, a, _ in fitted]),
            MixtureModel(*(np.stack([getattr(m, name) for _, _, m in fitted]) for name in (
                "weights_", "means_", "covariances_"))),
        )  # fmt: skip

    def sample(self, model, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.params.kind == "vae":
            return self.vae.sample(model, n, rng)
        coordinates = sample_mixture(model.mixture, n, self.params.sampling_bias, rng)  # (chains, n, k)
        pixels = np.einsum("cnk,ckd->cnd", coordinates, model.axes) + model.centre[:, None, :]
        return np.clip(pixels, 0.0, 1.0)

    def measure(self, model, rng: np.random.Generator) -> dict[str, float]:
        samples = self.sample(model, self.params.n_eval, rng)
        rows = [self._chain_metrics(chain_samples) for chain_samples in samples]
        return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}

    def _chain_metrics(self, samples: np.ndarray) -> dict[str, float]:
        """Frechet, PRDC, pixel variance and digit classes of one chain's (n, 64) samples."""
        covariance = np.cov(samples.T)
        labels = self.labeller.predict(samples)
        per_class = np.bincount(labels, minlength=N_CLASSES)
        expected = len(samples) / N_CLASSES
        return {
            "frechet": frechet_distance(
                self.reference.mean(0), np.cov(self.reference.T), samples.mean(0), covariance
            ),
            **prdc(self.reference, samples, k=self.params.prdc_k),
            "pixel_variance": float(np.trace(covariance)),
            "classes_covered": float((per_class >= self.params.class_min_share * expected).sum()),
        }


def build(params: Params, n_train: int) -> DigitsFamily:
    return DigitsFamily(params, n_train)
