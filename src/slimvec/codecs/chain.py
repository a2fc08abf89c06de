"""A chain: transforms first, then one quantizer; e.g. "pca:192 > float8"."""

from __future__ import annotations

from typing import Any

import numpy as np

from slimvec.codecs.base import Codec, CodecState, Transform, as_f32, check_dim, codec_from_state
from slimvec.codecs.floats import Float32Codec
from slimvec.errors import ConfigError


class Chain:
    """Documents go through every transform and the quantizer; queries through the transforms' query maps."""

    def __init__(self, stages: list[Any]) -> None:
        *transforms, last = stages
        if not isinstance(last, Transform):
            quantizer = last
        else:  # a spec of transforms only ("pca:192") stores their float32 output
            transforms, quantizer = list(stages), Float32Codec()
        if any(not isinstance(t, Transform) for t in transforms) or isinstance(quantizer, Transform):
            raise ConfigError("a codec chain is transforms first, then exactly one quantizer last")
        self.transforms: list[Transform] = list(transforms)
        self.quantizer: Codec = quantizer
        self.name = " > ".join([t.name for t in self.transforms] + [quantizer.name])

    @classmethod
    def from_spec(cls, arg: str | None) -> Chain:
        raise ValueError("build chains with 'a > b' specs")

    def fit(self, sample: np.ndarray) -> None:
        """Fit each stage on the previous stages' output."""
        x = as_f32(sample)
        for t in self.transforms:
            t.fit(x)
            x = t.forward(x)
        self.quantizer.fit(x)

    def transform_documents(self, x: np.ndarray) -> np.ndarray:
        """Documents through every transform (the quantizer's input)."""
        x = as_f32(x)
        for t in self.transforms:
            x = t.forward(x)
        return x

    def transform_queries(self, q: np.ndarray) -> np.ndarray:
        """Queries through every transform's query map."""
        q = as_f32(q)
        for t in self.transforms:
            q = t.query(q)
        return q

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Quantizer codes of the transformed vectors."""
        return self.quantizer.encode(self.transform_documents(x))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Quantizer decode, then each transform's backward map in reverse order."""
        y = self.quantizer.decode(codes)
        for t in reversed(self.transforms):
            y = t.backward(y)
        return y

    def score(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """The quantizer's scores for the mapped queries."""
        return self.quantizer.score(self.transform_queries(queries), codes)

    def check_dim(self, dim_in: int) -> None:
        """ValueError when a stage cannot take the dimension the stages before it give (see `check_dim`)."""
        for stage in self.transforms:
            check_dim(stage, dim_in)
            dim_in = stage.out_dim(dim_in)
        check_dim(self.quantizer, dim_in)

    def out_dim(self, dim_in: int) -> int:
        """Dimension the quantizer sees."""
        for t in self.transforms:
            dim_in = t.out_dim(dim_in)
        return dim_in

    def bytes_per_vector(self, dim_in: int) -> int:
        """The quantizer's bytes at the reduced dimension."""
        return self.quantizer.bytes_per_vector(self.out_dim(dim_in))

    def state(self) -> CodecState:
        stages, arrays = [], {}
        for i, stage in enumerate([*self.transforms, self.quantizer]):
            st = stage.state()
            stages.append({"codec": st["codec"], "params": st["params"], "arrays": sorted(st["arrays"])})
            arrays.update({f"{i}.{k}": v for k, v in st["arrays"].items()})
        return {"codec": "chain", "params": {"stages": stages}, "arrays": arrays}

    @classmethod
    def from_state(cls, state: CodecState) -> Chain:
        stages = []
        for i, st in enumerate(state["params"]["stages"]):
            arrays = {k: state["arrays"][f"{i}.{k}"] for k in st["arrays"]}
            stages.append(codec_from_state({"codec": st["codec"], "params": st["params"], "arrays": arrays}))
        return cls(stages)
