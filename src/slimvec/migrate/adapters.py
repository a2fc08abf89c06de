"""Maps from a new model's vector space into a collection's current one (query adapters for `slimvec migrate`).

Each adapter is fitted on pairs (x_new, y_old) of the same chunks encoded by both models and maps a new-model
query vector into the old space, where the stored vectors are; the result is normalised to unit length there.
Registered by name in `slimvec.registry` under kind "adapter":

- `procrustes`: orthogonal (or, for different dimensions, semi-orthogonal) W from the SVD of X^T Y
  (Schönemann 1966, "A generalized solution of the orthogonal Procrustes problem");
- `procrustes-ridge`: least squares W shrunk toward the Procrustes rotation (a ridge penalty ||W - W_p||^2, Hoerl &
  Kennard 1970, centred on the orthogonal solution instead of zero): between plain least squares and Procrustes,
  the penalty chosen per migration from a grid by held-out agreement (`choose`);
- `affine`: least squares W, b with a small ridge (Hoerl & Kennard 1970);
- `residual-mlp`: the affine map plus a low-rank ReLU residual, U relu(V^T x + c), fitted by Adam on the
  squared error in numpy (the shape of Drift-Adapter, Vejendla 2025, arXiv:2509.23471).

All arrays are float32 (n, dim); an adapter's parameters are a dict of arrays saved as one .npz.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimvec import registry
from slimvec.errors import ConfigError


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


class Adapter:
    """A fitted map new space -> old space. Subclasses set `name` and implement `_fit` and `_apply`."""

    name: ClassVar[str] = ""

    def __init__(self, params: dict[str, np.ndarray] | None = None) -> None:
        self.params = params or {}

    def fit(self, x_new: np.ndarray, y_old: np.ndarray, seed: int = 0) -> "Adapter":
        """Fit on paired rows: x_new float32 (n, d_new), y_old float32 (n, d_old). Returns self."""
        x, y = np.asarray(x_new, np.float64), np.asarray(y_old, np.float64)
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) < 2:
            raise ConfigError(f"adapter {self.name}: need paired 2-d arrays with at least 2 rows, got {x.shape} and {y.shape}")
        self.params = self._fit(x, y, seed)
        return self

    def apply(self, x_new: np.ndarray) -> np.ndarray:
        """Map new-model vectors (n, d_new) to unit vectors of the old space, float32 (n, d_old)."""
        return normalise(self._apply(np.asarray(x_new, np.float32)))

    def _fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _apply(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def save(self, path: Path) -> None:
        """Write the parameters (and the adapter's name) to `path` as an uncompressed .npz."""
        with open(path, "wb") as f:
            np.savez(f, __name__=np.array(self.name), **self.params)


class Procrustes(Adapter):
    """x -> x W with W^T W = I (or W W^T = I when the new space is larger): rotation, no scaling."""

    name = "procrustes"

    def _fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        return {"W": _procrustes_map(x, y).astype(np.float32)}

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return x @ self.params["W"]


def _procrustes_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The orthogonal (semi-orthogonal) W minimising ||X W - Y||, float64 (dx, dy): U V^T of the SVD of X^T Y."""
    u, _, vt = np.linalg.svd(x.T @ y, full_matrices=False)  # (dx, r), (r, dy), r = min(dx, dy)
    return u @ vt


def _fit_sharing(adapter: Adapter, x: np.ndarray, y: np.ndarray, seed: int, shared: dict[str, np.ndarray]) -> Adapter:
    """adapter.fit(x, y, seed), where Procrustes and every ProcrustesRidge reuse one SVD (`shared`, filled on
    first use): on a busy 2-core machine each 384 x 384 SVD took seconds of wall time."""
    if not isinstance(adapter, (Procrustes, ProcrustesRidge)):
        return adapter.fit(x, y, seed)
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if "wp" not in shared:
        shared["wp"] = _procrustes_map(x64, y64)
    wp = shared["wp"]
    adapter.params = adapter._shrunk(x64, y64, wp) if isinstance(adapter, ProcrustesRidge) else {"W": wp.astype(np.float32)}
    return adapter


class ProcrustesRidge(Adapter):
    """x -> x W, W = argmin ||X W - Y||^2 + lam ||W - W_p||^2 = (X^T X + lam I)^-1 (X^T Y + lam W_p), where W_p is
    the Procrustes map and lam = `ridge` x the mean squared norm of x: ridge -> 0 is least squares without a bias,
    ridge -> inf is Procrustes. No bias: a bias adds the same vector to every mapped query, a query-independent
    preference for documents near the old space's mean, which lowered nDCG@10 on every pair measured."""

    name = "procrustes-ridge"
    GRID: ClassVar[tuple[float, ...]] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # the ridges `choose` tries

    def __init__(self, params: dict[str, np.ndarray] | None = None, ridge: float = 1.0) -> None:
        super().__init__(params)
        self.ridge = float(self.params["ridge"]) if "ridge" in self.params else float(ridge)

    def _fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        return self._shrunk(x, y, _procrustes_map(x, y))

    def _shrunk(self, x: np.ndarray, y: np.ndarray, wp: np.ndarray) -> dict[str, np.ndarray]:
        lam = self.ridge * float((x * x).sum()) / len(x)
        w = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y + lam * wp)
        return {"W": w.astype(np.float32), "ridge": np.array(self.ridge)}

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return x @ self.params["W"]


