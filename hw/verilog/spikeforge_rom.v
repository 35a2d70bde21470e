// Synchronous-read ROM whose contents come from a $readmemh file, so that weight tables can
// change without regenerating the core. One word per line, hexadecimal, address 0 first.
// INIT_FILE resolves from the simulator's or synthesis tool's working directory.
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
        if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
        data = {WIDTH{1'b0}};
    end
    always @(posedge clk) begin
        if (en) data <= mem[addr];
    end
endmodule
