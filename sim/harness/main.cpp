// spikeforge fast co-simulation harness: the C++ main of a Verilator model whose top is the
// Verilog testbench `spikeforge_harness` (sim/harness.py writes it). The testbench does all the
// work at clock edges (stimulus from a file, seeded random handshakes, output beats to a
// file); this loop only toggles the clock until the testbench calls $finish, so no Python runs
// during the simulation.
#include <memory>

#include "Vharness.h"
#include "verilated.h"

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    context->commandArgs(argc, argv);  // +seed=…, +verilator+rand+reset+2, …
    const std::unique_ptr<Vharness> top{new Vharness{context.get(), "harness"}};
    top->clk = 0;
    top->eval();
    while (!context->gotFinish()) {
        context->timeInc(5);
        top->clk = 1;
        top->eval();
        context->timeInc(5);
        top->clk = 0;
        top->eval();
    }
    top->final();
    return 0;
}
