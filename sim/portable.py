"""A plain-Verilog handshake check of a generated design under Icarus Verilog, the way a user's
own testbench would drive it (no cocotb, whose drivers change inputs at time 0 and can hide
time-0 problems).

The testbench holds reset for three cycles, then offers input beats every cycle with
``m_axis__tready`` always high, and counts transfers on both sides. A handshake signal that
is X or Z after reset is reported with the cycle it happened in.
"""

import re
import shutil
import subprocess
from pathlib import Path

from .verilator import MissingToolError

__all__ = ["handshake_testbench", "run_icarus_handshakes"]


def handshake_testbench(top: str, ports: dict, beats: int, last_every: int) -> str:
    """Verilog testbench of ``top`` (its port table as in a core's JSON description): offers
    ``beats`` input beats of pseudo-random data, ``tlast`` on every ``last_every``-th."""
    def width(name):
        return ports[name]["width"]

    outputs = [name for name in ports if name.startswith("m_axis__") and
               name not in ("m_axis__tvalid", "m_axis__tready")]
    wires = "\n".join(f"  wire [{width(n) - 1}:0] {n};" for n in outputs)
    connections = ", ".join([".clk(clk)", ".rst(rst)", ".s_axis__tdata(tdata)",
                             ".s_axis__tvalid(tvalid)", ".s_axis__tready(tready)",
                             ".s_axis__tlast(tlast)", ".m_axis__tvalid(ovalid)",
                             ".m_axis__tready(1'b1)"] + [f".{n}({n})" for n in outputs])
    return f"""`timescale 1ns/1ps
module spikeforge_tb;
  reg clk = 0, rst = 1;
  reg [{width("s_axis__tdata") - 1}:0] tdata = 0;
  reg tvalid = 0, tlast = 0;
  wire tready, ovalid;
{wires}
  {top} dut({connections});
  always #5 clk = ~clk;
  integer sent = 0, received = 0, cycle = 0;
  always @(posedge clk) begin
    cycle <= cycle + 1;
    if (!rst) begin
      if (^{{tready, ovalid}} === 1'bx) begin
        $display("X_ON_HANDSHAKE cycle=%0d s_axis__tready=%b m_axis__tvalid=%b", cycle, tready,
                 ovalid);
        $finish;
      end
      if (tvalid && tready) begin
        sent <= sent + 1;
        tdata <= {{{-(-width("s_axis__tdata") // 32)}{{$random}}}};
        tlast <= ((sent + 2) % {last_every} == 0);
        if (sent + 1 == {beats}) tvalid <= 0;
      end
      if (ovalid) received <= received + 1;
    end
  end
  initial begin
    repeat (3) @(posedge clk);
    rst <= 0;
    tvalid <= 1;
    tlast <= ({last_every} == 1);
    repeat ({beats} * 40 + 2000) @(posedge clk);
    $display("DONE sent=%0d received=%0d", sent, received);
    $finish;
  end
endmodule
"""


def run_icarus_handshakes(sources: dict[str, str], top: str, ports: dict, work_dir, *,
                          beats: int, last_every: int, generation: str = "2012") -> dict:
    """Compile ``sources`` (file name → text, tables included) with the testbench under
    ``iverilog -g<generation>`` and run it; returns ``{"sent", "received", "x_cycle"}``
    (``x_cycle`` is None when no handshake went X)."""
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise MissingToolError("Icarus Verilog ('iverilog', 'vvp') is not on PATH; on Debian "
                               "or Ubuntu: apt-get install iverilog")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (work / name).write_text(text)
    (work / "tb.v").write_text(handshake_testbench(top, ports, beats, last_every))
    verilog = ["tb.v"] + [name for name in sources if name.endswith(".v")]
    subprocess.run(["iverilog", f"-g{generation}", "-o", "sim.vvp", *verilog], cwd=work,
                   check=True, capture_output=True, text=True)
    run = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=work, capture_output=True, text=True,
                         check=True)
    x = re.search(r"X_ON_HANDSHAKE cycle=(\d+)", run.stdout)
    done = re.search(r"DONE sent=(\d+) received=(\d+)", run.stdout)
    return {"x_cycle": int(x.group(1)) if x else None,
            "sent": int(done.group(1)) if done else None,
            "received": int(done.group(2)) if done else None}
