// y = sub ? a - b : a + b (mod 2^WIDTH), the sign chosen at run time: the adder of a signed
// adder tree whose addends are never inverted (hw/prf.py). spikeforge appends this module to
// the Verilog that uses it, renamed after that Verilog's top module.
//
// Portable form: one adder, b inverted and a carry in where sub. Defining
// SPIKEFORGE_ECP5_CARRY (`spikeforge synth` does for ECP5 targets) builds the same sum from
// ECP5 CCU2C carry cells whose LUTs take the inversion, so no LUT sits outside the chain:
// each bit's propagate is a ^ b ^ sub (INIT: C = sub, D = 1) and its generate is a
// (INIT[3:0]). The chain's first bit only makes the carry in: a = sub, b = 0 propagates 0
// and generates sub (an ECP5 chain cannot take its first carry from a LUT otherwise).
module spikeforge_add_sub #(
    parameter integer WIDTH = 1
) (
    input  wire [WIDTH-1:0] a,
    input  wire [WIDTH-1:0] b,
    input  wire             sub,
    output wire [WIDTH-1:0] y
);
`ifdef SPIKEFORGE_ECP5_CARRY
    localparam integer CELLS = WIDTH / 2 + 1;  // WIDTH + 1 bits, two per cell
    wire [2*CELLS-1:0] chain_a = {a, sub};
    wire [2*CELLS-1:0] chain_b = {b, 1'b0};
    wire [2*CELLS-1:0] sum;
    wire [CELLS:0] carry;
    assign carry[0] = 1'b0;
    genvar i;
    generate
        for (i = 0; i < CELLS; i = i + 1) begin : cell
            CCU2C #(
                .INIT0(16'h96AA), .INIT1(16'h96AA), .INJECT1_0("NO"), .INJECT1_1("NO")
            ) ccu2c (
                .CIN(carry[i]),
                .A0(chain_a[2*i]), .B0(chain_b[2*i]), .C0(sub), .D0(1'b1),
                .A1(chain_a[2*i+1]), .B1(chain_b[2*i+1]), .C1(sub), .D1(1'b1),
                .S0(sum[2*i]), .S1(sum[2*i+1]), .COUT(carry[i+1])
            );
        end
    endgenerate
    assign y = sum[WIDTH:1];
`else
    assign y = a + (b ^ {WIDTH{sub}}) + sub;
`endif
endmodule
