"""The whole network as one accelerator: synapse engines, neuron cores and the readout,
chained by AXI4-Stream with FIFOs between them.

::

    s_axis ─▶ synapse 0 ─▶ FIFO ─▶ core 0 ─▶ FIFO ─▶ synapse 1 ─▶ FIFO ─▶ core 1 ─▶ … ─▶ FIFO ─▶ readout ─▶ m_axis
    (x_t)     (MAC)               (CPSN/PRF)         (spikes)                               (Z, argmax)

Every stage works on its own time step (and sample), so the throughput is that of the
slowest stage (:meth:`NetworkAccelerator.stage_cycles`), not of their sum. Every link is a
full valid/ready handshake: backpressure anywhere stalls the stages behind it and loses or
duplicates nothing.
"""

import operator

from amaranth import Cat, Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..golden.network_int import IntegerNetwork, core_model
from .cores import core_type, table_file
from ..golden.cpsn_config import CPSNConfig
from .stream import AXIStreamSignature
from .synapse import SYNAPSE_TABLES, Readout, SynapseEngine
from .tables import check_storage

__all__ = ["NetworkAccelerator", "NetworkError", "network_tables", "largest_divisor",
           "describe_network", "network_init_files"]


class NetworkError(ValueError):
    """The generator cannot build this network; the message names the layer."""


def largest_divisor(value: int, limit: int) -> int:
    """The largest divisor of ``value`` that is at most ``limit``."""
    return max(d for d in range(1, min(value, limit) + 1) if value % d == 0)


def _check_layer(layer) -> None:
    """A hidden layer's core must be a registered neuron kind (hw.cores, golden.network_int)
    that streams one time step per beat and emits spikes."""
    core = layer.core
    try:
        kind = core_type(core)
        steps = core_model(core).steps(core)
    except TypeError:
        raise NetworkError(f"layer {layer.name!r}: no core for a {type(core).__name__}") \
            from None
    if steps != 1:
        raise NetworkError(f"layer {layer.name!r}: the accelerator streams one time step per "
                           f"beat, but this {kind.neuron.upper()} core takes {steps} steps per "
                           f"beat; export with --prf-parallelism 1")
    if not getattr(core, "spiking", True):
        raise NetworkError(f"layer {layer.name!r}: a {core.variant!r} core emits no spikes "
                           f"and cannot feed the next synapse")


