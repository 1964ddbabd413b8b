from __future__ import annotations

from typing import Any, Self

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn

from services.scorer.detectors.base import as_2d


class _Network(nn.Module):
    def __init__(self, n_features: int, bottleneck: int):
        super().__init__()
        hidden = max(2 * bottleneck, min(64, 2 * n_features))
        self.encoder = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, bottleneck)
        )
        self.decoder = nn.Sequential(
            nn.ReLU(), nn.Linear(bottleneck, hidden), nn.ReLU(), nn.Linear(hidden, n_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.decoder(self.encoder(x))
        return out


class AutoencoderDetector:
    """A small PyTorch autoencoder; a row's anomaly score is its reconstruction error.

    Training is seeded and stops early when the loss on a held-out validation split stops
    improving; the best weights are kept.
    """

    name = "autoencoder"

    def __init__(
        self,
        seed: int = 0,
        *,
        max_epochs: int = 60,
        patience: int = 5,
        batch_size: int = 256,
        validation_fraction: float = 0.15,
        learning_rate: float = 3e-3,
    ):
        self.seed = seed
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.learning_rate = learning_rate
        self._scaler = StandardScaler()
        self._network: _Network | None = None
        self.history: dict[str, Any] = {}

    def fit(self, X: np.ndarray) -> Self:
        X = as_2d(X)
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        Xs = np.clip(self._scaler.fit_transform(X), -1e3, 1e3).astype(np.float32)
        order = rng.permutation(len(Xs))
        n_val = max(1, int(len(Xs) * self.validation_fraction))
        train = torch.from_numpy(Xs[order[n_val:]])
        val = torch.from_numpy(Xs[order[:n_val]])
        network = _Network(X.shape[1], bottleneck=max(2, X.shape[1] // 4))
        optimizer = torch.optim.Adam(network.parameters(), lr=self.learning_rate)
        loss_fn = nn.MSELoss()
        best, best_state, stale, losses = float("inf"), None, 0, []
        generator = torch.Generator().manual_seed(self.seed)
        for _epoch in range(self.max_epochs):
            network.train()
            for batch in torch.randperm(len(train), generator=generator).split(self.batch_size):
                optimizer.zero_grad()
                loss = loss_fn(network(train[batch]), train[batch])
                loss.backward()
                optimizer.step()
            network.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(network(val), val))
            losses.append(val_loss)
            if val_loss < best - 1e-5:
                best, stale = val_loss, 0
                best_state = {k: v.clone() for k, v in network.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            network.load_state_dict(best_state)
        network.eval()
        self._network = network
        self.history = {
            "epochs": len(losses),
            "best_validation_loss": best,
            "validation_loss": losses,
        }
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        if self._network is None:
            raise RuntimeError("fit the detector first")
        Xs = np.clip(self._scaler.transform(as_2d(X)), -1e3, 1e3).astype(np.float32)
        with torch.no_grad():
            tensor = torch.from_numpy(Xs)
            errors = ((self._network(tensor) - tensor) ** 2).mean(dim=1)
        return np.asarray(errors.numpy(), dtype=np.float64)

    def learn_one(self, x: np.ndarray) -> None:
        """Batch model: learns only in ``fit``."""
