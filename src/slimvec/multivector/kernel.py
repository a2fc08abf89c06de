"""Exact MaxSim of one query over selected documents of a float16 (or float32) token file, without first
copying their tokens into a float32 array.

Why: a `multivector` search reranks ~100 candidates of ~240 float16 tokens each. Gathering them into float32
(numpy's float16 -> float32 cast is a scalar loop: ~20 ms CPU for 24k x 384 values on the 2-core development
box) cost more than the query encoding and the products together. ONNX Runtime (already a core dependency:
the query encoders run on it) casts with its vectorised MLAS conversion and multiplies with MLAS SGEMM in one
call: a graph `Cast(float16 -> float32) -> MatMul` over each worker's block of candidate rows. The products are
float32 products of the exactly widened float16 values (float16 -> float32 is exact; no graph optimisation is
enabled, so nothing is rewritten to half precision): the scores equal numpy's float32 MaxSim up to the
summation order inside SGEMM (BENCHMARKS.md "Unpooled multivector latency" checks the top 10 on every query).

The graph is written here as raw ONNX protobuf (about 130 bytes) so the query path needs neither the `onnx`
package nor torch; tests/test_multivector_kernel.py checks it against `onnx.helper` and onnx's checker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

# ONNX TensorProto element types and the opset the graph uses.
_FLOAT, _FLOAT16, _OPSET, _IR_VERSION = 1, 10, 13, 8
_local = threading.local()  # per-thread float16/float32 scratch rows, reused across queries
_SLICE_ROWS = 4096  # token rows per products call (1,024-8,192 measured alike; one call per 36k rows: 1.4x slower)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: bytes | str | int) -> bytes:
    """One protobuf field: an int as a varint (wire type 0), bytes/str length-delimited (wire type 2)."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor_info(name: str, elem_type: int, dims: tuple[str, str]) -> bytes:
    """ValueInfoProto of a 2-D tensor with symbolic dimensions."""
    shape = b"".join(_field(1, _field(2, d)) for d in dims)  # TensorShapeProto.dim{dim_param}
    return _field(1, name) + _field(2, _field(1, _field(1, elem_type) + _field(2, shape)))


def model_bytes(dtype: np.dtype | type) -> bytes:
    """Serialized ONNX model: inputs x (n, d) of `dtype` (float16 or float32), q (d, m) float32; output
    s = float32(x) @ q, (n, m) float32. Raises ValueError for another dtype."""
    dt = np.dtype(dtype)
    if dt not in (np.float16, np.float32):
        raise ValueError(f"MaxSim kernel takes float16 or float32 tokens, got {dt}")
    nodes = b""
    x = "x"
    if dt == np.float16:
        cast_to = _field(1, "to") + _field(3, _FLOAT) + _field(20, 2)  # AttributeProto{name, i, type=INT}
        nodes += _field(1, _field(1, "x") + _field(2, "xf") + _field(3, "widen") + _field(4, "Cast")
                        + _field(5, cast_to))
        x = "xf"
    nodes += _field(1, _field(1, x) + _field(1, "q") + _field(2, "s") + _field(3, "products") + _field(4, "MatMul"))
    graph = (nodes + _field(2, "maxsim_products")
             + _field(11, _tensor_info("x", _FLOAT16 if dt == np.float16 else _FLOAT, ("n", "d")))
             + _field(11, _tensor_info("q", _FLOAT, ("d", "m")))
             + _field(12, _tensor_info("s", _FLOAT, ("n", "m"))))
    return _field(1, _IR_VERSION) + _field(7, graph) + _field(8, _field(1, "") + _field(2, _OPSET))


@cache
def _session(dtype: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # parallel over candidate blocks by maxsim_rows' own threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # run the graph as written
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes(np.dtype(dtype)), sess_options=opts, providers=["CPUExecutionProvider"])


def _scratch(n: int, width: int, dtype: np.dtype) -> np.ndarray:
    """This thread's reusable (n, width) buffer of `dtype` (grown when too small): no fresh pages per query."""
    key = (width, dtype.str)
    buf = getattr(_local, "bufs", {}).get(key)
    if buf is None or len(buf) < n:
        buf = np.empty((max(n, 1024), width), dtype)
        _local.__dict__.setdefault("bufs", {})[key] = buf
    return buf[:n]


def products(block: np.ndarray, q_t: np.ndarray) -> np.ndarray:
    """(n, m) float32 = float32(block) @ q_t for a contiguous float16/float32 block (n, d) and q_t (d, m) float32."""
    return _session(block.dtype.str).run(None, {"x": block, "q": q_t})[0]


def maxsim_part(q_t: np.ndarray, tokens: np.ndarray, starts: np.ndarray, lens: np.ndarray,
                decode_into: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """MaxSim (float32, one per document) of documents whose rows are tokens[starts[i] : starts[i] + lens[i]]
    (every lens[i] > 0), against the query q_t (d, m) float32: their rows are copied into this thread's
    scratch block (same dtype, no cast), then `products` over slices of _SLICE_ROWS rows and a segment max.

    decode_into: for token codes (uint8 rows), a codec's `decode_into(codes, out)` that writes float32
    vectors into a (>= n, d) buffer; each slice of copied code rows is decoded into this thread's float32
    scratch block and multiplied (ColBERTv2 / PLAID decompress before scoring the same way)."""
    total = int(lens.sum())
    block = _scratch(total, tokens.shape[1], tokens.dtype)
    pos = 0
    for s, n in zip(starts.tolist(), lens.tolist()):
        block[pos : pos + n] = tokens[s : s + n]
        pos += n
    # Products slice by slice: the widened (or decoded) float32 rows of a slice stay in cache for the MatMul
    # instead of one float32 copy of every row going through memory (~1.4x less CPU at 36k rows per call).
    sims = np.empty((total, q_t.shape[1]), np.float32)
    decoded = _scratch(min(total, _SLICE_ROWS), q_t.shape[0], np.dtype(np.float32)) if decode_into else None
    for s in range(0, total, _SLICE_ROWS):
        part = block[s : s + _SLICE_ROWS]
        sims[s : s + len(part)] = products(part if decoded is None else decode_into(part, decoded), q_t)
    bounds = np.zeros(len(lens), np.int64)
    np.cumsum(lens[:-1], out=bounds[1:])
    best = np.maximum.reduceat(sims, bounds, axis=0)  # (docs, query tokens)
    return np.add.reduceat(best, [0], axis=1)[:, 0]  # the sum maxsim_scores takes, in the same order