class NetworkAccelerator(wiring.Component):
    """An exported :class:`~spikeforge.golden.network_int.IntegerNetwork` in hardware,
    bit-exact with :meth:`IntegerNetwork.run` on every sample.

    Parameters:
        network: the integer network.
        max_steps: longest sample (time steps) the readout's logits are sized for.
        macs: multipliers of the first synapse engine (the largest divisor of its outputs not
            above this).
        spike_parallel: accumulators of each spike-input synapse engine (likewise).
        fifo_depth: places of each FIFO between two stages (0: direct connection).
        weight_storage: ``baked`` or ``file``; with ``file``, ``init_files`` maps each stage
            (``synapse_<layer>``, ``<layer>``, ``readout``) to its tables' files.
        arith: CPSN cores' datapath (``shift_add`` or ``multiply``).
        probes: add one output port pair per neuron layer, ``probe_<layer>__tdata`` (the
            core's output beat) and ``probe_<layer>__tvalid`` (a transfer this cycle), for
            co-simulation to find the first layer whose spikes differ; they add no logic.

    Members:
        s_axis: one time step per beat: feature ``f`` (signed ``input_width`` bits) at
            ``[f·W, (f+1)·W)``; ``tlast`` with the sample's last step.
        m_axis: one beat per sample: ``tdata`` the class, ``tuser`` the logits, ``tlast``.
    """

    def __init__(self, network: IntegerNetwork, *, max_steps: int, macs: int = 16,
                 spike_parallel: int = 64, fifo_depth: int = 4, weight_storage: str = "baked",
                 init_files: dict | None = None, arith: str = "shift_add",
                 probes: bool = False):
        if not isinstance(network, IntegerNetwork):
            raise TypeError(f"network must be an IntegerNetwork, got {type(network).__name__}")
        self.network = network
        self.max_steps = operator.index(max_steps)
        self.macs = operator.index(macs)
        self.spike_parallel = operator.index(spike_parallel)
        self.fifo_depth = operator.index(fifo_depth)
        if self.max_steps < 1 or self.macs < 1 or self.spike_parallel < 1 or self.fifo_depth < 0:
            raise ValueError("max_steps, macs and spike_parallel must be >= 1 and fifo_depth "
                             ">= 0")
        for layer in network.layers:
            _check_layer(layer)
        self.weight_storage, self.arith = weight_storage, arith
        tables = network_init_files(network, arith)
        self.stage_names = list(tables)
        self.init_files = check_storage(weight_storage, init_files, self.stage_names)
        for name, files in self.init_files.items():
            check_storage("file", files, tables[name])
        self.stages = self._build_stages()
        first = network.layers[0].synapse
        readout = self.stages["readout"]
        self.probes = bool(probes)
        probe_ports = {}
        if self.probes:
            for layer in network.layers:
                probe_ports[f"probe_{layer.name}__tdata"] = Out(layer.core.lanes)
                probe_ports[f"probe_{layer.name}__tvalid"] = Out(1)
        super().__init__({
            **probe_ports,
            "s_axis": In(AXIStreamSignature(first.inputs * network.input_width)),
            "m_axis": Out(AXIStreamSignature(readout.class_width,
                                             user_width=len(readout.m_axis.tuser))),
        })

    def _files(self, stage):
        return self.init_files.get(stage) if self.weight_storage == "file" else None

    def _build_stages(self) -> dict:
        net, stages = self.network, {}
        lanes, groups = net.layers[0].synapse.inputs, 1
        for index, layer in enumerate(net.layers):
            synapse, core = layer.synapse, layer.core
            values = index == 0
            parallel = largest_divisor(core.channels, self.macs if values else
                                       self.spike_parallel)
            try:
                stages[f"synapse_{layer.name}"] = SynapseEngine(
                    synapse.weight, synapse.bias, weight_width=synapse.weight_width,
                    shift=synapse.shift, out_width=synapse.out_width,
                    input_kind="values" if values else "spikes",
                    input_width=net.input_width if values else 1, in_lanes=lanes,
                    in_groups=groups, input_bound=synapse.input_bound, out_lanes=core.lanes,
                    parallel=parallel, weight_storage=self.weight_storage,
                    init_files=self._files(f"synapse_{layer.name}"),
                    recurrent=synapse.recurrent)
            except ValueError as exc:
                raise NetworkError(f"layer {layer.name!r} synapse: {exc}") from None
            options = {"arith": self.arith} if isinstance(core, CPSNConfig) else {}
            stages[layer.name] = core_type(core).component(
                core, weight_storage=self.weight_storage, init_files=self._files(layer.name),
                **options)
            lanes, groups = core.lanes, core.groups
        try:
            stages["readout"] = Readout(
                net.readout.weight, net.readout.bias, weight_width=net.readout.weight_width,
                kind=net.readout_kind, in_lanes=lanes, in_groups=groups,
                max_steps=self.max_steps, weight_storage=self.weight_storage,
                init_files=self._files("readout"))
        except ValueError as exc:
            raise NetworkError(f"readout: {exc}") from None
        return stages

    def _link(self, m, source, sink, name):
        """``source`` → FIFO → ``sink`` (data and tlast; tuser is not carried)."""
        if self.fifo_depth == 0:
            m.d.comb += [sink.tdata.eq(source.tdata), sink.tlast.eq(source.tlast),
                         sink.tvalid.eq(source.tvalid), source.tready.eq(sink.tready)]
            return
        width = len(source.tdata) + 1
        m.submodules[name] = queue = fifo.SyncFIFOBuffered(width=width, depth=self.fifo_depth)
        m.d.comb += [queue.w_data.eq(Cat(source.tdata, source.tlast)),
                     queue.w_en.eq(source.tvalid), source.tready.eq(queue.w_rdy),
                     Cat(sink.tdata, sink.tlast).eq(queue.r_data),
                     sink.tvalid.eq(queue.r_rdy), queue.r_en.eq(sink.tready)]

    def _fan_out(self, m, source, sinks, names):
        """``source`` → one FIFO per sink (a recurrent core feeds the next stage and its own
        synapse): a beat moves when every FIFO has room, into all of them at once."""
        depth = max(self.fifo_depth, 2)
        width = len(source.tdata) + 1
        queues = []
        for sink, name in zip(sinks, names):
            m.submodules[name] = queue = fifo.SyncFIFOBuffered(width=width, depth=depth)
            m.d.comb += [Cat(sink.tdata, sink.tlast).eq(queue.r_data),
                         sink.tvalid.eq(queue.r_rdy), queue.r_en.eq(sink.tready),
                         queue.w_data.eq(Cat(source.tdata, source.tlast))]
            queues.append(queue)
        room = Cat(q.w_rdy for q in queues).all()
        m.d.comb += source.tready.eq(room)
        for queue in queues:
            m.d.comb += queue.w_en.eq(source.tvalid & room)

    def elaborate(self, platform):
        m = Module()
        for name, stage in self.stages.items():
            m.submodules[name] = stage
        first = self.stages[self.stage_names[0]]
        m.d.comb += [first.s_axis.tdata.eq(self.s_axis.tdata),
                     first.s_axis.tvalid.eq(self.s_axis.tvalid),
                     first.s_axis.tlast.eq(self.s_axis.tlast),
                     self.s_axis.tready.eq(first.s_axis.tready)]
        recurrent = {layer.name for layer in self.network.layers if layer.recurrent}
        for source, sink in zip(self.stage_names, self.stage_names[1:]):
            if source in recurrent:
                self._fan_out(m, self.stages[source].m_axis,
                              [self.stages[sink].s_axis,
                               self.stages[f"synapse_{source}"].f_axis],
                              [f"fifo_{source}", f"fifo_{source}_recurrent"])
                continue
            self._link(m, self.stages[source].m_axis, self.stages[sink].s_axis,
                       f"fifo_{source}")
        readout = self.stages["readout"]
        wiring.connect(m, wiring.flipped(self.m_axis), readout.m_axis)
        if self.probes:
            for layer in self.network.layers:
                out = self.stages[layer.name].m_axis
                m.d.comb += [getattr(self, f"probe_{layer.name}__tdata").eq(out.tdata),
                             getattr(self, f"probe_{layer.name}__tvalid").eq(
                                 out.tvalid & out.tready)]
        return m


