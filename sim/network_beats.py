"""Beat-level view of the network accelerator's and the synapse engines' streams.

A stream of ``C`` values per time step in ``lanes`` per beat carries each step as
``C/lanes`` beats (channel group ``g`` = values ``g·lanes … g·lanes+lanes−1``), ``tlast`` on
the sample's last beat: the cores' format (:class:`~spikeforge.sim.beats.TileFormat` with one
step per beat). The network's input is one beat of every feature per step; its output is one
beat per sample (class in ``tdata``, logits on ``tuser``).
"""

import numpy as np

from ..golden.fixed import to_twos_complement
from .beats import Beat

__all__ = ["sample_traces", "step_beats", "readout_beat", "network_input_beats", "network_output_beats",
           "unpack_logits"]


def step_beats(samples: list[np.ndarray], lanes: int, width: int) -> list[Beat]:
    """Beats of ``[T, C]`` integer samples, ``lanes`` values of ``width`` bits per beat."""
    beats = []
    mask = (1 << width) - 1  # spikes (width 1) are unsigned, other values two's complement
    for sample in samples:
        sample = np.asarray(sample, dtype=np.int64)
        steps, channels = sample.shape
        for t in range(steps):
            for g in range(channels // lanes):
                word = 0
                for lane, value in enumerate(sample[t, g * lanes:(g + 1) * lanes]):
                    word |= (int(value) & mask) << (lane * width)
                beats.append(Beat(word, t == steps - 1 and g == channels // lanes - 1))
    return beats


def readout_beat(logits: np.ndarray, width: int) -> Beat:
    """The output beat of one sample: the first maximal class and the packed logits."""
    logits = np.asarray(logits, dtype=np.int64)
    user = 0
    for k, code in enumerate(to_twos_complement(logits, width)):
        user |= int(code) << (k * width)
    return Beat(int(np.argmax(logits)), True, user)


def unpack_logits(user: int, classes: int, width: int) -> np.ndarray:
    mask, sign = (1 << width) - 1, 1 << (width - 1)
    return np.array([(((user >> (k * width)) & mask) ^ sign) - sign for k in range(classes)],
                    dtype=np.int64)


def network_input_beats(network, samples: list[np.ndarray]) -> list[Beat]:
    """Input beats of quantised samples ``[T, features]`` (one beat per step)."""
    return step_beats(samples, network.in_features, network.input_width)


def network_output_beats(logits: np.ndarray, width: int) -> list[Beat]:
    """Expected output beats for ``logits`` ``[N, classes]``."""
    return [readout_beat(row, width) for row in logits]


def sample_traces(network, samples: list[np.ndarray]) -> list:
    """The integer network's :class:`~spikeforge.golden.network_int.NetworkTrace` of each
    quantised sample ``[T, features]`` (run one by one: samples differ in length)."""
    return [network.run(np.ldexp(np.asarray(x, dtype=np.float64), -network.input_frac_bits
                                 )[:, None, :]) for x in samples]
