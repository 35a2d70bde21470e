"""Scoreboard: compares every output beat with the golden model, stops at the first mismatch."""

from .beats import Beat, BeatPosition, stream_format

__all__ = ["Mismatch", "Scoreboard"]


class Mismatch(AssertionError):
    """An output beat differs from the golden model; the message says where and how."""


class Scoreboard:
    """Checks output beats in order against ``expected`` (from :func:`expected_beats`)."""

    def __init__(self, config, expected: list[tuple[BeatPosition, Beat]]):
        self.format = stream_format(config)
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
            where = f"beat {self.checked} (sample {position.sample}, group {position.group})"
            if want.last != got.last:
                raise Mismatch(f"{where}: tlast expected {int(want.last)}, got {int(got.last)}")
            detail = self.format.explain(position, want, got) or f"expected {want}, got {got}"
            raise Mismatch(f"{where}, {detail}")
        self.checked += 1
