"""Registers moved into ECP5 block RAMs and multipliers, between Yosys and nextpnr.

An ECP5 block RAM (DP16KD) read without its output register has a clock-to-output delay of
about 5.6 ns (speed grade 6); with the register (``REGMODE = OUTREG``) it is under 1 ns. A
multiplier (MULT18X18D) without its input and output registers is a combinational path of
about 4.5 ns. Yosys's ECP5 flow maps neither register (its memory and DSP mappers do not
absorb flip-flops), so a design whose RTL registers a table's word, or a multiplier's operands
and product, in fabric flip-flops pays those delays between two fabric registers, and no
ECP5 design that reads a block RAM can then pass ~150 MHz. The vendor tools absorb such
registers; :func:`absorb_registers` does the same on Yosys's JSON netlist.

A register is absorbed only where that changes nothing a testbench could observe, cycle for
cycle:

* a block RAM port's output register replaces the fabric flip-flops on its data outputs when
  every used output bit drives exactly one flip-flop, and nothing else, and each of those
  flip-flops is a plain D flip-flop (no clock enable, no set/reset, reset value 0) on the
  port's read clock; the port's output clock enable is then tied high and its reset is low;
* a multiplier's input registers take over from the plain flip-flops (one clock) that drive
  its ``A`` and ``B`` pins when both operands qualify (nextpnr's timing model has input
  registers only for both operands together); a flip-flop that also feeds other cells stays
  for them, so that each multiplier has its own copy; its output register replaces the
  flip-flops on its ``P`` pins when they qualify as for a block RAM.

Anything else is left as Yosys mapped it. Every absorbed flip-flop's cell is removed; the
hardware registers power up to 0 as the plain flip-flops they replace.
"""

from collections import defaultdict

__all__ = ["absorb_registers"]


def _is_constant(bit) -> bool:
    return isinstance(bit, str)


class _Netlist:
    """Drivers and users of every net bit of one flattened Yosys JSON module."""

    def __init__(self, module: dict):
        self.cells = module["cells"]
        self.driver = {}
        self.users = defaultdict(list)
        for name, cell in self.cells.items():
            for port, bits in cell["connections"].items():
                output = cell["port_directions"].get(port) == "output"
                for bit in bits:
                    if _is_constant(bit):
                        continue
                    if output:
                        self.driver[bit] = (name, port)
                    else:
                        self.users[bit].append((name, port))
        for port in module.get("ports", {}).values():  # top-level outputs are users too
            for bit in port["bits"]:
                if not _is_constant(bit):
                    self.users[bit].append((None, None))

    def plain_ff(self, name, clock) -> bool:
        """``name`` is a D flip-flop on ``clock`` with no enable, no set/reset, reset 0."""
        cell = self.cells.get(name)
        if cell is None or cell["type"] != "TRELLIS_FF":
            return False
        params, conn = cell["parameters"], cell["connections"]
        return (conn.get("CLK") == [clock]
                and params.get("CLKMUX", "CLK").strip() == "CLK"
                and params.get("CEMUX", "1").strip() == "1"
                and conn.get("LSR", ["0"]) == ["0"]
                and params.get("REGSET", "RESET").strip() == "RESET"
                and not [b for b in conn.get("M", []) if not _is_constant(b)])

    def sole_ff_user(self, bit, clock):
        """The flip-flop that is the one user (at ``DI``) of ``bit``, if it is plain."""
        users = self.users.get(bit, [])
        if len(users) != 1:
            return None
        name, port = users[0]
        return name if port == "DI" and self.plain_ff(name, clock) else None

    def output_registers(self, cell, pins, clock):
        """``{pin: flip-flop}`` for the used ``pins`` when every one feeds one plain
        flip-flop and nothing else; ``None`` otherwise (or when no pin is used)."""
        found = {}
        for pin in pins:
            bits = cell["connections"].get(pin, [])
            if not bits or _is_constant(bits[0]) or not self.users.get(bits[0]):
                continue
            ff = self.sole_ff_user(bits[0], clock)
            if ff is None:
                return None
            found[pin] = ff
        return found or None

    def input_registers(self, name, pins):
        """``(clock, {net bit: flip-flop})`` when every non-constant pin of ``pins`` of cell
        ``name`` is driven by a plain flip-flop on one clock. A flip-flop that also drives
        other cells stays for them (this cell then has its own copy of the register)."""
        cell = self.cells[name]
        pin_bits = [cell["connections"].get(pin, ["0"])[0] for pin in pins]
        if any(_is_constant(bit) and bit != "0" for bit in pin_bits):
            return None  # a constant 1 would read 0 until the first clock edge
        sources, clock = {}, None
        for bit in pin_bits:
            if _is_constant(bit) or bit in sources:
                continue
            driver, port = self.driver.get(bit, (None, None))
            if port != "Q" or self.cells[driver]["type"] != "TRELLIS_FF":
                return None
            ff_clock = self.cells[driver]["connections"].get("CLK", [None])[0]
            clock = ff_clock if clock is None else clock
            if ff_clock != clock or not self.plain_ff(driver, clock):
                return None
            sources[bit] = driver
        return (clock, sources) if sources else None

    def _connect(self, name, pin, bit) -> None:
        """Connect pin ``pin`` of cell ``name`` to net bit ``bit``, keeping the maps."""
        cell = self.cells[name]
        old = cell["connections"][pin][0]
        if cell["port_directions"][pin] == "output":
            self.driver.pop(old, None)
            self.driver[bit] = (name, pin)
        else:
            if not _is_constant(old):
                self.users[old].remove((name, pin))
            self.users[bit].append((name, pin))
        cell["connections"][pin] = [bit]

    def _remove(self, name) -> None:
        for port, bits in self.cells.pop(name)["connections"].items():
            for bit in bits:
                if _is_constant(bit):
                    continue
                if self.driver.get(bit) == (name, port):
                    del self.driver[bit]
                elif (name, port) in self.users.get(bit, []):
                    self.users[bit].remove((name, port))

    def absorb_outputs(self, name, registers: dict) -> None:
        """Pins of cell ``name`` drive what their flip-flops drove; the flip-flops go."""
        for pin, ff in registers.items():
            q = self.cells[ff]["connections"]["Q"][0]
            self._remove(ff)
            self._connect(name, pin, q)

    def absorb_inputs(self, name, pins, sources: dict) -> int:
        """Pins of cell ``name`` take their flip-flops' inputs; the flip-flops that drive
        nothing else go. Returns how many went."""
        data = {bit: self.cells[ff]["connections"]["DI"][0] for bit, ff in sources.items()}
        for pin in pins:
            bit = self.cells[name]["connections"].get(pin, ["0"])[0]
            if bit in data:
                self._connect(name, pin, data[bit])
        removed = 0
        for bit, ff in sources.items():
            if not self.users.get(bit):
                self._remove(ff)
                removed += 1
        return removed


