// fd_pool: max or sum pooling over a sliding window (Verilog-2005): fd_swg + per-channel reduce.
//
// Parameters
//   H, W, C, EW        input frame rows, columns, channels, bits per element.
//   ISIGNED            1: signed elements, 0: unsigned.
//   KH, KW, SH, SW     pool window and strides.
//   PT, PL, PB, PR     padding (as fd_swg). For MODE 0 padding never wins (it carries the most
//                      negative value of the element type); for MODE 1 it adds 0 (the caller's
//                      requant divides by the count its rule says).
//   MODE               0 = max (output EW bits per element), 1 = sum (output AW bits).
//   AW                 sum bits (two's complement, wrap-around); unused for MODE 0.
// Ports
//   clk, rst                                 clock; synchronous active-high reset.
//   s_tdata[C*EW-1:0], s_tvalid, s_tready    pixels in.
//   m_tdata[C*(MODE ? AW : EW)-1:0], m_tvalid, m_tready   pooled pixels out, row-major,
//                                            OH = (H+PT+PB-KH)/SH + 1 by OW likewise.
// Timing: as fd_swg (a frame takes (H+PT+PB)*(W+PL+PR) cycles when unobstructed) plus one
// register stage for the reduce.
module fd_pool #(
    parameter integer H = 4,
    parameter integer W = 4,
    parameter integer C = 1,
    parameter integer EW = 8,
    parameter integer ISIGNED = 0,
    parameter integer KH = 2,
    parameter integer KW = 2,
    parameter integer SH = 2,
    parameter integer SW = 2,
    parameter integer PT = 0,
    parameter integer PL = 0,
    parameter integer PB = 0,
    parameter integer PR = 0,
    parameter integer MODE = 0,
    parameter integer AW = 16
) (
    input  wire                              clk,
    input  wire                              rst,
    input  wire [C*EW-1:0]                   s_tdata,
    input  wire                              s_tvalid,
    output wire                              s_tready,
    output wire [C*((MODE != 0) ? AW : EW)-1:0] m_tdata,
    output wire                              m_tvalid,
    input  wire                              m_tready
);
    localparam integer OE = (MODE != 0) ? AW : EW;
    localparam integer KK = KH * KW;
    localparam integer PADV = (MODE == 0 && ISIGNED != 0) ? -(1 << (EW - 1)) : 0;

    wire [KK*C*EW-1:0] win;
    wire win_valid, win_ready;
    fd_swg #(.H(H), .W(W), .C(C), .EW(EW), .KH(KH), .KW(KW), .SH(SH), .SW(SW),
             .PT(PT), .PL(PL), .PB(PB), .PR(PR), .PAD_VALUE(PADV)) swg (
        .clk(clk), .rst(rst), .s_tdata(s_tdata), .s_tvalid(s_tvalid), .s_tready(s_tready),
        .m_tdata(win), .m_tvalid(win_valid), .m_tready(win_ready));

    wire [C*OE-1:0] y;
    genvar c, k;
    generate
    for (c = 0; c < C; c = c + 1) begin : g_ch
        wire [(KK+1)*OE-1:0] chain;     // chain[k] = reduce of window elements 0..k-1
        for (k = 0; k < KK; k = k + 1) begin : g_k
            wire [EW-1:0] e = win[(k*C + c)*EW +: EW];
            if (MODE == 0) begin : g_max
                if (k == 0) begin : g_first
                    assign chain[(k+1)*OE +: OE] = e;
                end else begin : g_next
                    wire [EW-1:0] m = chain[k*OE +: OE];
                    wire gt = ISIGNED ? ($signed(e) > $signed(m)) : (e > m);
                    assign chain[(k+1)*OE +: OE] = gt ? e : m;
                end
            end else begin : g_sum
                wire [OE-1:0] ex = ISIGNED ? {{(OE > EW ? OE - EW : 1){e[EW-1]}}, e} : {{(OE > EW ? OE - EW : 1){1'b0}}, e};
                if (k == 0) begin : g_first
                    assign chain[(k+1)*OE +: OE] = ex;
                end else begin : g_next
                    assign chain[(k+1)*OE +: OE] = chain[k*OE +: OE] + ex;
                end
            end
        end
        assign chain[0 +: OE] = {OE{1'b0}};
        assign y[c*OE +: OE] = chain[KK*OE +: OE];
    end
    endgenerate

    reg [C*OE-1:0] yr;
    reg            vr;
    assign win_ready = !vr || m_tready;
    always @(posedge clk) begin
        if (rst) vr <= 1'b0;
        else if (win_ready) vr <= win_valid;
        if (win_ready && win_valid) yr <= y;
    end
    assign m_tdata = yr;
    assign m_tvalid = vr;
endmodule
