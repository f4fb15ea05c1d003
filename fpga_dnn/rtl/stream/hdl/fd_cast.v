// fd_cast: one element's ap_fixed cast, combinational (Verilog-2005).
//
// y = cast(a), exactly as ap_fixed assigns a value of the accumulator type to the output type
// (fpga_dnn/rtl/precision.py::quantize_np): the integer a (value * 2^acc_frac) is divided by
// 2^SHIFT (SHIFT = acc_frac - out_frac), rounded by ROUND, then brought into the OW-bit range
// by SAT. The one implementation of the cast: fd_requant applies it per element of a beat,
// fd_mvu (RQ = 1) per PE lane as each output group finishes.
//
// Parameters (as fd_requant's)
//   AW       input bits; ISIGNED 1: two's complement, 0: unsigned.
//   SHIFT    acc_frac - out_frac; > 0 drops SHIFT fraction bits with rounding, <= 0 shifts
//            left by -SHIFT (exact).
//   OW       output bits; OSIGNED 1: signed range [-2^(OW-1), 2^(OW-1)-1], 0: [0, 2^OW-1].
//   ROUND    0 TRN, 1 RND, 2 RND_CONV, 3 RND_ZERO, 4 RND_INF, 5 RND_MIN_INF, 6 TRN_ZERO.
//   SAT      0 WRAP, 1 SAT, 2 SAT_SYM, 3 SAT_ZERO.
//   RELU     1: a negative input becomes 0 before the cast.
// Ports
//   a[AW-1:0] in, y[OW-1:0] out (no clock: the caller registers it).
module fd_cast #(
    parameter integer AW = 16,
    parameter integer ISIGNED = 1,
    parameter integer SHIFT = 0,
    parameter integer OW = 8,
    parameter integer OSIGNED = 1,
    parameter integer ROUND = 0,
    parameter integer SAT = 0,
    parameter integer RELU = 0
) (
    input  wire [AW-1:0] a,
    output wire [OW-1:0] y
);
    localparam integer SH = (SHIFT > 0) ? SHIFT : 0;    // bits dropped
    localparam integer LS = (SHIFT < 0) ? -SHIFT : 0;   // bits added on the right
    localparam integer XW = AW + 1 + SH;                // sign-extended input, room for >>> SH
    // value width after the shift and the rounding carry, wide enough for the output bounds
    localparam integer VW0 = AW + LS + 3;
    localparam integer VW = (VW0 > OW + 2) ? VW0 : OW + 2;

    wire signed [AW:0] ae = ISIGNED ? {a[AW-1], a} : {1'b0, a};
    wire signed [AW:0] ar = (RELU != 0 && ae[AW]) ? {(AW+1){1'b0}} : ae;
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
    assign y = yv;
endmodule