def _memory(tables: dict) -> dict:
    return {table: {"words": len(words), "word_width": width, "bits": len(words) * width}
            for table, (words, width) in tables.items()}


def describe_network(accelerator: "NetworkAccelerator", *, steps: int,
                     activity: dict | None = None) -> dict:
    """Every stage's shape, memories and cycles per time step (formula, the value at the
    given spike ``activity`` — layer name → firing rate, e.g. the export's measured rates —
    and the worst case, every input spiking), and the network's cycles per sample of
    ``steps`` time steps: ``steps`` times the slowest stage's cycles per step."""
    net, activity = accelerator.network, activity or {}
    tables = network_tables(accelerator)
    stages, previous = [], None
    for name in accelerator.stage_names:
        stage = accelerator.stages[name]
        entry = {"name": name, "memories": _memory(tables[name])}
        if isinstance(stage, (SynapseEngine, Readout)):
            rate = activity.get(previous, 0.5) if stage.input_kind == "spikes" else 1.0
            typical = round(rate * stage.inputs)
            gather = stage.in_groups + 1
            emit = stage.out_groups if isinstance(stage, SynapseEngine) else 0
            per_step = {
                "formula": f"max(G_in + 1, {stage.step_formula()}"
                           + (", G_out)" if emit else ")") + f", G_in={stage.in_groups}"
                           + (f", G_out={emit}" if emit else ""),
                "typical": max(gather, stage.cycles_per_step(typical), emit),
                "worst": max(gather, stage.cycles_per_step(stage.inputs), emit)}
            if stage.input_kind == "spikes":
                per_step["typical_active_spikes"] = typical
                per_step["firing_rate"] = rate
            entry.update(kind=("readout" if isinstance(stage, Readout) else
                               f"synapse ({stage.input_kind})"),
                         inputs=stage.inputs, outputs=stage.outputs,
                         parallel=stage.parallel, blocks=stage.blocks,
                         multipliers=stage.parallel if stage.input_kind == "values" else 0,
                         accumulator_width=stage.accumulator_width,
                         cycles_per_step=per_step)
            if isinstance(stage, Readout):
                entry.update(readout=stage.kind, argmax_cycles_per_sample=stage.argmax_cycles,
                             logit_width=stage.logit_width, max_steps=stage.max_steps,
                             # longer samples: sticky saturation at the range ends (mean),
                             # or nothing to overflow (last_membrane keeps one step)
                             overflow="saturate" if stage.kind == "mean_membrane" else "none")
            else:
                entry.update(out_width=stage.out_width, shift=stage.shift)
        else:
            config = stage.config
            entry.update(kind=core_type(config).neuron, channels=config.channels,
                         lanes=config.lanes, latency_cycles=stage.latency,
                         cycles_per_step={"formula": "G (one beat per clock)",
                                          "typical": config.groups, "worst": config.groups})
            previous = name
        stages.append(entry)
    slowest = max(stages, key=lambda e: e["cycles_per_step"]["typical"])
    worst = max(stages, key=lambda e: e["cycles_per_step"]["worst"])
    return {
        "stages": stages,
        "fifo_depth": accelerator.fifo_depth,
        "steps_per_sample": steps,
        "slowest_stage": slowest["name"],
        "cycles_per_sample": {
            "formula": "T x max over stages of cycles per step",
            "typical": steps * slowest["cycles_per_step"]["typical"],
            "worst": steps * worst["cycles_per_step"]["worst"]},
        "memory_bits": sum(m["bits"] for e in stages for m in e["memories"].values()),
        "multipliers": sum(e.get("multipliers", 0) for e in stages),
    }


