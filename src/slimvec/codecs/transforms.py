"""Transforms placed before a quantizer: Matryoshka truncation, PCA, random rotation.

Each maps documents with `forward`, and queries with `query`, the adjoint of `backward`, so that a
chain's score `quantizer.score(query(q), codes)` equals `q @ decode(codes).T` exactly.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from slimvec.codecs.base import CodecState, as_f32, check_fitted, spec_int


@lru_cache(maxsize=8)
def _orthogonal(dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    out = (q * np.sign(np.diag(r))).astype(np.float32)
    out.flags.writeable = False  # shared between callers through the cache
    return out


def random_orthogonal(dim: int, seed: int = 0) -> np.ndarray:
    """A Haar-random (dim, dim) orthogonal matrix (QR of a Gaussian matrix with the sign fix), read-only."""
    return _orthogonal(dim, seed)


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows left at zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class _Linear:
    """forward(x) = [normalise](x @ F.T), backward(y) = y @ B, query(q) = q @ B.T."""

    name = ""

    def __init__(self, normalize: bool = True) -> None:
        self.normalize = normalize
        self.fwd: np.ndarray | None = None  # F, (d_out, d_in)
        self.bwd: np.ndarray | None = None  # B, (d_out, d_in)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Documents into the output space, re-normalised if configured."""
        check_fitted(self.fwd is not None, self.name)
        y = as_f32(x) @ self.fwd.T
        return normalize_rows(y) if self.normalize else y

    def backward(self, y: np.ndarray) -> np.ndarray:
        """Back to the input space (directions only: a re-normalised vector keeps unit norm)."""
        check_fitted(self.bwd is not None, self.name)
        return as_f32(y) @ self.bwd

    def query(self, q: np.ndarray) -> np.ndarray:
        """Queries into the output space, the adjoint of backward."""
        check_fitted(self.bwd is not None, self.name)
        return as_f32(q) @ self.bwd.T

    def _arrays(self) -> dict[str, np.ndarray]:
        check_fitted(self.fwd is not None, self.name)
        # Orthonormal maps (rotation, unwhitened PCA) share one matrix: store and count it once.
        same = self.bwd is self.fwd
        return {"forward": self.fwd} if same else {"forward": self.fwd, "backward": self.bwd}

    def _restore(self, state: CodecState) -> None:
        self.fwd = np.asarray(state["arrays"]["forward"], np.float32)
        self.bwd = (
            np.asarray(state["arrays"]["backward"], np.float32) if "backward" in state["arrays"] else self.fwd
        )


class Truncate:
    """Matryoshka truncation: keep the first `dim` coordinates, re-normalised."""

    def __init__(self, dim: int, normalize: bool = True) -> None:
        if dim < 1:
            raise ValueError("truncate dimension must be >= 1")
        self.dim, self.normalize = dim, normalize
        self.dim_in: int | None = None
        self.name = f"truncate:{dim}"

    @classmethod
    def from_spec(cls, arg: str | None) -> Truncate:
        if not arg:
            raise ValueError("truncate needs a dimension, e.g. truncate:128")
        return cls(spec_int(arg, "truncate dimension"))

    def check_dim(self, dim_in: int) -> None:
        """ValueError when `dim_in`-d vectors have fewer coordinates than are kept."""
        if self.dim > dim_in:
            raise ValueError(f"cannot truncate {dim_in}-d vectors to {self.dim}")

    def fit(self, sample: np.ndarray) -> None:
        """Record the input dimension (needed to pad back)."""
        self.check_dim(int(np.shape(sample)[1]))
        self.dim_in = int(np.shape(sample)[1])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """First `dim` coordinates, re-normalised."""
        y = np.ascontiguousarray(as_f32(x)[:, : self.dim])
        return normalize_rows(y) if self.normalize else y

    def backward(self, y: np.ndarray) -> np.ndarray:
        """Zero-padded back to the input dimension."""
        check_fitted(self.dim_in is not None, self.name)
        y = as_f32(y)
        return np.pad(y, ((0, 0), (0, self.dim_in - y.shape[1])))

    def query(self, q: np.ndarray) -> np.ndarray:
        """First `dim` coordinates (not re-normalised: a per-query factor never changes a ranking)."""
        return np.ascontiguousarray(as_f32(q)[:, : self.dim])

    def out_dim(self, dim_in: int) -> int:
        """The kept dimension."""
        return self.dim

    def state(self) -> CodecState:
        check_fitted(self.dim_in is not None, self.name)
        return {
            "codec": "truncate",
            "params": {"dim": self.dim, "dim_in": self.dim_in, "normalize": self.normalize},
            "arrays": {},
        }

    @classmethod
    def from_state(cls, state: CodecState) -> Truncate:
        p = state["params"]
        self = cls(p["dim"], p["normalize"])
        self.dim_in = p["dim_in"]
        return self


