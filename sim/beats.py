"""Beat-level view of a core's streams: what goes on the wire for given samples.

Every core streams *tiles*: a beat holds ``steps`` consecutive time steps of ``lanes``
channels (CPSN: one step; PRF: ``P`` steps), element ``(step j, lane l)`` at index
``j·lanes + l``, and a time step of all channels takes ``groups`` beats. Samples are padded
with zero inputs to whole tiles; the golden model runs on the padded samples, so even padded
outputs are checked. The Amaranth unit tests and the cocotb testbench both use this module.
"""

from dataclasses import dataclass

import numpy as np

from ..golden.fixed import to_twos_complement
from ..golden.network_int import core_model, core_outputs

__all__ = ["Beat", "BeatPosition", "TileFormat", "stream_format",
           "input_beats", "expected_beats", "random_samples"]


@dataclass(frozen=True)
class Beat:
    data: int
    last: bool
    user: int = 0


@dataclass(frozen=True)
class BeatPosition:
    """Where a beat sits: sample ``n``, first time step ``t`` of its tile, channel group ``g``."""

    sample: int
    step: int
    group: int


@dataclass(frozen=True)
class TileFormat:
    lanes: int
    groups: int
    steps: int
    input_width: int
    membrane_width: int | None  # None: the core has no membrane output

    @property
    def channels(self) -> int:
        return self.lanes * self.groups

    def padded_length(self, length: int) -> int:
        return -(-length // self.steps) * self.steps

    def positions(self, lengths: list[int]):
        for n, length in enumerate(lengths):
            tiles = self.padded_length(length) // self.steps
            for tile in range(tiles):
                for g in range(self.groups):
                    yield (BeatPosition(n, tile * self.steps, g),
                           tile == tiles - 1 and g == self.groups - 1)

    def _tile(self, array: np.ndarray, position: BeatPosition) -> np.ndarray:
        """The ``[steps, lanes]`` block of a padded ``[T, C]`` array that a beat carries."""
        lanes = slice(position.group * self.lanes, (position.group + 1) * self.lanes)
        return array[position.step:position.step + self.steps, lanes]

    @staticmethod
    def _pack(values: np.ndarray, width: int) -> int:
        word = 0
        for index, value in enumerate(values.reshape(-1)):  # row-major: j·lanes + l
            word |= int(value) << (index * width)
        return word

    def pad(self, sample: np.ndarray) -> np.ndarray:
        padded = np.zeros((self.padded_length(sample.shape[0]), sample.shape[1]),
                          dtype=np.int64)
        padded[:sample.shape[0]] = sample
        return padded

    def input_beats(self, samples: list[np.ndarray]) -> list[Beat]:
        padded = [self.pad(s) for s in samples]
        return [Beat(self._pack(to_twos_complement(self._tile(padded[p.sample], p),
                                                   self.input_width), self.input_width), last)
                for p, last in self.positions([s.shape[0] for s in samples])]

    def output_beats(self, lengths: list[int], spikes: list[np.ndarray],
                     membranes: list[np.ndarray]) -> list[tuple[BeatPosition, Beat]]:
        expected = []
        for p, last in self.positions(lengths):
            user = 0
            if self.membrane_width:
                user = self._pack(to_twos_complement(self._tile(membranes[p.sample], p),
                                                     self.membrane_width), self.membrane_width)
            expected.append((p, Beat(self._pack(self._tile(spikes[p.sample], p), 1), last,
                                     user)))
        return expected

    def explain(self, position: BeatPosition, want: Beat, got: Beat) -> str | None:
        """The first element that differs, as 'time step t, channel c: …'."""
        for j in range(self.steps):
            for lane in range(self.lanes):
                index = j * self.lanes + lane
                spike_want, spike_got = (want.data >> index) & 1, (got.data >> index) & 1
                detail = f"spike expected {spike_want}, got {spike_got}"
                differs = spike_want != spike_got
                if self.membrane_width:
                    width = self.membrane_width
                    sign, mask = 1 << (width - 1), (1 << width) - 1
                    h_want = (((want.user >> (index * width)) & mask) ^ sign) - sign
                    h_got = (((got.user >> (index * width)) & mask) ^ sign) - sign
                    detail += f"; membrane expected {h_want}, got {h_got}"
                    differs |= h_want != h_got
                if differs:
                    channel = position.group * self.lanes + lane
                    return f"time step {position.step + j}, channel {channel}: {detail}"
        return None


def stream_format(config) -> TileFormat:
    model = core_model(config)  # the neuron-kind registry (golden.network_int.CORE_MODELS)
    return TileFormat(config.lanes, config.groups, model.steps(config), config.input_width,
                      model.membrane_width(config))


def _validated(config, samples: list[np.ndarray]) -> list[np.ndarray]:
    return [core_model(config).check(config, s) for s in samples]


def input_beats(config, samples: list[np.ndarray]) -> list[Beat]:
    """Input beats for ``samples`` (each ``[T, C]`` integers), in stream order."""
    return stream_format(config).input_beats(_validated(config, samples))


def expected_beats(config, samples: list[np.ndarray]) -> list[tuple[BeatPosition, Beat]]:
    """``[(position, Beat)]`` the core must emit for ``samples``, from the golden model."""
    fmt = stream_format(config)
    samples = _validated(config, samples)
    outputs = [core_outputs(config, fmt.pad(s)) for s in samples]
    return fmt.output_beats([s.shape[0] for s in samples], [o[0] for o in outputs],
                            [o[1] for o in outputs])


def random_samples(config, rng: np.random.Generator, count: int, *, min_steps: int = 1,
                   max_steps: int = 32, extreme_fraction: float = 0.1):
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
