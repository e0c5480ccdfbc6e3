"""The float array type the analytics take and give, and the one conversion into it.

Callers hand over lists, tuples or arrays of any number type; every rule works on
float64, so each converts once at its entry with `as_floats`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Floats = NDArray[np.float64]


def as_floats(values: ArrayLike) -> Floats:
    """The values as a float64 array, without a copy when they already are one."""
    return np.asarray(values, dtype=np.float64)
