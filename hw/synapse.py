"""Synapse engines and the readout: the fully connected layers of a network, in hardware.

Both compute, per time step, ``A = W·a + b`` exactly for a time step's input vector ``a``
(:class:`~spikeforge.golden.network_int.IntegerSynapse`), in an accumulator wide enough that
nothing overflows. :class:`SynapseEngine` then rounds and saturates ``A`` to a core's input
(``U = sat(round_shift(A, shift))``) and streams it in that core's beat format;
:class:`Readout` accumulates the logits ``Z`` over a sample and picks the class.

How a time step is computed (both engines): the input stream's beats of one time step are
gathered into one vector. The outputs are split into ``B = outputs / parallel`` blocks of
``parallel`` accumulators. For every block the engine issues one *bias operation* (the
accumulators start from the bias) and then one *term operation* per input it visits:

* ``spikes`` inputs are event driven: only active spikes are visited (the lowest set bit of
  the remaining spikes, searched in words of 16 and cleared each cycle), and a term adds the
  weight row of that input, so no multiplier exists. Cycles per time step:
  ``B·(1 + n) + D`` for ``n`` active spikes.
* ``values`` inputs (the first layer: quantised features) visit every input; a term is
  ``parallel`` products ``W·x`` (multipliers, DSP blocks). Cycles: ``B·(1 + F) + D``.

``D`` (:meth:`_AccumulatorEngine.step_overhead`) is the pipeline drain between time steps:
a step starts only when the previous step's results have left the accumulators.

Memory layout (``weights`` table): word ``b·2^k + i`` (``2^k`` the inputs rounded up to a
power of two, so the address is ``{b, i}`` without an adder) holds the ``parallel`` weights of
input ``i`` for the outputs of block ``b`` (output ``b·parallel + p`` at bits
``[p·w, (p+1)·w)``), so one read serves one operation; padding words are zero. ``bias`` word
``b`` holds the block's biases. The rounding half of ``round_shift`` is folded into the stored
bias.
"""

import operator

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.fixed import signed_range, signed_width
from ..golden.network_int import readout_logit_width, readout_step_bound
from .stream import AXIStreamSignature
from .tables import TableROM, check_storage

__all__ = ["INPUT_KINDS", "SYNAPSE_TABLES", "SynapseEngine", "Readout", "pack_synapse_tables",
           "stored_bias"]

#: ``spikes``: one-bit inputs, event-driven accumulation; ``values``: signed multi-bit inputs,
#: multiply-accumulate.
INPUT_KINDS = ("spikes", "values")
#: Tables every engine reads.
SYNAPSE_TABLES = ("weights", "bias")
#: Bits of the spike vector searched at once (the search loop's width, see
#: ``_AccumulatorEngine._spike_search``).
SEARCH_WORD = 16


def stored_bias(bias, shift: int | None) -> np.ndarray:
    """The bias an engine stores: ``b + 2^(shift−1)`` for a right shift (round half up then
    becomes a plain arithmetic shift), else ``b``."""
    bias = np.asarray(bias, dtype=np.int64)
    return bias + (1 << (shift - 1)) if shift is not None and shift > 0 else bias


def _field(values, width: int) -> int:
    word = 0
    for position, value in enumerate(values):
        word |= (int(value) & ((1 << width) - 1)) << (position * width)
    return word


def pack_synapse_tables(weight: np.ndarray, bias: np.ndarray, parallel: int, weight_width: int,
                        bias_width: int) -> dict[str, tuple[list[int], int]]:
    """``{table: (words, word_width)}`` in the layout of the module docstring."""
    outputs, inputs = weight.shape
    blocks = outputs // parallel
    stride = 1 << index_bits(inputs)  # inputs padded to a power of two: no address adder
    weights = [_field(weight[b * parallel:(b + 1) * parallel, i], weight_width)
               if i < inputs else 0 for b in range(blocks) for i in range(stride)]
    biases = [_field(bias[b * parallel:(b + 1) * parallel], bias_width) for b in range(blocks)]
    return {"weights": (weights, parallel * weight_width), "bias": (biases, parallel * bias_width)}


