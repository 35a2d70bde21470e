"""AXI4-Stream interfaces for the generated cores.

Member names follow the AXI4-Stream specification (``tdata``, ``tvalid``, ``tready``,
``tlast``, ``tuser``) so that the Verilog ports read ``s_axis__tdata`` etc. and connect to
vendor IP without a wrapper. A transfer happens on a clock edge where ``tvalid & tready``;
``tlast`` marks the final transfer of a sample.
"""

import operator

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXIStreamSignature"]


class AXIStreamSignature(wiring.Signature):
    """Source-side AXI4-Stream signature; use ``In(...)`` for a sink.

    Members:
        tdata: ``data_width`` bits of payload.
        tvalid: the source offers a transfer.
        tready: the sink accepts it (driven by the sink).
        tlast: final transfer of a sample.
        tuser: optional ``user_width`` sideband bits (left out when 0).
    """

    def __init__(self, data_width: int, user_width: int = 0):
        self.data_width = operator.index(data_width)
        self.user_width = operator.index(user_width)
        if self.data_width < 1:
            raise ValueError(f"data_width must be >= 1, got {self.data_width}")
        if self.user_width < 0:
            raise ValueError(f"user_width must be >= 0, got {self.user_width}")
        members = {
            "tdata": Out(self.data_width),
            "tvalid": Out(1),
            "tready": In(1),
            "tlast": Out(1),
        }
        if self.user_width:
            members["tuser"] = Out(self.user_width)
        super().__init__(members)

    def __eq__(self, other):
        return (isinstance(other, AXIStreamSignature) and self.data_width == other.data_width
                and self.user_width == other.user_width)

    def __repr__(self):
        return f"AXIStreamSignature({self.data_width}, user_width={self.user_width})"
