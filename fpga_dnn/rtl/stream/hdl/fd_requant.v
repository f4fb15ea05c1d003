// fd_requant: per-element ap_fixed cast of accumulators (Verilog-2005).
//
// For each of N elements: y = cast(acc), exactly as ap_fixed assigns a value of the accumulator
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
    localparam integer SH = (SHIFT > 0) ? SHIFT : 0;    // bits dropped
    localparam integer LS = (SHIFT < 0) ? -SHIFT : 0;   // bits added on the right
    localparam integer XW = AW + 1 + SH;                // sign-extended input, room for >>> SH
    // value width after the shift and the rounding carry, wide enough for the output bounds
    localparam integer VW0 = AW + LS + 3;
    localparam integer VW = (VW0 > OW + 2) ? VW0 : OW + 2;

    wire [N*OW-1:0] y;

    genvar i;
    generate
    for (i = 0; i < N; i = i + 1) begin : g_el
        wire [AW-1:0] a_raw = s_tdata[i*AW +: AW];
        wire signed [AW:0] a = ISIGNED ? {a_raw[AW-1], a_raw} : {1'b0, a_raw};
        wire signed [AW:0] ar = (RELU != 0 && a[AW]) ? {(AW+1){1'b0}} : a;
        wire signed [XW-1:0] ax = ar;                       // sign-extended
        wire signed [VW-1:0] fl;                             // floor(value)
        wire qb, rr, s, lsb;
        if (SH > 0) begin : g_drop
            wire signed [XW-1:0] sh = ax >>> SH;
            assign fl = sh;                                  // sign-extends (VW > XW - SH)
            assign qb = ax[SH-1];                            // remainder >= 1/2
            if (SH > 1) begin : g_r
                assign rr = |ax[SH-2:0];                     // remainder > 1/2 given qb
            end else begin : g_nr
                assign rr = 1'b0;
            end
            assign lsb = ax[SH];
        end else begin : g_keep
            wire signed [VW-1:0] axw = ar;
            assign fl = axw <<< LS;
            assign qb = 1'b0;
            assign rr = 1'b0;
            assign lsb = 1'b0;
        end
        assign s = ar[AW];
        wire inc = (ROUND == 1) ? qb :
                   (ROUND == 2) ? (qb & (lsb | rr)) :
                   (ROUND == 3) ? (qb & (s | rr)) :
                   (ROUND == 4) ? (qb & (~s | rr)) :
                   (ROUND == 5) ? (qb & rr) :
                   (ROUND == 6) ? (s & (qb | rr)) : 1'b0;
        wire signed [VW-1:0] v = fl + {{(VW-1){1'b0}}, inc};
        // output bounds as VW-bit signed constants
        wire signed [VW-1:0] hi = OSIGNED ? {{(VW-OW+1){1'b0}}, {(OW-1){1'b1}}}
                                          : {{(VW-OW){1'b0}}, {OW{1'b1}}};
        wire signed [VW-1:0] lo = OSIGNED ? {{(VW-OW+1){1'b1}}, {(OW-1){1'b0}}}
                                          : {VW{1'b0}};
        wire signed [VW-1:0] lo_sym = OSIGNED ? -hi : {VW{1'b0}};
        wire over = v > hi;
        wire under = v < lo;
        wire [OW-1:0] yv = (SAT == 0) ? v[OW-1:0] :
                           (SAT == 1) ? (over ? hi[OW-1:0] : under ? lo[OW-1:0] : v[OW-1:0]) :
                           (SAT == 2) ? (over ? hi[OW-1:0] : (v < lo_sym) ? lo_sym[OW-1:0] : v[OW-1:0]) :
                                        ((over || under) ? {OW{1'b0}} : v[OW-1:0]);
        assign y[i*OW +: OW] = yv;
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