class Affine(Adapter):
    """x -> x W + b, least squares with a ridge of `ridge` x the mean squared norm of x (bias not penalised)."""

    name = "affine"
    ridge: ClassVar[float] = 1e-3  # a penalty chosen by held-out cosine lowered held-out recall@10 (BENCHMARKS.md)

    def _fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        w, b = _ridge(x, y, self.ridge)
        return {"W": w.astype(np.float32), "b": b.astype(np.float32)}

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return x @ self.params["W"] + self.params["b"]


class ResidualMLP(Adapter):
    """x -> x W + b + relu(x V + c) U with a `rank`-wide hidden layer: affine first, then the residual by Adam."""

    name = "residual-mlp"
    rank: ClassVar[int] = 32
    epochs: ClassVar[int] = 100
    lr: ClassVar[float] = 3e-3
    decay: ClassVar[float] = 1e-4

    def _fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        # The residual is trained on 90% of the pairs and kept, per epoch, at its best squared error on the
        # other 10% (early stopping); when no epoch beats the affine map alone there, U stays zero.
        w, b = _ridge(x, y, Affine.ridge)
        r = (y - x @ w - b).astype(np.float32)
        x32 = x.astype(np.float32)
        rng = np.random.default_rng(seed)
        val = np.zeros(len(x32), bool)
        val[rng.permutation(len(x32))[: max(1, len(x32) // 10)]] = True
        xt, rt, xv, rv = x32[~val], r[~val], x32[val], r[val]
        dx, dy, h = x.shape[1], y.shape[1], self.rank
        p = {"V": (rng.standard_normal((dx, h)) * np.sqrt(2.0 / dx)).astype(np.float32),
             "c": np.zeros(h, np.float32), "U": np.zeros((h, dy), np.float32)}
        best, kept = float((rv * rv).sum()), {k: v.copy() for k, v in p.items()}
        m = {k: np.zeros_like(v) for k, v in p.items()}
        s = {k: np.zeros_like(v) for k, v in p.items()}
        n = len(xt)
        for t in range(1, self.epochs + 1):  # full batch: n <= a few thousand pairs
            pre = xt @ p["V"] + p["c"]
            hid = np.maximum(pre, 0)
            err = hid @ p["U"] - rt
            g_out = 2.0 * err / n
            g_hid = (g_out @ p["U"].T) * (pre > 0)
            grads = {"U": hid.T @ g_out + self.decay * p["U"], "V": xt.T @ g_hid + self.decay * p["V"],
                     "c": g_hid.sum(axis=0)}
            for k, g in grads.items():  # Adam (Kingma & Ba 2015)
                m[k] = 0.9 * m[k] + 0.1 * g
                s[k] = 0.999 * s[k] + 0.001 * g * g
                p[k] -= self.lr * (m[k] / (1 - 0.9**t)) / (np.sqrt(s[k] / (1 - 0.999**t)) + 1e-8)
            e = np.maximum(xv @ p["V"] + p["c"], 0) @ p["U"] - rv
            if float((e * e).sum()) < best:
                best, kept = float((e * e).sum()), {k: v.copy() for k, v in p.items()}
        p = kept
        return {"W": w.astype(np.float32), "b": b.astype(np.float32), **p}

    def _apply(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        return x @ p["W"] + p["b"] + np.maximum(x @ p["V"] + p["c"], 0) @ p["U"]


def _ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge least squares on centred data: (W (dx, dy), b (dy,)), float64."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mx, y - my
    lam = ridge * float((xc * xc).sum()) / len(x)
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
    return w, my - mx @ w


def load_adapter(path: Path) -> Adapter:
    """The adapter saved at `path` (see Adapter.save). Raises ConfigError naming the file when it is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            name = str(z["__name__"])
            params = {k: z[k] for k in z.files if k != "__name__"}
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{path}: not a readable adapter file ({e})") from None
    return registry.load("adapter", name)(params)  # type: ignore[no-any-return]


@dataclass
class Agreement:
    """How well an adapter's mapped vectors agree with the true old ones on held-out pairs.

    cosine: mean cosine of mapped and true old vector; recall_at_10: mean overlap of the 10 nearest old
    vectors (among the sample's, the row itself left out) of the mapped and of the true vector (the old model's
    neighbours); recall_new_at_10: the same overlap with the 10 nearest in the NEW space (the new model's own
    neighbours of the row, which search reaches once the migration ends); fit_s: seconds; ms_per_query: median
    cost of mapping one query; extra: the candidate's hyperparameters (procrustes-ridge: "ridge")."""

    name: str
    cosine: float
    recall_at_10: float
    fit_s: float
    ms_per_query: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    recall_new_at_10: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"adapter": self.name, **self.extra, "cosine": round(self.cosine, 4),
                "recall_at_10": round(self.recall_at_10, 4), "recall_new_at_10": round(self.recall_new_at_10, 4),
                "fit_s": round(self.fit_s, 3), "ms_per_query": round(self.ms_per_query, 4)}


# Refusal threshold on held-out agreement (BENCHMARKS.md, "Migration between models", session 7): on full SciFact
# and NFCorpus the chosen adapters of the three measured pairs scored recall_new@10 0.43-0.62 (2,000 and 5,000
# pairs); unrelated (random) spaces score about k / n. Below it, search through the adapter would agree with
# neither model.
MIN_RECALL = 0.3


def agreement(adapter: Adapter, x_new: np.ndarray, y_old: np.ndarray, held: np.ndarray, fit_s: float) -> Agreement:
    """Score `adapter` on the rows `held` of the pairs (x_new, y_old): see Agreement."""
    mapped = adapter.apply(x_new[held])
    truth = normalise(y_old[held])
    cos = float(np.mean(np.sum(mapped * truth, axis=1)))
    base, base_new = normalise(y_old), normalise(x_new)
    recall_old = _overlap(mapped, base, truth @ base.T, held)
    recall_new = _overlap(mapped, base, base_new[held] @ base_new.T, held)
    extra = {"ridge": adapter.ridge} if isinstance(adapter, ProcrustesRidge) else {}
    return Agreement(adapter.name, cos, recall_old, fit_s, ms_per_query(adapter, x_new[held[:1]]), extra, recall_new)


def _overlap(mapped: np.ndarray, base: np.ndarray, truth_scores: np.ndarray, held: np.ndarray) -> float:
    """Mean share of each held row's 10 nearest `base` rows by the mapped query (mapped @ base.T) that are also
    its 10 nearest by `truth_scores` (held, n); the row itself is no neighbour."""
    k = min(10, len(base) - 1)
    overlaps: list[float] = []
    for s in range(0, len(held), 512):
        part = held[s : s + 512]
        a, t = mapped[s : s + 512] @ base.T, truth_scores[s : s + 512].copy()
        rows = np.arange(len(part))
        a[rows, part] = t[rows, part] = -np.inf
        ta = np.argpartition(-a, k - 1, axis=1)[:, :k]
        tt = np.argpartition(-t, k - 1, axis=1)[:, :k]
        overlaps += [len(set(p) & set(q)) / k for p, q in zip(ta.tolist(), tt.tolist())]
    return float(np.mean(overlaps))


def ms_per_query(adapter: Adapter, one: np.ndarray, calls: int = 200) -> float:
    """Median wall milliseconds of `adapter.apply` on one query row (1, d_new), after 20 untimed calls.

    The median of single calls, as a query pays it: a mean over a loop right after fitting also counted the
    first calls' cold caches and, on a busy machine, whichever calls the scheduler preempted."""
    for _ in range(20):
        adapter.apply(one)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        adapter.apply(one)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


# "auto": affine lost to these on all three measured pairs (session 7); residual-mlp, affine plus a residual, was
# never chosen over affine in sessions 4-5 and took most of the fitting time.
AUTO = ("procrustes", "procrustes-ridge")


def candidates(names: list[str]) -> list[Adapter]:
    """Unfitted adapters for `names` (registry kind "adapter"): "procrustes-ridge" stands for one per ridge of
    ProcrustesRidge.GRID. Raises ConfigError for an unknown name."""
    out: list[Adapter] = []
    for name in names:
        cls = registry.load("adapter", name)
        out += [cls(ridge=r) for r in cls.GRID] if cls is ProcrustesRidge else [cls()]
    return out


def _fresh(adapter: Adapter) -> Adapter:
    return ProcrustesRidge(ridge=adapter.ridge) if isinstance(adapter, ProcrustesRidge) else type(adapter)()


def choose(x_new: np.ndarray, y_old: np.ndarray, names: list[str], seed: int = 0,
           held_fraction: float = 0.2) -> tuple[Adapter, list[Agreement]]:
    """Fit each candidate of `names` (see `candidates`) on (1 - held_fraction) of the pairs, score it on the rest
    (Agreement), refit the best on all pairs and return it with every candidate's scores.

    The best has the highest recall_new@10 (then cosine): the mapped held-out chunk finds, among the old vectors,
    the neighbours the new model finds for it. Agreement with the old model's neighbours (recall@10) picked the
    affine map on full SciFact where Procrustes served 13-41 points more of the old model's nDCG@10 (BENCHMARKS.md
    "Session 7"); the new model is the one the migration moves to. Raises ConfigError when even the best is below
    MIN_RECALL (one line, with its scores)."""
    n = len(x_new)
    if n < 20:
        raise ConfigError(f"adapter fitting needs at least 20 sample pairs, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(n * held_fraction)))
    held, train = np.sort(order[:cut]), order[cut:]
    scores, fitted = [], []
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the products here are small (d <= 1,024), and on a busy machine a second thread mostly
    # waits (a 384 x 384 SVD: seconds of wall time for a fraction of a second of CPU).
    with threadpool_limits(limits=1, user_api="blas"):
        shared: dict[str, np.ndarray] = {}
        for cand in candidates(names):
            t0 = time.perf_counter()
            a = _fit_sharing(cand, x_new[train], y_old[train], seed, shared)
            scores.append(agreement(a, x_new, y_old, held, time.perf_counter() - t0))
            fitted.append(a)
    i = max(range(len(scores)), key=lambda j: (round(scores[j].recall_new_at_10, 3), scores[j].cosine))
    best = scores[i]
    if best.recall_new_at_10 < MIN_RECALL:
        raise ConfigError(f"no adapter agrees well enough with the new model: best {best.name} finds "
                          f"{best.recall_new_at_10:.3f} of the new model's 10 nearest sample chunks on held-out pairs "
                          f"(needs {MIN_RECALL}; old model's: {best.recall_at_10:.3f}, cosine {best.cosine:.3f}); "
                          "nothing was changed")
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        final = _fresh(fitted[i]).fit(x_new, y_old, seed)
    best.fit_s = time.perf_counter() - t0
    return final, scores


def score_map(adapter: Adapter, x_new: np.ndarray, y_old: np.ndarray, queries: np.ndarray, depth: int = 20,
              old_queries: bool = False) -> tuple[float, float]:
    """(a, b) of the least-squares line s_adapted ~ a * s_native + b, so that a document already re-embedded
    (scored natively, new query . new vector) ranks on the scale of the ones still scored through the adapter
    (mapped query . old vector). Fitted on the sample: `queries` rows play the queries, every sample row the
    documents, over the union of each query's top `depth` by either score (the head a ranking is made of).
    old_queries: the old part is scored with the old model's own query (its row of y_old), not the adapter."""
    xn, yo = normalise(x_new), normalise(y_old)
    native = xn[queries] @ xn.T
    adapted = (yo[queries] if old_queries else adapter.apply(x_new[queries])) @ yo.T
    rows = np.arange(len(queries))
    native[rows, queries] = adapted[rows, queries] = np.nan  # a document is not its own query
    d = min(depth, xn.shape[0] - 1)
    pick = np.zeros_like(native, dtype=bool)
    for s in (np.nan_to_num(native, nan=-np.inf), np.nan_to_num(adapted, nan=-np.inf)):
        top = np.argpartition(-s, d - 1, axis=1)[:, :d]
        pick[rows[:, None], top] = True
    a_s, n_s = adapted[pick], native[pick]
    a, b = np.polyfit(n_s.astype(np.float64), a_s.astype(np.float64), 1)
    return float(a), float(b)
