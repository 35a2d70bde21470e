"""Beat-level view of a core's streams: what goes on the wire for given samples.

Both the Amaranth-simulator unit tests and the cocotb testbench use these, so the packing of
lanes into ``tdata`` is written once, next to the scoreboard that checks it.
"""

from dataclasses import dataclass

import numpy as np

from ..golden.cpsn_int import check_inputs, cpsn_integer
from ..golden.fixed import to_twos_complement
from ..hw.cpsn_config import CPSNConfig

__all__ = ["Beat", "BeatPosition", "input_beats", "expected_beats", "random_samples"]


@dataclass(frozen=True)
class Beat:
    data: int
    last: bool
    user: int = 0


@dataclass(frozen=True)
class BeatPosition:
    """Where a beat sits: sample ``n``, time step ``t``, channel group ``g``."""

    sample: int
    step: int
    group: int


def _positions(config: CPSNConfig, samples: list[np.ndarray]):
    for n, sample in enumerate(samples):
        for t in range(sample.shape[0]):
            for g in range(config.groups):
                yield BeatPosition(n, t, g), t == sample.shape[0] - 1 and g == config.groups - 1


def _pack(values: np.ndarray, width: int) -> int:
    word = 0
    for lane, value in enumerate(values):
        word |= int(value) << (lane * width)
    return word


def input_beats(config: CPSNConfig, samples: list[np.ndarray]) -> list[Beat]:
    """Input beats for ``samples`` (each ``[T, C]`` integers), in stream order."""
    samples = [check_inputs(config, s)[:, 0] for s in samples]
    beats = []
    for position, last in _positions(config, samples):
        lanes = slice(position.group * config.lanes, (position.group + 1) * config.lanes)
        codes = to_twos_complement(samples[position.sample][position.step, lanes],
                                   config.input_width)
        beats.append(Beat(_pack(codes, config.input_width), last))
    return beats


def expected_beats(config: CPSNConfig, samples: list[np.ndarray]):
    """``[(position, Beat)]`` the core must emit for ``samples``, from the integer model."""
    results = [cpsn_integer(config, s) for s in samples]
    expected = []
    for position, last in _positions(config, samples):
        lanes = slice(position.group * config.lanes, (position.group + 1) * config.lanes)
        spikes, membrane = (r[position.step, lanes] for r in results[position.sample])
        user = 0
        if config.membrane_out:
            user = _pack(to_twos_complement(membrane, config.membrane_width),
                         config.membrane_width)
        expected.append((position, Beat(_pack(spikes, 1), last, user)))
    return expected


def random_samples(config: CPSNConfig, rng: np.random.Generator, count: int, *,
                   min_steps: int = 1, max_steps: int = 32, extreme_fraction: float = 0.1):
    """Random integer samples ``[T, C]``; a fraction of the inputs sit at the range ends."""
    lo, hi = config.input_range
    samples = []
    for _ in range(count):
        steps = int(rng.integers(min_steps, max_steps + 1))
        x = rng.integers(lo, hi + 1, size=(steps, config.channels))
        extremes = rng.random(x.shape) < extreme_fraction
        x[extremes] = rng.choice([lo, hi], size=int(extremes.sum()))
        samples.append(x)
    return samples