def network_tables(accelerator: NetworkAccelerator) -> dict[str, dict[str, tuple]]:
    """``{stage: {table: (words, word_width)}}`` of every stage, and the file name of each
    (:func:`~spikeforge.hw.cores.table_file` of the stage name)."""
    result = {}
    for name, stage in accelerator.stages.items():
        if isinstance(stage, (SynapseEngine, Readout)):
            result[name] = stage.tables
        else:
            options = {"arith": accelerator.arith} if isinstance(stage.config, CPSNConfig) \
                else {}
            result[name] = core_type(stage.config).table_words(stage.config, **options)
    return result


def network_init_files(network: IntegerNetwork, arith: str = "shift_add") -> dict:
    """``{stage: {table: file name}}`` of a network built with ``file`` storage: each stage's
    tables as ``<stage>_<table>.hex`` (a core's are the export's file names)."""
    files = {}
    for layer in network.layers:
        files[f"synapse_{layer.name}"] = {t: table_file(f"synapse_{layer.name}", t)
                                          for t in SYNAPSE_TABLES}
        options = {"arith": arith} if isinstance(layer.core, CPSNConfig) else {}
        files[layer.name] = {t: table_file(layer.name, t)
                             for t in core_type(layer.core).table_names(layer.core, **options)}
    files["readout"] = {t: table_file("readout", t) for t in SYNAPSE_TABLES}
    return files