def _lowest_set(bits) -> tuple:
    """``(any, many, index)`` of ``bits``: whether a bit is set, whether two or more are, and
    the index of the lowest set bit (0 when none), from a balanced tree of small functions
    rather than a carry chain across all bits (Fmax)."""
    nodes = [(bits[n], Const(0, 1), Const(0, 0)) for n in range(len(bits))]
    while len(nodes) > 1:
        merged = []
        for n in range(0, len(nodes), 2):
            if n + 1 == len(nodes):
                low_any, low_many, low_index = nodes[n]
                merged.append((low_any, low_many, Cat(low_index, Const(0, 1))))
                continue
            (low_any, low_many, low_index), (high_any, high_many, high_index) = nodes[n:n + 2]
            merged.append((low_any | high_any, low_many | high_many | (low_any & high_any),
                           Mux(low_any, Cat(low_index, Const(0, 1)),
                               Cat(high_index, Const(1, 1)))))
        nodes = merged
    return nodes[0]


def _less(a, b):
    """``a < b`` for signed values, as the sign bit of ``a − b`` (exact width: one carry
    chain and nothing after it)."""
    return (a - b)[-1]


def index_bits(count: int) -> int:
    """Address bits of one of ``count`` inputs (the weight table's layout)."""
    return max(1, (count - 1).bit_length())


