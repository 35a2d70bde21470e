"""Fixed-point helpers shared by every integer golden model and hardware generator.

All integers are two's complement. A *width* is a bit count including the sign bit. Bounds
are computed with Python integers, so they are exact for any width.
"""

import operator

import numpy as np

__all__ = [
    "signed_range",
    "signed_width",
    "check_int",
    "check_bool",
    "check_lanes",
    "check_int_array",
    "to_twos_complement",
    "from_twos_complement",
]


def signed_range(width: int) -> tuple[int, int]:
    """The inclusive range ``(lo, hi)`` of a signed integer of ``width`` bits."""
    width = operator.index(width)
    if width < 1:
        raise ValueError(f"a signed width must be >= 1, got {width}")
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def signed_width(lo: int, hi: int) -> int:
    """The smallest signed width that holds every integer in ``[lo, hi]``."""
    lo, hi = operator.index(lo), operator.index(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def check_int(owner: str, name: str, value, *, min_value: int | None = None,
              max_value: int | None = None) -> int:
    """Return ``value`` as an ``int`` or raise a ``ValueError``/``TypeError`` naming the field.

    ``owner.name`` appears in every message so that a user editing a configuration file knows
    which key to fix. Booleans are refused even though Python treats them as integers.
    """
    if isinstance(value, bool):
        raise TypeError(f"{owner}.{name} must be an integer, got a bool ({value!r})")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{owner}.{name} must be an integer, got {type(value).__name__} "
                        f"({value!r})") from None
    if min_value is not None and value < min_value:
        raise ValueError(f"{owner}.{name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{owner}.{name} must be <= {max_value}, got {value}")
    return value


def check_bool(owner: str, name: str, value) -> bool:
    """Return ``value`` or raise a ``TypeError`` naming the field: a flag read from a
    configuration file must be a JSON boolean, not a truthy number or string."""
    if not isinstance(value, bool):
        raise TypeError(f"{owner}.{name} must be a bool, got {value!r}")
    return value


def check_lanes(owner: str, lanes, channels: int) -> int:
    """Return ``lanes`` as an ``int`` or raise naming the field: a core folds its ``channels``
    over ``channels / lanes`` beats, so ``lanes`` must divide them."""
    lanes = check_int(owner, "lanes", lanes, min_value=1, max_value=channels)
    if channels % lanes:
        raise ValueError(f"{owner}.lanes ({lanes}) must divide {owner}.channels ({channels})")
    return lanes


def check_int_array(owner: str, name: str, value, shape: tuple[int, ...], *,
                    min_value: int | None = None, max_value: int | None = None) -> np.ndarray:
    """Return ``value`` as a read-only ``int64`` array of ``shape`` or raise naming the field.

    Floats are accepted only when every element is integral (JSON has no integer arrays of its
    own in some writers); anything else is an error rather than a silent rounding.
    """
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(f"{owner}.{name} is not a rectangular array: {exc}") from None
    if array.dtype == object or array.dtype.kind not in "iuf" and array.size:
        raise TypeError(f"{owner}.{name} must hold integers, got dtype {array.dtype}")
    if array.shape != tuple(shape):
        raise ValueError(f"{owner}.{name} must have shape {tuple(shape)}, got {array.shape}")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise TypeError(f"{owner}.{name} must hold integers, got non-integral values")
    array = array.astype(np.int64)
    if min_value is not None and array.size and array.min() < min_value:
        index = tuple(int(i) for i in np.unravel_index(np.argmin(array), array.shape))
        raise ValueError(f"{owner}.{name}{list(index)} = {array[index]} is below the minimum "
                         f"{min_value}")
    if max_value is not None and array.size and array.max() > max_value:
        index = tuple(int(i) for i in np.unravel_index(np.argmax(array), array.shape))
        raise ValueError(f"{owner}.{name}{list(index)} = {array[index]} is above the maximum "
                         f"{max_value}")
    array.setflags(write=False)
    return array


def to_twos_complement(values, width: int) -> np.ndarray:
    """Map signed integers to their unsigned ``width``-bit two's complement codes."""
    lo, hi = signed_range(width)
    values = np.asarray(values, dtype=np.int64)
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(f"values outside the signed {width}-bit range [{lo}, {hi}]")
    return values & ((1 << width) - 1)


def from_twos_complement(codes, width: int) -> np.ndarray:
    """Inverse of :func:`to_twos_complement`."""
    codes = np.asarray(codes, dtype=np.int64) & ((1 << width) - 1)
    return np.where(codes >= (1 << (width - 1)), codes - (1 << width), codes)


def core_inputs(config, x, model: str) -> tuple[np.ndarray, bool]:
    """A core's integer inputs as int64 ``[T, N, C]`` and whether they came as one ``[T, C]``
    sample; raises (naming ``model``) on a non-integer dtype, a wrong shape or a value outside
    the signed ``config.input_width``-bit range. Every integer core model checks through here."""
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{model}: inputs must be integers, got dtype {x.dtype}")
    single = x.ndim == 2
    if single:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[2] != config.channels:
        raise ValueError(f"{model}: inputs must have shape [T, N, {config.channels}] or "
                         f"[T, {config.channels}], got {list(np.shape(x))}")
    lo, hi = config.input_range
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{model}: inputs outside the input range, the signed "
                         f"{config.input_width}-bit range [{lo}, {hi}]: got "
                         f"[{x.min()}, {x.max()}]")
    return x.astype(np.int64), single
