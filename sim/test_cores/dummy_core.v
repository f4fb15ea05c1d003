// A stand-in for a da4ml core, to test the AXI-Stream shell before a real network exists.
//
// Same port shape as da4ml's NAME_wrapper: clk, flat `model_inp` (IN_ELEMENTS elements of
// IN_WIDTH bits, element i at [(i+1)*IN_WIDTH-1 : i*IN_WIDTH]) and flat `model_out`, no enable,
// valid or reset. It computes, for output element i,
//     out_i = (in_{i mod IN_ELEMENTS} * 3 + i) mod 2**OUT_WIDTH
// with in_j read as signed when IN_SIGNED, else unsigned — a function whose every output
// depends on the input and on its position, so misrouted lanes, beats or samples show up —
// and delays it by LATENCY register stages (0 = combinational), like a pipelined core.
// The Python reference is fpga_dnn.rtl.shell.dummy_core_reference.

`timescale 1 ns / 1 ps

/* verilator lint_off DECLFILENAME */
module fpga_dnn_dummy_core #(
    parameter integer IN_ELEMENTS  = 4,
    parameter integer IN_WIDTH     = 8,
    parameter integer IN_SIGNED    = 1,
    parameter integer OUT_ELEMENTS = 4,
    parameter integer OUT_WIDTH    = 12,
    parameter integer LATENCY      = 2
) (
    // verilator lint_off UNUSEDSIGNAL
    input  wire                              clk,
    // verilator lint_on UNUSEDSIGNAL
    input  wire [IN_ELEMENTS*IN_WIDTH-1:0]   model_inp,
    output wire [OUT_ELEMENTS*OUT_WIDTH-1:0] model_out
);
    localparam integer CALC = 34 + OUT_WIDTH;  // wide enough for in*3 + i without overflow

    reg [OUT_ELEMENTS*OUT_WIDTH-1:0] result;
    reg [CALC-1:0] x;
    integer i;
    always @* begin
        for (i = 0; i < OUT_ELEMENTS; i = i + 1) begin
            x = {CALC{1'b0}};
            x[IN_WIDTH-1:0] = model_inp[(i % IN_ELEMENTS)*IN_WIDTH +: IN_WIDTH];
            if (IN_SIGNED != 0 && x[IN_WIDTH-1])
                x[CALC-1:IN_WIDTH] = {(CALC-IN_WIDTH){1'b1}};
            x = x * 3 + {{(CALC-32){1'b0}}, i[31:0]};
            result[i*OUT_WIDTH +: OUT_WIDTH] = x[OUT_WIDTH-1:0];
        end
    end

    generate
        if (LATENCY == 0) begin : g_comb
            assign model_out = result;
        end else begin : g_pipe
            reg [OUT_ELEMENTS*OUT_WIDTH-1:0] stage [0:LATENCY-1];
            integer s;
            always @(posedge clk) begin
                stage[0] <= result;
                for (s = 1; s < LATENCY; s = s + 1) stage[s] <= stage[s-1];
            end
            assign model_out = stage[LATENCY-1];
        end
    endgenerate
endmodule
