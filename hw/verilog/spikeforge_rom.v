// Synchronous-read ROM whose contents come from a $readmemh file, so that weight tables can
// change without regenerating the core. One word per line, hexadecimal, address 0 first.
//
// Where INIT_FILE is looked for: $readmemh resolves a relative path from the working
// directory of the simulator or synthesis tool, so by default the tool must run in the
// directory that holds the .hex files (otherwise Icarus prints "Unable to open", the ROM
// stays X and so do the handshakes that depend on it). Define SPIKEFORGE_MEM_DIR to read the
// files from anywhere: it is put in front of every INIT_FILE (end it with a slash), e.g.
//   (Icarus)    iverilog -g2012 -DSPIKEFORGE_MEM_DIR='"/abs/build/net/network/"' ...
//   (Verilator) verilator +define+SPIKEFORGE_MEM_DIR='"/abs/build/net/network/"' ...
//   (Questa)    vlog +define+SPIKEFORGE_MEM_DIR=\"/abs/build/net/network/\" ...
//   (Vivado)    xvlog -d SPIKEFORGE_MEM_DIR=\"/abs/build/net/network/\" ...   (then xsim)
// (shell quoting shown for sh/bash: the macro's value is a Verilog string literal).
`ifdef SPIKEFORGE_MEM_DIR
`define SPIKEFORGE_ROM_PATH(file) {`SPIKEFORGE_MEM_DIR, file}
`else
`define SPIKEFORGE_ROM_PATH(file) file
`endif
module spikeforge_rom #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 1,
    parameter integer ADDR_WIDTH = 1,
    parameter INIT_FILE = ""
) (
    input  wire                  clk,
    input  wire                  en,
    input  wire [ADDR_WIDTH-1:0] addr,
    output reg  [WIDTH-1:0]      data
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    initial begin
        if (INIT_FILE != "") $readmemh(`SPIKEFORGE_ROM_PATH(INIT_FILE), mem);
        data = {WIDTH{1'b0}};
    end
    always @(posedge clk) begin
        if (en) data <= mem[addr];
    end
endmodule