class PCA(_Linear):
    """Projection on the top `dim` principal axes of the sample, output re-normalised.

    The axes come from the uncentred second moment E[x x^T]: that basis gives the best rank-`dim`
    approximation of inner products between vectors like the sample, which is what retrieval scores.
    whiten=True scales axes to unit variance on the document side (queries get the inverse scale, so
    scores stay unbiased); it helps only float quantizers with one global scale.
    """

    def __init__(self, dim: int, whiten: bool = False, normalize: bool = True) -> None:
        super().__init__(normalize and not whiten)
        if dim < 1:
            raise ValueError("pca dimension must be >= 1")
        self.dim, self.whiten = dim, whiten
        self.name = f"pca:{dim}" + (":whiten" if whiten else "")

    @classmethod
    def from_spec(cls, arg: str | None) -> PCA:
        if not arg:
            raise ValueError("pca needs a dimension, e.g. pca:192")
        dim, _, opt = arg.partition(":")
        if opt not in ("", "whiten"):
            raise ValueError(f"unknown pca option {opt!r}")
        return cls(spec_int(dim, "pca dimension"), whiten=opt == "whiten")

    def out_dim(self, dim_in: int) -> int:
        """The kept dimension (known before fitting, so a chain can be checked against a model's dimension)."""
        return self.dim

    def check_dim(self, dim_in: int) -> None:
        """ValueError when `dim_in`-d vectors have fewer axes than are kept."""
        if self.dim > dim_in:
            raise ValueError(f"cannot project {dim_in}-d vectors to {self.dim}")

    def fit(self, sample: np.ndarray) -> None:
        """Top right singular vectors of the sample."""
        x = as_f32(sample)
        self.check_dim(x.shape[1])
        # Eigen-decomposition of the d x d Gram matrix: cheaper than an SVD of a tall sample.
        vals, vecs = np.linalg.eigh((x.T.astype(np.float64) @ x) / max(1, len(x)))
        order = np.argsort(vals)[::-1][: self.dim]
        axes = vecs[:, order].T.astype(np.float32)
        if self.whiten:
            sd = np.sqrt(np.maximum(vals[order], 1e-12)).astype(np.float32)[:, None]
            self.fwd, self.bwd = axes / sd, axes * sd
        else:
            self.fwd, self.bwd = axes, axes

    def state(self) -> CodecState:
        return {
            "codec": "pca",
            "params": {"dim": self.dim, "whiten": self.whiten, "normalize": self.normalize},
            "arrays": self._arrays(),
        }

    @classmethod
    def from_state(cls, state: CodecState) -> PCA:
        p = state["params"]
        self = cls(p["dim"], p["whiten"], p["normalize"])
        self._restore(state)
        return self


class Rotation(_Linear):
    """A seeded random orthogonal rotation: spreads variance evenly before sign or scalar codes."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(normalize=False)
        self.seed = seed
        self.name = "rotate" if seed == 0 else f"rotate:{seed}"

    @classmethod
    def from_spec(cls, arg: str | None) -> Rotation:
        return cls(spec_int(arg, "rotate seed", 0, 2**32 - 1) if arg else 0)  # numpy seeds are >= 0

    def out_dim(self, dim_in: int) -> int:
        """A rotation keeps the dimension."""
        return dim_in

    def fit(self, sample: np.ndarray) -> None:
        """Draw the rotation for the sample's dimension."""
        self.fwd = self.bwd = random_orthogonal(int(np.shape(sample)[1]), self.seed)

    def state(self) -> CodecState:
        return {"codec": "rotate", "params": {"seed": self.seed}, "arrays": self._arrays()}

    @classmethod
    def from_state(cls, state: CodecState) -> Rotation:
        self = cls(state["params"]["seed"])
        self._restore(state)
        return self
