"""Feature rows as bytes: computed once per event upstream, kept in the window and in snapshots.

Dense rows (sentence embeddings) are float32 values; sparse rows (TF-IDF) are their int32
indices and float32 values, so a 20-word tweet costs ~160 bytes, not 4 bytes per vocabulary
word.

>>> import numpy as np
>>> from scipy import sparse
>>> row = sparse.csr_array(np.array([[0.0, 0.5, 0.0, 0.25]]))
>>> decode_rows([encode_row(row)], n_columns=4).toarray()
array([[0.  , 0.5 , 0.  , 0.25]])
>>> decode_rows([encode_row(np.array([1.0, 2.0]))], n_columns=2)
array([[1., 2.]])
>>> matrix = sparse.csr_array(np.array([[0.0, 0.5], [0.0, 0.0], [2.0, 1.0]]))
>>> decode_rows(encode_rows(matrix), n_columns=2).toarray()
array([[0. , 0.5],
       [0. , 0. ],
       [2. , 1. ]])
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import sparse

from driftline.stats.domain_classifier import Features


def encode_row(row: Features) -> bytes:
    """One feature row as bytes: dense float32 values, or sparse (int32 indices, float32 data)."""
    if sparse.issparse(row):
        return encode_rows(row)[0]
    return b"D" + np.asarray(row, dtype="<f4").ravel().tobytes()


def encode_rows(matrix: Features) -> list[bytes]:
    """`encode_row` of each row of a matrix, from one pass over its arrays: slicing a scipy
    sparse matrix row by row costs ~50 us a row, most of a monitor's time per result. The
    sparse layout is written here only."""
    if not sparse.issparse(matrix):
        return [encode_row(row) for row in np.asarray(matrix)]
    csr = sparse.csr_array(matrix)
    indices, data, bounds = csr.indices.astype("<i4"), csr.data.astype("<f4"), csr.indptr
    return [
        b"S"
        + (end - start).to_bytes(4, "little")
        + indices[start:end].tobytes()
        + data[start:end].tobytes()
        for start, end in itertools.pairwise(bounds.tolist())
    ]


def decode_rows(rows: list[bytes], n_columns: int) -> Features:
    """The matrix of rows encoded by `encode_row` (sparse if they were sparse)."""
    if not rows or rows[0][:1] == b"D":
        return np.vstack([np.frombuffer(r, dtype="<f4", offset=1) for r in rows]).astype(np.float64)
    indptr, indices, data = [0], [], []
    for r in rows:
        k = int.from_bytes(r[1:5], "little")
        indices.append(np.frombuffer(r, dtype="<i4", count=k, offset=5))
        data.append(np.frombuffer(r, dtype="<f4", count=k, offset=5 + 4 * k))
        indptr.append(indptr[-1] + k)
    return sparse.csr_array(
        (np.concatenate(data).astype(np.float64), np.concatenate(indices), indptr),
        shape=(len(rows), n_columns),
    )
