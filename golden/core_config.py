"""What the core configuration dataclasses (CPSN, PRF, LIF) share beyond their JSON form:
channels folded over lanes and a signed input word, defined once so the cores cannot drift
apart."""

from .config_json import JSONConfig
from .fixed import signed_range

__all__ = ["CoreConfig"]


class CoreConfig(JSONConfig):
    """Base of a frozen core configuration dataclass with the fields ``channels``, ``lanes``
    and ``input_width`` (``lanes`` checked with :func:`~spikeforge.golden.fixed.check_lanes`)."""

    channels: int
    lanes: int
    input_width: int

    @property
    def groups(self) -> int:
        """Beats per time step (per tile for PRF): channels are folded over
        ``channels / lanes`` beats."""
        return self.channels // self.lanes

    @property
    def input_range(self) -> tuple[int, int]:
        return signed_range(self.input_width)
