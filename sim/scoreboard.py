"""Scoreboard: compares every output beat with the golden model, stops at the first mismatch."""

from ..hw.cpsn_config import CPSNConfig
from .beats import Beat, BeatPosition

__all__ = ["Mismatch", "Scoreboard"]


class Mismatch(AssertionError):
    """An output beat differs from the golden model; the message says where and how."""


class Scoreboard:
    """Checks output beats in order against ``expected`` (from :func:`expected_beats`)."""

    def __init__(self, config: CPSNConfig, expected: list[tuple[BeatPosition, Beat]]):
        self.config = config
        self.expected = expected
        self.checked = 0

    @property
    def done(self) -> bool:
        return self.checked == len(self.expected)

    def check(self, got: Beat) -> None:
        if self.done:
            raise Mismatch(f"unexpected extra output beat {got} after all "
                           f"{len(self.expected)} expected beats")
        position, want = self.expected[self.checked]
        if got != want:
            raise Mismatch(self._describe(position, want, got))
        self.checked += 1

    def _describe(self, position: BeatPosition, want: Beat, got: Beat) -> str:
        cfg = self.config
        where = (f"beat {self.checked} (sample {position.sample}, time step {position.step}, "
                 f"group {position.group})")
        if want.last != got.last:
            return f"{where}: tlast expected {int(want.last)}, got {int(got.last)}"
        for lane in range(cfg.lanes):
            channel = position.group * cfg.lanes + lane
            spike_want, spike_got = (want.data >> lane) & 1, (got.data >> lane) & 1
            mask = (1 << cfg.membrane_width) - 1
            shift = lane * cfg.membrane_width
            h_want, h_got = (want.user >> shift) & mask, (got.user >> shift) & mask
            if spike_want != spike_got or h_want != h_got:
                detail = f"spike expected {spike_want}, got {spike_got}"
                if cfg.membrane_out:
                    sign = 1 << (cfg.membrane_width - 1)
                    detail += (f"; membrane expected {(h_want ^ sign) - sign}, "
                               f"got {(h_got ^ sign) - sign}")
                return f"{where}, channel {channel}: {detail}"
        return f"{where}: expected {want}, got {got}"
