"""Weight tables in hardware: one ROM component and one storage check for every core.

The CPSN and PRF cores, the synapse engines and the readout all keep their constants the same
way: a table is a list of words (one per address), either *baked* into the generated Verilog
as ROM contents, or read at elaboration by ``$readmemh`` from an ``INIT_FILE`` (the
hand-written ``spikeforge_rom`` module), so that weights change without regenerating.
"""

import operator

from amaranth import ClockSignal, Instance, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["WEIGHT_STORAGES", "check_storage", "TableROM"]

#: ``baked``: tables are ROM contents inside the generated Verilog. ``file``: tables are read
#: by ``$readmemh`` from ``INIT_FILE`` parameters at elaboration (Verilog only; the Amaranth
#: simulator needs ``baked``).
WEIGHT_STORAGES = ("baked", "file")


def check_storage(weight_storage: str, init_files: dict | None, tables) -> dict[str, str]:
    """Validate a core's table storage; returns the init files (empty when baked).

    ``file`` storage needs one init file for exactly each of ``tables``; ``baked`` takes none.
    """
    if weight_storage not in WEIGHT_STORAGES:
        raise ValueError(f"weight_storage must be one of {WEIGHT_STORAGES}, got "
                         f"{weight_storage!r}")
    if weight_storage == "file":
        if init_files is None or set(init_files) != set(tables):
            raise ValueError(f"weight_storage='file' needs init_files for exactly the tables "
                             f"{tuple(tables)}, got {sorted(init_files or {})}")
    elif init_files is not None:
        raise ValueError("init_files are only used with weight_storage='file'")
    return dict(init_files or {})


class TableROM(wiring.Component):
    """A read-only table with a registered read: ``data`` shows word ``addr`` one cycle after
    a cycle with ``en`` set, and holds it otherwise.

    ``baked``: an Amaranth memory read combinationally into a register without reset. A bit
    that is the same in every word starts at that value (a constant register, which synthesis
    removes); every other bit starts at 0, as a block RAM's read register does (no logic to
    emulate another start value, which would also keep the register out of an ECP5 RAM's
    output register). Synthesis merges the two into a block- or distributed-RAM read port.
    ``file``: an instance of ``spikeforge_rom`` (``hw/verilog/spikeforge_rom.v``) that
    reads ``init_file`` with ``$readmemh``; its read register starts at zero.

    Latency: 1 cycle. Throughput: one read per cycle.

    Members:
        addr: word address (``range(depth)``; one bit when ``depth == 1``).
        en: read this cycle.
        data: the registered word, ``width`` bits.
    """

    def __init__(self, words, width: int, *, storage: str = "baked",
                 init_file: str | None = None):
        self.words = [int(word) for word in words]
        self.width = operator.index(width)
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if not self.words:
            raise ValueError("a table needs at least one word")
        for address, word in enumerate(self.words):
            if not 0 <= word < 1 << self.width:
                raise ValueError(f"word {address} = {word} does not fit {self.width} bits")
        check_storage(storage, None if init_file is None else {"table": init_file},
                      ("table",))
        self.storage, self.init_file = storage, init_file
        self.depth = len(self.words)
        super().__init__({"addr": In(max(1, (self.depth - 1).bit_length())), "en": In(1),
                          "data": Out(self.width)})

    def _constant_bits(self) -> int:
        """The start value of the read register: the bits that are 1 in every word (bits 0 in
        every word are 0 too, and every other bit starts at 0)."""
        ones = (1 << self.width) - 1
        for word in self.words:
            ones &= word
        return ones

    def elaborate(self, platform):
        m = Module()
        if self.storage == "file":
            m.submodules.rom = Instance(
                "spikeforge_rom", p_WIDTH=self.width, p_DEPTH=self.depth,
                p_ADDR_WIDTH=len(self.addr), p_INIT_FILE=self.init_file,
                i_clk=ClockSignal(), i_en=self.en, i_addr=self.addr, o_data=self.data)
            return m
        m.submodules.rom = rom = memory.Memory(shape=self.width, depth=self.depth,
                                               init=self.words)
        read = rom.read_port(domain="comb")
        register = Signal(self.width, reset_less=True, init=self._constant_bits())
        m.d.comb += [read.addr.eq(self.addr), self.data.eq(register)]
        with m.If(self.en):
            m.d.sync += register.eq(read.data)
        return m