def _width(value) -> int:
    return int(value, 2) if isinstance(value, str) and set(value) <= {"0", "1"} else int(value)


def _block_ram(net: _Netlist, name: str, cell: dict) -> int:
    params, conn = cell["parameters"], cell["connections"]
    data_a = [f"DOA{n}" for n in range(18)]
    data_b = [f"DOB{n}" for n in range(18)]
    if _width(params.get("DATA_WIDTH_A", "18")) == 36:  # pseudo dual port: reads on B
        ports = [(("A", "B"), data_a + data_b, "B")]
    else:
        ports = [(("A",), data_a, "A"), (("B",), data_b, "B")]
    absorbed = 0
    for modes, pins, side in ports:
        if any(params.get(f"REGMODE_{m}", "NOREG") != "NOREG" for m in modes):
            continue
        clock = conn.get(f"CLK{side}", ["0"])[0]
        if _is_constant(clock) or params.get(f"CLK{side}MUX", f"CLK{side}") != f"CLK{side}":
            continue
        if conn.get(f"RST{side}", ["0"]) != ["0"]:
            continue
        registers = net.output_registers(cell, pins, clock)
        if registers is None:
            continue
        net.absorb_outputs(name, registers)
        for m in modes:
            params[f"REGMODE_{m}"] = "OUTREG"
        conn[f"OCE{side}"] = ["1"]
        cell["port_directions"][f"OCE{side}"] = "input"
        absorbed += len(registers)
    return absorbed


def _multiplier(net: _Netlist, name: str, cell: dict) -> tuple[int, int]:
    params, conn = cell["parameters"], cell["connections"]
    if any(params.get(f"REG_{r}_CLK", "NONE") != "NONE"
           for r in ("INPUTA", "INPUTB", "INPUTC", "PIPELINE", "OUTPUT")):
        return 0, 0
    if [b for b in conn.get("CLK0", ["0"]) if not _is_constant(b)]:
        return 0, 0
    pins_a = [f"A{n}" for n in range(18)]
    pins_b = [f"B{n}" for n in range(18)]
    a = net.input_registers(name, pins_a)
    b = net.input_registers(name, pins_b)
    clock = a[0] if a else b[0] if b else None
    inputs, registered = 0, False
    if a and b and a[0] == b[0]:
        registered = True
        inputs = net.absorb_inputs(name, pins_a, a[1]) + net.absorb_inputs(name, pins_b, b[1])
        for r in ("INPUTA", "INPUTB"):
            params.update({f"REG_{r}_CLK": "CLK0", f"REG_{r}_CE": "CE0",
                           f"REG_{r}_RST": "RST0"})
    outputs = 0
    if clock is None:  # no operand register: the product's flip-flops name the clock
        for pin in (f"P{n}" for n in range(36)):
            bits = conn.get(pin, [])
            if bits and not _is_constant(bits[0]) and len(net.users.get(bits[0], [])) == 1:
                user, port = net.users[bits[0]][0]
                if user is not None and port == "DI":
                    clock = net.cells[user]["connections"].get("CLK", [None])[0]
                    break
    registers = net.output_registers(cell, [f"P{n}" for n in range(36)], clock) \
        if clock is not None and not _is_constant(clock) else None
    if registers is not None:
        net.absorb_outputs(name, registers)
        params.update({"REG_OUTPUT_CLK": "CLK0", "REG_OUTPUT_CE": "CE0",
                       "REG_OUTPUT_RST": "RST0"})
        outputs, registered = len(registers), True
    if registered:
        conn.update(CLK0=[clock], CE0=["1"], RST0=["0"])
        cell["port_directions"].update(CLK0="input", CE0="input", RST0="input")
    return inputs, outputs


def absorb_registers(netlist: dict, top: str) -> dict[str, int]:
    """Absorb fabric flip-flops into the block RAMs and multipliers of module ``top`` of a
    Yosys JSON ``netlist`` (changed in place), as the module docstring says. Returns how many
    fabric flip-flops went: ``bram_output``, ``dsp_input``, ``dsp_output``."""
    module = netlist["modules"][top]
    net = _Netlist(module)
    counts = {"bram_output": 0, "dsp_input": 0, "dsp_output": 0}
    for name, cell in list(module["cells"].items()):
        if name not in module["cells"]:
            continue
        if cell["type"] == "DP16KD":
            counts["bram_output"] += _block_ram(net, name, cell)
        elif cell["type"] == "MULT18X18D":
            inputs, outputs = _multiplier(net, name, cell)
            counts["dsp_input"] += inputs
            counts["dsp_output"] += outputs
    return counts
