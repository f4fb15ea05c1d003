// fd_add: element-wise sum of two streams after aligning their grids (Verilog-2005).
//
// y[n] = (a[n] << SHIFT_A) + (b[n] << SHIFT_B) in AW-bit two's-complement wrap-around (choose
// AW so the exact sum fits; an fd_requant casts it afterwards).
//
// Parameters
//   N                      elements per beat.
//   AW_A, SHIFT_A, SIGNED_A  bits of a's elements, left shift (>= 0) onto the common grid,
//                          1: signed / 0: unsigned.
//   AW_B, SHIFT_B, SIGNED_B  the same for b.
//   AW                     output bits per element.
// Ports
//   clk, rst                                      clock; synchronous active-high reset.
//   a_tdata[N*AW_A-1:0], a_tvalid, a_tready       operand a.
//   b_tdata[N*AW_B-1:0], b_tvalid, b_tready       operand b.
//   m_tdata[N*AW-1:0], m_tvalid, m_tready         sums.
// Joins: a beat of a and a beat of b are taken together (each ready waits for the other's
// valid). One register stage, a beat per cycle.
module fd_add #(
    parameter integer N = 1,
    parameter integer AW_A = 8,
    parameter integer SHIFT_A = 0,
    parameter integer AW_B = 8,
    parameter integer SHIFT_B = 0,
    parameter integer AW = 16,
    parameter integer SIGNED_A = 1,
    parameter integer SIGNED_B = 1
) (
    input  wire              clk,
    input  wire              rst,
    input  wire [N*AW_A-1:0] a_tdata,
    input  wire              a_tvalid,
    output wire              a_tready,
    input  wire [N*AW_B-1:0] b_tdata,
    input  wire              b_tvalid,
    output wire              b_tready,
    output wire [N*AW-1:0]   m_tdata,
    output wire              m_tvalid,
    input  wire              m_tready
);
    localparam integer XA = (AW > AW_A + SHIFT_A) ? AW : AW_A + SHIFT_A;
    localparam integer XB = (AW > AW_B + SHIFT_B) ? AW : AW_B + SHIFT_B;
    wire [N*AW-1:0] y;
    genvar i;
    generate
    for (i = 0; i < N; i = i + 1) begin : g_el
        wire [AW_A-1:0] ar = a_tdata[i*AW_A +: AW_A];
        wire [AW_B-1:0] br = b_tdata[i*AW_B +: AW_B];
        wire signed [AW_A:0] av = SIGNED_A ? {ar[AW_A-1], ar} : {1'b0, ar};
        wire signed [AW_B:0] bv = SIGNED_B ? {br[AW_B-1], br} : {1'b0, br};
        wire signed [XA:0] ax = av;
        wire signed [XB:0] bx = bv;
        wire [XA:0] as = ax <<< SHIFT_A;
        wire [XB:0] bs = bx <<< SHIFT_B;
        assign y[i*AW +: AW] = as[AW-1:0] + bs[AW-1:0];
    end
    endgenerate
    reg [N*AW-1:0] yr;
    reg            vr;
    wire free = !vr || m_tready;
    assign a_tready = free && b_tvalid;
    assign b_tready = free && a_tvalid;
    always @(posedge clk) begin
        if (rst) vr <= 1'b0;
        else if (free) vr <= a_tvalid && b_tvalid;
        if (free && a_tvalid && b_tvalid) yr <= y;
    end
    assign m_tdata = yr;
    assign m_tvalid = vr;
endmodule
