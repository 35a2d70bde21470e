"""spikeforge: parallel spiking neurons from PyTorch training to verified FPGA hardware.

Sub-packages: :mod:`spikeforge.golden` (PyTorch and bit-exact integer models),
:mod:`spikeforge.hw` (Amaranth generators), :mod:`spikeforge.sim` (cocotb + Verilator
co-simulation) and :mod:`spikeforge.sw` (the ``spikeforge`` command line).
"""

__version__ = "0.1.0"
