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
// Structure and timing (the output is the same either way, sample for sample):
//   * Non-overlapping unpadded windows (SH == KH, SW == KW, no padding; global average pools,
//     2x2/2 max pools): sequential. One accumulator per (output column, channel), OW*C words
//     (registers when OW == 1, else LUT RAM), one add or compare per channel per input pixel;
//     a window's result leaves through the output register when its last pixel arrives. Sums
//     wrap in AW bits, so the order of the additions does not change them; max is order-free.
//     Rows/columns past the last whole window are taken and ignored (as fd_swg does). A frame
//     takes H*W cycles when unobstructed (one pixel a cycle, s_tready low only when a window's
//     last pixel meets a full, stalled output register); an output appears one cycle after its
//     window's last pixel. Why: the window form below reduces a whole window in one cycle, so
//     resnet8's 8x8 global pool over 64 channels was 63 adders x 64 channels (57,826 LUT).
//   * Otherwise: fd_swg builds each window and a per-channel tree reduces it in one cycle. Timing
//     as fd_swg (a frame takes (H+PT+PB)*(W+PL+PR) cycles when unobstructed) plus one register
//     stage for the reduce.
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
    localparam integer SEQ = (SH == KH && SW == KW && PT == 0 && PL == 0 && PB == 0 && PR == 0) ? 1 : 0;
    localparam integer OH = (H + PT + PB - KH) / SH + 1;
    localparam integer OW = (W + PL + PR - KW) / SW + 1;

    reg [C*OE-1:0] yr;
    reg            vr;
    assign m_tdata = yr;
    assign m_tvalid = vr;

    genvar c, k;
    generate
    if (SEQ != 0) begin : g_seq
        localparam integer RB = $clog2(H + 1), CB = $clog2(W + 1);
        localparam integer YB = (KH > 1) ? $clog2(KH) : 1, XB = (KW > 1) ? $clog2(KW) : 1;
        localparam integer OB = (OW > 1) ? $clog2(OW + 1) : 1;
        reg [RB-1:0] row;               // input pixel position in the frame
        reg [CB-1:0] col;
        reg [YB-1:0] ky;                // position inside its window
        reg [XB-1:0] kx;
        reg [OB-1:0] ox;                // its window's output column
        wire live  = (row < OH * KH) && (col < OW * KW);
        wire first = (ky == 0) && (kx == 0);
        wire last  = (ky == KH - 1) && (kx == KW - 1);
        wire emit  = live && last;
        assign s_tready = !emit || !vr || m_tready;
        wire take = s_tvalid && s_tready;

        wire [C*OE-1:0] cur, nxt;
        if (OW == 1) begin : g_one
            reg [C*OE-1:0] acc;
            assign cur = acc;
            always @(posedge clk) if (take && live && !last) acc <= nxt;
        end else begin : g_line
            (* ram_style = "distributed" *) reg [C*OE-1:0] acc [0:OW-1];
            assign cur = acc[ox];
            always @(posedge clk) if (take && live && !last) acc[ox] <= nxt;
        end
        for (c = 0; c < C; c = c + 1) begin : g_ch
            wire [EW-1:0] e = s_tdata[c*EW +: EW];
            if (MODE == 0) begin : g_max
                wire [EW-1:0] m = cur[c*OE +: OE];
                wire gt = ISIGNED ? ($signed(e) > $signed(m)) : (e > m);
                assign nxt[c*OE +: OE] = (first || gt) ? e : m;
            end else begin : g_sum
                wire [OE-1:0] ex = ISIGNED ? {{(OE > EW ? OE - EW : 1){e[EW-1]}}, e} : {{(OE > EW ? OE - EW : 1){1'b0}}, e};
                assign nxt[c*OE +: OE] = first ? ex : cur[c*OE +: OE] + ex;
            end
        end

        always @(posedge clk) begin
            if (rst) begin
                row <= {RB{1'b0}};
                col <= {CB{1'b0}};
                ky <= {YB{1'b0}};
                kx <= {XB{1'b0}};
                ox <= {OB{1'b0}};
                vr <= 1'b0;
            end else begin
                if (take && emit) vr <= 1'b1;
                else if (m_tready) vr <= 1'b0;
                if (take) begin
                    if (col == W - 1) begin
                        col <= {CB{1'b0}};
                        kx <= {XB{1'b0}};
                        ox <= {OB{1'b0}};
                        if (row == H - 1) begin
                            row <= {RB{1'b0}};
                            ky <= {YB{1'b0}};
                        end else begin
                            row <= row + 1'b1;
                            ky <= (ky == KH - 1) ? {YB{1'b0}} : ky + 1'b1;
                        end
                    end else begin
                        col <= col + 1'b1;
                        if (kx == KW - 1) begin
                            kx <= {XB{1'b0}};
                            ox <= ox + 1'b1;
                        end else begin
                            kx <= kx + 1'b1;
                        end
                    end
                end
            end
            if (take && emit) yr <= nxt;
        end
    end else begin : g_win
        wire [KK*C*EW-1:0] win;
        wire win_valid, win_ready;
        fd_swg #(.H(H), .W(W), .C(C), .EW(EW), .KH(KH), .KW(KW), .SH(SH), .SW(SW),
                 .PT(PT), .PL(PL), .PB(PB), .PR(PR), .PAD_VALUE(PADV)) swg (
            .clk(clk), .rst(rst), .s_tdata(s_tdata), .s_tvalid(s_tvalid), .s_tready(s_tready),
            .m_tdata(win), .m_tvalid(win_valid), .m_tready(win_ready));

        wire [C*OE-1:0] y;
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

        assign win_ready = !vr || m_tready;
        always @(posedge clk) begin
            if (rst) vr <= 1'b0;
            else if (win_ready) vr <= win_valid;
            if (win_ready && win_valid) yr <= y;
        end
    end
    endgenerate
endmodule
