// fd_requant: per-element ap_fixed cast of accumulators (Verilog-2005).
//
// For each of N elements (an fd_cast each): y = cast(acc), exactly as ap_fixed assigns a value of the accumulator
// type to the output type (fpga_dnn/rtl/precision.py::quantize_np): the accumulator integer
// (value * 2^acc_frac) is divided by 2^SHIFT (SHIFT = acc_frac - out_frac), rounded by ROUND,
// then brought into the OW-bit range by SAT.
//
// Parameters
//   N        elements per beat.
//   AW       accumulator bits per element (input element n at s_tdata[n*AW +: AW]).
//   ISIGNED  1: accumulators are two's complement (default); 0: unsigned.
//   SHIFT    acc_frac - out_frac; > 0 drops SHIFT fraction bits with rounding, <= 0 shifts
//            left by -SHIFT (exact).
//   OW       output bits per element (output element n at m_tdata[n*OW +: OW]).
//   OSIGNED  1: signed output range [-2^(OW-1), 2^(OW-1)-1]; 0: unsigned [0, 2^OW-1].
//   ROUND    0 TRN (floor), 1 RND (ties up), 2 RND_CONV (ties to even), 3 RND_ZERO (ties to
//            zero), 4 RND_INF (ties away from zero), 5 RND_MIN_INF (ties down),
//            6 TRN_ZERO (truncate towards zero).
//   SAT      0 WRAP (keep the OW low bits), 1 SAT (clip to the range), 2 SAT_SYM (clip to
//            [-max, max] when signed: the most negative value becomes -max, as ap_fixed does),
//            3 SAT_ZERO (0 when out of range).
//   RELU     1: negative accumulators become 0 before the cast (ReLU fused into the cast).
//   REG      1: one register stage with a valid/ready handshake (default); 0: combinational
//            (m_tvalid = s_tvalid, s_tready = m_tready).
// Ports
//   clk, rst                  clock, synchronous active-high reset.
//   s_tdata[N*AW-1:0], s_tvalid, s_tready   accumulators in.
//   m_tdata[N*OW-1:0], m_tvalid, m_tready   cast values out.
// Timing: one beat per cycle; latency REG cycles. With REG = 1, s_tready = !m_tvalid || m_tready.
module fd_requant #(
    parameter integer N = 1,
    parameter integer AW = 16,
    parameter integer SHIFT = 0,
    parameter integer OW = 8,
    parameter integer OSIGNED = 1,
    parameter integer ROUND = 0,
    parameter integer SAT = 0,
    parameter integer RELU = 0,
    parameter integer REG = 1,
    parameter integer ISIGNED = 1
) (
    input  wire              clk,
    input  wire              rst,
    input  wire [N*AW-1:0]   s_tdata,
    input  wire              s_tvalid,
    output wire              s_tready,
    output wire [N*OW-1:0]   m_tdata,
    output wire              m_tvalid,
    input  wire              m_tready
);

    wire [N*OW-1:0] y;

    genvar i;
    generate
    for (i = 0; i < N; i = i + 1) begin : g_el
        fd_cast #(.AW(AW), .ISIGNED(ISIGNED), .SHIFT(SHIFT), .OW(OW), .OSIGNED(OSIGNED), .ROUND(ROUND),
                  .SAT(SAT), .RELU(RELU))
            cast (.a(s_tdata[i*AW +: AW]), .y(y[i*OW +: OW]));
    end
    endgenerate

    generate
    if (REG != 0) begin : g_reg
        reg [N*OW-1:0] yr;
        reg            vr;
        assign s_tready = !vr || m_tready;
        always @(posedge clk) begin
            if (rst) vr <= 1'b0;
            else if (s_tready) vr <= s_tvalid;
            if (s_tready && s_tvalid) yr <= y;
        end
        assign m_tdata = yr;
        assign m_tvalid = vr;
    end else begin : g_comb
        assign s_tready = m_tready;
        assign m_tdata = y;
        assign m_tvalid = s_tvalid;
    end
    endgenerate
endmodule