class _AccumulatorEngine(wiring.Component):
    """Gather, sequencer and accumulators shared by :class:`SynapseEngine` and
    :class:`Readout` (see the module docstring)."""

    def __init__(self, owner: str, weight, bias, *, weight_width: int, input_kind: str,
                 input_width: int, in_lanes: int, in_groups: int, parallel: int,
                 accumulator_bound: int, weight_storage: str, init_files, output_members,
                 feedback: tuple[int, int] | None = None):
        weight = np.asarray(weight, dtype=np.int64)
        if weight.ndim != 2 or 0 in weight.shape:
            raise ValueError(f"{owner}: weight must be a non-empty [outputs, inputs] matrix, "
                             f"got shape {list(weight.shape)}")
        self.outputs, self.inputs = weight.shape
        self.weight_width = operator.index(weight_width)
        lo, hi = signed_range(self.weight_width)
        if weight.min() < lo or weight.max() > hi:
            raise ValueError(f"{owner}: weights must fit {self.weight_width} signed bits")
        if input_kind not in INPUT_KINDS:
            raise ValueError(f"{owner}: input_kind must be one of {INPUT_KINDS}, got "
                             f"{input_kind!r}")
        self.input_kind = input_kind
        self.input_width = 1 if input_kind == "spikes" else operator.index(input_width)
        self.in_lanes, self.in_groups = operator.index(in_lanes), operator.index(in_groups)
        # feedback: (lanes, beats per step) of the recurrent spike stream, whose inputs follow
        # the forward inputs (the weight's last columns).
        self.feedback = None if feedback is None else tuple(operator.index(v) for v in feedback)
        recurrent = 0 if self.feedback is None else self.feedback[0] * self.feedback[1]
        if self.in_lanes < 1 or self.in_groups < 1 or \
                self.in_lanes * self.in_groups + recurrent != self.inputs:
            raise ValueError(f"{owner}: {self.in_lanes} lanes x {self.in_groups} beats per "
                             f"time step (and {recurrent} recurrent inputs) do not carry the "
                             f"{self.inputs} inputs")
        self.parallel = operator.index(parallel)
        if self.parallel < 1 or self.outputs % self.parallel:
            raise ValueError(f"{owner}: parallel ({self.parallel}) must divide the "
                             f"{self.outputs} outputs")
        self.blocks = self.outputs // self.parallel
        self.weight = weight
        self.bias = np.asarray(bias, dtype=np.int64).reshape(self.outputs)
        self.bias_width = signed_width(int(min(self.bias.min(), 0)), int(max(self.bias.max(), 0)))
        self.accumulator_width = signed_width(-accumulator_bound, accumulator_bound)
        self.weight_storage = weight_storage
        self.init_files = check_storage(weight_storage, init_files, SYNAPSE_TABLES)
        in_data = self.in_lanes * self.input_width
        members = {"s_axis": In(AXIStreamSignature(in_data)), **output_members}
        if self.feedback is not None:
            members["f_axis"] = In(AXIStreamSignature(self.feedback[0]))
        super().__init__(members)

    @property
    def tables(self) -> dict[str, tuple[list[int], int]]:
        """``{table: (words, word_width)}`` of this engine."""
        return pack_synapse_tables(self.weight, self.bias, self.parallel, self.weight_width,
                                   self.bias_width)

    @property
    def datapath_stages(self) -> int:
        """Registers from an issued operation to its accumulator update (the operation and
        address register, the ROM read, then the row register for spikes, or the word,
        operand and two product registers for multi-bit inputs)."""
        return 3 if self.input_kind == "spikes" else 6

    def step_overhead(self) -> int:
        """``D``: cycles from a step's last issued operation to the cycle the next step can
        issue (operation pipeline, result register, hand-off)."""
        return self.datapath_stages + 3

    def step_formula(self) -> str:
        term = "n" if self.input_kind == "spikes" else "F"
        return f"B*(1+{term}) + D, B={self.blocks}, D={self.step_overhead()}" + \
            ("" if self.input_kind == "spikes" else f", F={self.inputs}")

    def cycles_per_step(self, active: int | None = None) -> int:
        """Issue-to-issue cycles of one time step (``active`` spikes for ``spikes`` inputs)."""
        terms = self.inputs if self.input_kind == "values" else int(active)
        return self.blocks * (1 + terms) + self.step_overhead()

    def _gather(self, m, take):
        """The time step's input vector, assembled from ``in_groups`` beats (beat ``g`` at
        bits ``[g·lanes·w, …)``); ``(vector, full, last)``. ``take`` empties it.

        With ``feedback`` the vector continues with the recurrent spikes of the previous step
        (as ``input_width``-bit 0/1 values for ``values`` inputs), gathered from ``f_axis``;
        a step is full when both parts are, and the first step of a sample takes zeros
        instead (so it waits for no feedback). A feedback step with ``tlast`` (a sample's
        last step, which no step follows) is dropped when it is complete."""
        if self.feedback is None:
            return self._gather_stream(m, take, self.s_axis, self.in_lanes, self.in_groups,
                                       self.input_width)
        forward, forward_full, last = self._gather_stream(
            m, take, self.s_axis, self.in_lanes, self.in_groups, self.input_width)
        lanes, groups = self.feedback
        spikes, spikes_full, spikes_last = self._gather_stream(m, take, self.f_axis, lanes,
                                                               groups, 1)
        fresh = Signal(init=1)  # the next forward step is the first of its sample
        with m.If(take):
            m.d.sync += fresh.eq(last)
        # a complete step with tlast is dropped: empty the gather again at once
        with m.If(spikes_full & spikes_last):
            m.d.sync += spikes_full.eq(0)
        usable = spikes_full & ~spikes_last
        pad = self.input_width - 1
        values = Cat(Cat(spikes[n] & ~fresh, Const(0, pad)) if pad else spikes[n] & ~fresh
                     for n in range(len(spikes)))
        full = Signal()
        m.d.comb += full.eq(forward_full & (fresh | usable))
        return Cat(forward, values), full, last

    def _gather_stream(self, m, take, stream, lanes, groups, width):
        """One input stream gathered into a vector of ``groups`` beats; ``take`` empties it
        (the vector is consumed); ``(vector, full, last)``."""
        beat_bits = lanes * width
        in_groups = groups
        vector = Signal(beat_bits * in_groups, reset_less=True)
        full, last = Signal(), Signal()
        count = Signal(range(in_groups))
        m.d.comb += stream.tready.eq(~full)
        with m.If(take):
            m.d.sync += full.eq(0)
        with m.If(stream.tvalid & ~full):
            if in_groups == 1:
                m.d.sync += vector.eq(stream.tdata)
            else:
                m.d.sync += vector.eq(Cat(vector[beat_bits:], stream.tdata))
            with m.If(count == in_groups - 1):
                m.d.sync += [count.eq(0), full.eq(1), last.eq(stream.tlast)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
        return vector, full, last

    def _spike_search(self, m, vector, work, take, busy, bias_op):
        """The active spikes of a block pass, lowest index first, one per cycle: ``(index,
        more)``, the input a term operation visits and whether another operation of the block
        follows this one.

        The spikes are searched in words of :data:`SEARCH_WORD` bits: the loop clears the
        lowest set bit of one word (``w ← w & (w − 1)``) and, when the word has no other
        spike, loads the next non-empty word (a mask of those, made when the step is taken,
        skips empty words at no cost). The loop is thus as short for 1,024 inputs as for 16
        (Fmax); the first word of every block pass is prepared when the step is taken, in
        the block's bias-operation cycle."""
        width = min(SEARCH_WORD, 1 << index_bits(self.inputs))
        count = -(-self.inputs // width)

        def words(bits):
            return [bits[k * width:(k + 1) * width] for k in range(count)]

        def select(bits, which):
            padded = Cat(bits, Const(0, count * width - len(bits)))
            return padded if count == 1 else padded.word_select(which, width)

        # The block pass's first word, prepared from the gathered vector when it is taken.
        nonempty = Cat(w.any() for w in words(vector))
        any_first, _, first_index = _lowest_set(nonempty)
        first_any = Signal()
        first_word = Signal(width, reset_less=True)
        first_word_index = Signal(range(count), reset_less=True)
        first_pending = Signal(count, reset_less=True)
        with m.If(take):
            m.d.sync += [first_any.eq(any_first), first_word.eq(select(vector, first_index)),
                         first_word_index.eq(first_index),
                         first_pending.eq(nonempty & (nonempty - 1))]

        word = Signal(width, reset_less=True)
        word_index = Signal(range(count), reset_less=True)
        pending = Signal(count, reset_less=True)  # the non-empty words not yet searched
        _, word_many, lowest = _lowest_set(word)
        pending_any, _, next_index = _lowest_set(pending)
        with m.If(busy):
            with m.If(bias_op):
                m.d.sync += [word.eq(first_word), word_index.eq(first_word_index),
                             pending.eq(first_pending)]
            with m.Elif(word_many):
                m.d.sync += word.eq(word & (word - 1))
            with m.Else():
                m.d.sync += [word.eq(select(work, next_index)), word_index.eq(next_index),
                             pending.eq(pending & (pending - 1))]
        index = Cat(lowest, word_index) if count > 1 else lowest
        more = Mux(bias_op, first_any, word_many | pending_any)
        return index, more

    def _engine(self, m, free, base_zero, carry=None):
        """Gather, sequencer and accumulators. ``free``: the results of a finished step can be
        stored (the step may start); ``base_zero(first_step)``: whether a block's bias
        operation starts from zero (else it adds to the accumulators, or with ``carry``, one
        signal per accumulator, to those signals: the readout's saturated logits). Returns
        ``(done, accumulators, done_block, step_last)``: ``done`` is set for one cycle when
        block ``done_block``'s results sit in ``accumulators`` (its last operation has been
        added); ``step_last`` is the step's tlast."""
        take = Signal()
        vector, full, in_last = self._gather(m, take)

        # Sequencer: one operation per cycle while a step is issued.
        busy, in_flight = Signal(), Signal()
        step_last, first_step = Signal(), Signal(init=1)  # first step of a sample
        work = Signal(len(vector), reset_less=True)
        block = Signal(range(self.blocks))
        bias_op = Signal()  # the next operation is the block's bias operation
        m.d.comb += take.eq(full & ~busy & ~in_flight & free)
        with m.If(take):
            m.d.sync += [work.eq(vector), busy.eq(1), in_flight.eq(1), block.eq(0),
                         bias_op.eq(1), step_last.eq(in_last)]

        issue, last_op = Signal(), Signal()
        if self.input_kind == "spikes":
            index, more = self._spike_search(m, vector, work, take, busy, bias_op)
        else:
            index = Signal(range(self.inputs + 1))
            with m.If(take):
                m.d.sync += index.eq(0)
            with m.Elif(busy & ~bias_op):
                m.d.sync += index.eq(Mux(last_op, 0, index + 1))
            more = bias_op | (index != self.inputs - 1)
        m.d.comb += [issue.eq(busy), last_op.eq(~more)]
        with m.If(busy):
            m.d.sync += bias_op.eq(0)
            with m.If(last_op):
                m.d.sync += bias_op.eq(1)
                with m.If(block == self.blocks - 1):
                    m.d.sync += busy.eq(0)
                with m.Else():
                    m.d.sync += block.eq(block + 1)

        # Tables: read one cycle after the issue cycle, data one cycle later.
        weights_words, weights_width = self.tables["weights"]
        bias_words, bias_word_width = self.tables["bias"]
        m.submodules.weights = weights = TableROM(
            weights_words, weights_width, storage=self.weight_storage,
            init_file=self.init_files.get("weights"))
        m.submodules.bias = bias = TableROM(bias_words, bias_word_width,
                                            storage=self.weight_storage,
                                            init_file=self.init_files.get("bias"))
        # Operation pipeline: valid, bias operation, base zero, last operation, block. The
        # issued operation is registered first (with its table address), so that the spike
        # search and the address adder do not share a cycle with the table read (Fmax).
        def stage(values, name):
            registers = [Signal.like(v, name=f"{name}_{n}") for n, v in enumerate(values)]
            m.d.sync += [r.eq(v) for r, v in zip(registers, values)]
            return registers

        ops = [issue, bias_op, base_zero(first_step) & bias_op, last_op & issue, block]
        ops = stage(ops, "op0")
        # word b·2^k + i: the address is the block above the input index, no adder (Fmax)
        input_index = Signal(index_bits(self.inputs))
        m.d.comb += input_index.eq(index)
        address, index0 = stage([Cat(input_index, block), index], "address")
        m.d.comb += [weights.addr.eq(address), weights.en.eq(1),
                     bias.addr.eq(ops[4]), bias.en.eq(1)]
        ops = stage(ops, "op1")
        acc_shape = signed(self.accumulator_width)
        if self.input_kind == "spikes":
            # The row is registered after the table (a block RAM read has no output register
            # in this mapping, and its clock-to-out plus the adder made the critical path).
            terms = []
            for p in range(self.parallel):
                term = Signal(signed(self.weight_width), reset_less=True, name=f"term{p}")
                m.d.sync += term.eq(weights.data.word_select(p, self.weight_width))
                terms.append(term)
            biases = Signal(bias_word_width, reset_less=True, name="biases_s2")
            m.d.sync += biases.eq(bias.data)
            ops = stage(ops, "op2")
        else:
            # The table word is registered (a block RAM's output register), then each
            # multiplier's operands (its input registers) and its product (its output
            # register): no path runs through a block RAM's or a multiplier's unregistered
            # output (Fmax; see hw/ecp5_registers.py for how ECP5 gets these registers).
            x = Signal(signed(self.input_width), reset_less=True)
            x_word = Signal(signed(self.input_width), reset_less=True)
            word = Signal(weights_width, reset_less=True)
            m.d.sync += [x.eq(work.word_select(index0, self.input_width).as_signed()),
                         x_word.eq(x), word.eq(weights.data)]
            terms = []
            for p in range(self.parallel):
                operand_w = Signal(signed(self.weight_width), reset_less=True, name=f"w{p}")
                operand_x = Signal(signed(self.input_width), reset_less=True, name=f"x{p}")
                product = Signal(signed(self.weight_width + self.input_width),
                                 reset_less=True, name=f"product{p}")
                # the product is registered twice: in the multiplier, then in the fabric
                # beside it, so the route from a DSP block to the accumulators has a cycle
                product_near = Signal.like(product, name=f"product_near{p}")
                m.d.sync += [operand_w.eq(word.word_select(p, self.weight_width)),
                             operand_x.eq(x_word), product.eq(operand_w * operand_x),
                             product_near.eq(product)]
                terms.append(product_near)
            biases = bias.data
            for n in (2, 3, 4, 5):
                delayed = Signal(bias_word_width, reset_less=True, name=f"biases_s{n}")
                m.d.sync += delayed.eq(biases)
                biases = delayed
                ops = stage(ops, f"op{n}")
        valid, is_bias, zero, last, op_block = ops

        # Accumulators: bias operations start a block (from zero or from the block's
        # accumulators), term operations add.
        accumulators = [Signal(acc_shape, name=f"acc{p}") for p in range(self.parallel)]
        for p, (acc, term) in enumerate(zip(accumulators, terms)):
            addend = Mux(is_bias, biases.word_select(p, self.bias_width).as_signed(), term)
            base = acc if carry is None else Mux(is_bias, carry[p], acc)
            with m.If(valid):
                m.d.sync += acc.eq(Mux(zero, 0, base) + addend)
        done, done_block = Signal(), Signal(range(self.blocks))
        m.d.sync += [done.eq(valid & last), done_block.eq(op_block)]
        with m.If(done & (done_block == self.blocks - 1)):
            m.d.sync += [in_flight.eq(0), first_step.eq(step_last)]
        return done, accumulators, done_block, step_last


class SynapseEngine(_AccumulatorEngine):
    """A fully connected layer feeding a neuron core: ``U = sat(round_shift(W·a + b, shift))``.

    Parameters: the integer ``weight`` ``[outputs, inputs]`` (``weight_width`` bits) and
    ``bias``; ``shift`` and ``out_width`` as in
    :class:`~spikeforge.golden.network_int.IntegerSynapse`; ``input_kind`` with
    ``input_width``, ``in_lanes`` and ``in_groups`` (the input stream: ``in_lanes`` inputs per
    beat, ``in_groups`` beats per time step; the network input is one beat of every feature);
    ``input_bound`` (largest ``|a|``); ``out_lanes`` (the next core's lanes); ``parallel``
    accumulators (``values``: multipliers) working at once; table storage as the cores'.

    Latency and throughput: see the module docstring; :meth:`cycles_per_step`. The results
    of a step are emitted while the next step is computed (two result registers).

    Members:
        s_axis: input; a step's beats carry inputs ``g·in_lanes … g·in_lanes+in_lanes−1``;
            ``tlast`` on the last beat of a sample.
        m_axis: ``out_lanes`` signed ``out_width``-bit outputs per beat, ``outputs/out_lanes``
            beats per time step in output order, ``tlast`` on the sample's last beat.
        f_axis: (``recurrent`` given) the layer's own spikes, as its core emits them
            (``out_lanes`` per beat): step ``t`` feeds step ``t + 1``; ``A = W·a + V·s + b``
            with ``V = recurrent`` (``[outputs, outputs]``), the weight table's columns after
            the forward inputs.
    """

    def __init__(self, weight, bias, *, weight_width: int, shift: int, out_width: int,
                 input_kind: str, input_width: int = 1, in_lanes: int, in_groups: int = 1,
                 input_bound: int = 1, out_lanes: int, parallel: int,
                 weight_storage: str = "baked", init_files: dict | None = None,
                 recurrent=None):
        weight = np.asarray(weight, dtype=np.int64)
        feedback = None
        if recurrent is not None:
            recurrent = np.asarray(recurrent, dtype=np.int64)
            if recurrent.shape != (weight.shape[0], weight.shape[0]):
                raise ValueError(f"SynapseEngine: recurrent must be [outputs, outputs] = "
                                 f"{[weight.shape[0]] * 2}, got {list(recurrent.shape)}")
            weight = np.concatenate([weight, recurrent], axis=1)
            feedback = (operator.index(out_lanes), weight.shape[0] // operator.index(out_lanes))
            input_bound = max(operator.index(input_bound), 1)
        self.shift = operator.index(shift)
        self.out_width = operator.index(out_width)
        self.out_lanes = operator.index(out_lanes)
        if self.out_width < 2:
            raise ValueError(f"SynapseEngine: out_width must be >= 2, got {self.out_width}")
        if self.out_lanes < 1 or weight.shape[0] % self.out_lanes:
            raise ValueError(f"SynapseEngine: out_lanes ({self.out_lanes}) must divide the "
                             f"{weight.shape[0]} outputs")
        stored = stored_bias(bias, self.shift)
        bound = int(np.abs(weight).sum(axis=1).max()) * operator.index(input_bound) + \
            int(np.abs(stored).max())
        super().__init__("SynapseEngine", weight, stored, weight_width=weight_width,
                         input_kind=input_kind, input_width=input_width, in_lanes=in_lanes,
                         in_groups=in_groups, parallel=parallel, accumulator_bound=bound,
                         weight_storage=weight_storage, init_files=init_files,
                         output_members={"m_axis": Out(AXIStreamSignature(
                             self.out_lanes * self.out_width))}, feedback=feedback)
        self.out_groups = self.outputs // self.out_lanes

    def _output(self, value):
        """``sat(value >> shift)`` (or ``<< −shift``), the rounding half already added. The
        value fits ``out_width`` bits when all bits from the output's sign bit up are equal:
        a reduction of a few LUTs, not two comparisons along carry chains (Fmax)."""
        shifted = value >> self.shift if self.shift > 0 else value << -self.shift
        if len(shifted) <= self.out_width:  # always fits: sign-extend
            return Cat(shifted, shifted[-1].replicate(self.out_width - len(shifted)))
        head = shifted[self.out_width - 1:]
        lo, hi = signed_range(self.out_width)
        return Mux(head.all() | ~head.any(), shifted,
                   Mux(shifted[-1], lo, hi))[:self.out_width]

    def elaborate(self, platform):
        m = Module()
        slot_width = self.parallel * self.out_width
        results = Signal(self.outputs * self.out_width, reset_less=True)
        results_full, results_last = Signal(), Signal()
        emit = Signal(len(results), reset_less=True)
        emit_full, emit_last = Signal(), Signal()
        emit_group = Signal(range(self.out_groups))
        handoff = results_full & ~emit_full
        done, accumulators, done_block, step_last = self._engine(
            m, ~results_full, lambda first_step: Const(1, 1))
        with m.If(done):
            for b in range(self.blocks):
                with m.If(done_block == b):
                    m.d.sync += results[b * slot_width:(b + 1) * slot_width].eq(
                        Cat(self._output(acc) for acc in accumulators))
            with m.If(done_block == self.blocks - 1):
                m.d.sync += [results_full.eq(1), results_last.eq(step_last)]
        beat = self.out_lanes * self.out_width
        with m.If(handoff):
            m.d.sync += [emit.eq(results), emit_full.eq(1), emit_last.eq(results_last),
                         results_full.eq(0), emit_group.eq(0)]
        with m.Elif(self.m_axis.tvalid & self.m_axis.tready):
            m.d.sync += emit.eq(emit >> beat)
            with m.If(emit_group == self.out_groups - 1):
                m.d.sync += emit_full.eq(0)
            with m.Else():
                m.d.sync += emit_group.eq(emit_group + 1)
        m.d.comb += [self.m_axis.tdata.eq(emit[:beat]), self.m_axis.tvalid.eq(emit_full),
                     self.m_axis.tlast.eq(emit_last & (emit_group == self.out_groups - 1))]
        return m


#: ``mean_membrane``: ``Z = Σ_t (R·S_t + r)``; ``last_membrane``: ``Z = R·S_{T−1} + r``.
READOUT_KINDS = ("mean_membrane", "last_membrane")


class Readout(_AccumulatorEngine):
    """The readout: logits ``Z`` from the last core's spikes, then the class (first maximal
    index, as ``numpy.argmax``). No multiplier: spikes select weight rows.

    ``max_steps`` sizes ``Z`` for ``mean_membrane`` (the sum of up to ``max_steps`` steps):
    ``logit_width`` = :func:`~spikeforge.golden.network_int.readout_logit_width`, one more
    than the largest sum, so no sample of up to ``max_steps`` steps reaches either end of the
    range. A longer sample never wraps: after every step a logit is saturated to the range
    end it passed and then stays there for the rest of the sample (sticky), exactly as
    :func:`~spikeforge.golden.network_int.saturating_sum`; a logit at ``−2^(w−1)`` or
    ``2^(w−1) − 1`` therefore says "this sample overflowed the readout". The accumulators
    are one step's bound wider than the logits, and each step starts from the saturated
    logits (``carry``), so they cannot overflow whatever the sample's length.
    The argmax (:attr:`argmax_cycles` per sample, a pipelined tree of comparisons) runs while
    the next sample is accumulated.

    Members:
        s_axis: spikes of the last core, ``in_lanes`` per beat, ``in_groups`` beats per step.
        m_axis: one beat per sample: ``tdata`` the class, ``tuser`` the logits (signed
            ``logit_width`` bits each, class ``k`` at ``[k·w, (k+1)·w)``), ``tlast`` = 1.
    """

    def __init__(self, weight, bias, *, weight_width: int, kind: str, in_lanes: int,
                 in_groups: int, max_steps: int, weight_storage: str = "baked",
                 init_files: dict | None = None):
        if kind not in READOUT_KINDS:
            raise ValueError(f"Readout: kind must be one of {READOUT_KINDS}, got {kind!r}")
        self.kind = kind
        self.max_steps = operator.index(max_steps)
        if self.max_steps < 1:
            raise ValueError(f"Readout: max_steps must be >= 1, got {self.max_steps}")
        weight = np.asarray(weight, dtype=np.int64)
        step_bound = readout_step_bound(weight, bias)
        classes = weight.shape[0]
        self.class_width = max(1, (classes - 1).bit_length())
        self.logit_width = readout_logit_width(weight, bias, kind, self.max_steps)
        # mean_membrane: a step starts from saturated logits and adds at most one step's bound
        bound = step_bound if kind == "last_membrane" else \
            (1 << (self.logit_width - 1)) + step_bound
        super().__init__("Readout", weight, bias, weight_width=weight_width,
                         input_kind="spikes", input_width=1, in_lanes=in_lanes,
                         in_groups=in_groups, parallel=classes,
                         accumulator_bound=bound, weight_storage=weight_storage,
                         init_files=init_files,
                         output_members={"m_axis": Out(AXIStreamSignature(
                             self.class_width, user_width=classes * self.logit_width))})

    @staticmethod
    def _saturate(value, width):
        """``value`` clipped to the signed ``width``-bit range: in range when every bit from
        the result's sign bit up is equal (a reduction, not two comparisons)."""
        if len(value) <= width:
            return value.as_signed()
        head = value[width - 1:]
        lo, hi = signed_range(width)
        return Mux(head.all() | ~head.any(), value[:width].as_signed(),
                   Mux(value[-1], lo, hi))

    @property
    def argmax_cycles(self) -> int:
        """Cycles from a sample's logits entering the argmax to its output beat: the held
        logits register, two per tree level, the output register."""
        return 2 * (self.outputs - 1).bit_length() + 2

    def elaborate(self, platform):
        m = Module()
        classes, width = self.outputs, self.logit_width
        logits = Signal(classes * width, reset_less=True)
        logits_full = Signal()  # a sample's logits wait for the argmax
        out_full = Signal()
        mean = self.kind == "mean_membrane"
        if mean:
            # Sticky saturation (golden.network_int.saturating_sum): the logits after each
            # step, saturated; a logit at a range end stays. The next step starts from them.
            held = [Signal(signed(width), reset_less=True, name=f"held{k}")
                    for k in range(classes)]
            fresh = Signal(init=1)  # the step that ends is the first of its sample
            done, accumulators, _, step_last = self._engine(
                m, ~logits_full, lambda first_step: first_step, carry=held)
            lo, hi = signed_range(width)
            ended = []
            for k, (acc, keep) in enumerate(zip(accumulators, held)):
                stuck = ~fresh & ((keep == lo) | (keep == hi))
                value = Signal(signed(width), name=f"ended{k}")
                m.d.comb += value.eq(Mux(stuck, keep, self._saturate(acc, width)))
                ended.append(value)
            with m.If(done):
                m.d.sync += [keep.eq(value) for keep, value in zip(held, ended)]
                m.d.sync += fresh.eq(step_last)
        else:
            done, accumulators, _, step_last = self._engine(
                m, ~logits_full, lambda first_step: Const(1, 1))
            ended = [acc[:width] for acc in accumulators]
        with m.If(done & step_last):
            m.d.sync += [logits.eq(Cat(ended)), logits_full.eq(1)]

        # Argmax over the held logits: a tree of comparisons, two cycles per level, with no
        # loop (Fmax). A right-hand node (higher classes) wins only when strictly greater, so
        # ties keep the first index. One sample is in the tree at a time; the output register
        # is empty whenever one enters, so nothing has to stall.
        busy = Signal()
        out_logits = Signal(len(logits), reset_less=True)
        countdown = Signal(range(self.argmax_cycles))
        with m.If(logits_full & ~busy & ~out_full):
            m.d.sync += [busy.eq(1), countdown.eq(self.argmax_cycles - 2),
                         out_logits.eq(logits), logits_full.eq(0)]
        nodes = [(out_logits.word_select(k, width).as_signed(), Const(k, self.class_width))
                 for k in range(classes)]
        def register(value, shape):
            reg = Signal(shape, reset_less=True)
            m.d.sync += reg.eq(value)
            return reg

        while len(nodes) > 1:
            merged = []
            for n in range(0, len(nodes), 2):
                # Two cycles per level: the comparison, then the selection.
                value, index = nodes[n]
                if n + 1 == len(nodes):
                    merged.append((register(register(value, signed(width)), signed(width)),
                                   register(register(index, self.class_width),
                                            self.class_width)))
                    continue
                right_value, right_index = nodes[n + 1]
                # the comparison split at half width: two short carry chains in parallel,
                # each the sign of one subtraction (Yosys maps its own ">" to a carry chain
                # followed by a LUT carry tree, the network's critical path on ECP5)
                half = width // 2
                high_greater = register(_less(value[half:].as_signed(),
                                              right_value[half:].as_signed()), 1)
                high_equal = register(right_value[half:] == value[half:], 1)
                low_greater = register(_less(Cat(value[:half], Const(0, 1)).as_signed(),
                                             Cat(right_value[:half], Const(0, 1)).as_signed()),
                                       1)
                right = high_greater | (high_equal & low_greater)
                value, index, right_value, right_index = (
                    register(value, signed(width)), register(index, self.class_width),
                    register(right_value, signed(width)),
                    register(right_index, self.class_width))
                merged.append((register(Mux(right, right_value, value), signed(width)),
                               register(Mux(right, right_index, index), self.class_width)))
            nodes = merged
        best_index = nodes[0][1]
        with m.If(busy):
            m.d.sync += countdown.eq(countdown - 1)
            with m.If(countdown == 0):
                m.d.sync += [busy.eq(0), out_full.eq(1)]
        with m.If(self.m_axis.tvalid & self.m_axis.tready):
            m.d.sync += out_full.eq(0)
        m.d.comb += [self.m_axis.tvalid.eq(out_full), self.m_axis.tdata.eq(best_index),
                     self.m_axis.tuser.eq(out_logits), self.m_axis.tlast.eq(1)]
        return m
