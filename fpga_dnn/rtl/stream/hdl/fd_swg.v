// fd_swg: sliding-window generator with line buffers (Verilog-2005).
//
// Input: an activation stream, one pixel (C elements of EW bits, channel c at [c*EW +: EW]) per
// beat, H*W pixels per frame in row-major order; frames follow each other with no reset.
// Output: one beat per output pixel, OH = (H+PT+PB-KH)/SH + 1 rows by OW = (W+PL+PR-KW)/SW + 1
// columns in row-major order, carrying the KH*KW*C window elements: element
// (kh*KW + kw)*C + c at m_tdata[((kh*KW + kw)*C + c)*EW +: EW], kh = 0 the top row of the
// window. Positions in the padding carry PAD_VALUE (0 as hls4ml pads convolutions).
//
// Parameters
//   H, W        input rows and columns (1-D: H = 1, KH = 1, SH = 1, PT = PB = 0).
//   C           channels per pixel.        EW  bits per element.
//   KH, KW      kernel rows and columns.   SH, SW  strides.
//   PT, PL, PB, PR  zero padding at the top, left, bottom, right ('same' padding as Keras/hls4ml:
//               total = max(K - S, 0) or the residue rule, split with the extra one at the
//               bottom/right; the caller computes them).
//   PAD_VALUE   element value placed in padding positions (EW low bits of the integer); a max
//               pool over signed data uses the most negative value.
//   LB_STYLE    line-buffer memory: 0 auto, 1 block RAM, 2 distributed (LUTRAM).
// Ports
//   clk, rst                                  clock; synchronous active-high reset (restarts the
//                                             frame).
//   s_tdata[C*EW-1:0], s_tvalid, s_tready     pixels in.
//   m_tdata[KH*KW*C*EW-1:0], m_tvalid, m_tready windows out.
// How it works: the generator walks the padded image, Hp = H+PT+PB rows by Wp = W+PL+PR
// columns, one position per step. A step at a padding position takes no input. Each step shifts
// one column into a KH x KW window register: the current pixel at the bottom and the KH-1 pixels
// above it, which come from a (KH-1)*C*EW-bit wide, Wp-deep line-buffer memory (one read and
// one write per step, synchronous read prefetched one step ahead). The window whose bottom-right
// corner is the step's position is output when the position lies on the stride grid.
// Timing: one step per cycle while input is available (or the step is padding) and the output
// is free or being taken: a frame takes exactly Hp*Wp cycles when fed and drained without
// stalls (frames back to back: Hp*Wp cycles per frame in steady state). The window of a step is
// valid on the cycle after the step. s_tready depends combinationally on m_tready.
module fd_swg #(
    parameter integer H = 4,
    parameter integer W = 4,
    parameter integer C = 1,
    parameter integer EW = 8,
    parameter integer KH = 3,
    parameter integer KW = 3,
    parameter integer SH = 1,
    parameter integer SW = 1,
    parameter integer PT = 0,
    parameter integer PL = 0,
    parameter integer PB = 0,
    parameter integer PR = 0,
    parameter integer PAD_VALUE = 0,
    parameter integer LB_STYLE = 0
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire [C*EW-1:0]         s_tdata,
    input  wire                    s_tvalid,
    output wire                    s_tready,
    output wire [KH*KW*C*EW-1:0]   m_tdata,
    output wire                    m_tvalid,
    input  wire                    m_tready
);
    localparam integer HP = H + PT + PB;
    localparam integer WP = W + PL + PR;
    localparam integer PX = C * EW;                  // bits per pixel
    localparam integer RB = (HP > 1) ? $clog2(HP) : 1;
    localparam integer CB = (WP > 1) ? $clog2(WP) : 1;
    localparam integer SRB = (SH > 1) ? $clog2(SH) : 1;
    localparam integer SCB = (SW > 1) ? $clog2(SW) : 1;
    localparam integer LBW = (KH > 1) ? (KH - 1) * PX : 1;

    reg [RB-1:0]  r;
    reg [CB-1:0]  c;
    reg [SRB-1:0] rph;
    reg [SCB-1:0] cph;
    reg           ovalid;
    reg [KH*KW*PX-1:0] win;

    wire is_pad = ((PT > 0) && (r < PT)) || (r >= PT + H) || ((PL > 0) && (c < PL)) || (c >= PL + W);
    wire is_out = (r >= KH - 1) && (c >= KW - 1) && (rph == 0) && (cph == 0);
    wire free = !ovalid || m_tready;
    wire adv = free && (is_pad || s_tvalid);
    wire row_end = (c == WP - 1);
    wire frame_end = row_end && (r == HP - 1);
    wire [CB-1:0] c_next = row_end ? {CB{1'b0}} : c + 1'b1;

    assign s_tready = free && !is_pad;
    assign m_tvalid = ovalid;
    assign m_tdata = win;

    wire [EW-1:0] pad_el = PAD_VALUE;
    wire [PX-1:0] pad_px = {C{pad_el}};
    wire [PX-1:0] pix = is_pad ? pad_px : s_tdata;

    // column entering the window: col[kh], kh = KH-1 the current row
    wire [KH*PX-1:0] col;
    wire [LBW-1:0]   lb_rd;   // slot j = row r-1-j at column c
    wire [LBW-1:0]   lb_wr;   // slot 0 = row r, slot j = row r-j
    assign col[(KH-1)*PX +: PX] = pix;
    genvar k, j;
    generate
    for (k = 0; k < KH - 1; k = k + 1) begin : g_col
        assign col[k*PX +: PX] = lb_rd[(KH-2-k)*PX +: PX];
    end
    if (KH > 1) begin : g_lbw
        if (KH > 2) begin : g_sh
            assign lb_wr = {lb_rd[0 +: (KH-2)*PX], pix};
        end else begin : g_one
            assign lb_wr = pix;
        end
    end else begin : g_nolb
        assign lb_wr = 1'b0;
    end
    endgenerate

    // line buffer: Wp words, one read (prefetch of the next step's column) and one write per step
    generate
    if (KH == 1) begin : g_nobuf
        assign lb_rd = 1'b0;
    end else if (WP == 1) begin : g_regbuf
        reg [LBW-1:0] q;
        always @(posedge clk) if (adv) q <= lb_wr;
        assign lb_rd = q;
    end else begin : g_membuf
        reg [LBW-1:0] q;
        assign lb_rd = q;
        if (LB_STYLE == 1) begin : g_block
            (* ram_style = "block" *) reg [LBW-1:0] mem [0:WP-1];
            always @(posedge clk) if (adv) begin
                mem[c] <= lb_wr;
                q <= mem[c_next];
            end
        end else if (LB_STYLE == 2) begin : g_dist
            (* ram_style = "distributed" *) reg [LBW-1:0] mem [0:WP-1];
            always @(posedge clk) if (adv) begin
                mem[c] <= lb_wr;
                q <= mem[c_next];
            end
        end else begin : g_auto
            reg [LBW-1:0] mem [0:WP-1];
            always @(posedge clk) if (adv) begin
                mem[c] <= lb_wr;
                q <= mem[c_next];
            end
        end
    end
    endgenerate

    // window shift register: pixel (kh, kw) at win[(kh*KW + kw)*PX +: PX]
    generate
    for (k = 0; k < KH; k = k + 1) begin : g_wr
        for (j = 0; j < KW; j = j + 1) begin : g_wc
            if (j < KW - 1) begin : g_shift
                always @(posedge clk) if (adv) win[(k*KW + j)*PX +: PX] <= win[(k*KW + j + 1)*PX +: PX];
            end else begin : g_in
                always @(posedge clk) if (adv) win[(k*KW + j)*PX +: PX] <= col[k*PX +: PX];
            end
        end
    end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            r <= {RB{1'b0}};
            c <= {CB{1'b0}};
            rph <= {SRB{1'b0}};
            cph <= {SCB{1'b0}};
            ovalid <= 1'b0;
        end else begin
            if (adv) begin
                ovalid <= is_out;
                c <= c_next;
                if (row_end) begin
                    cph <= {SCB{1'b0}};
                    r <= frame_end ? {RB{1'b0}} : r + 1'b1;
                    if (frame_end) rph <= {SRB{1'b0}};
                    else if (r >= KH - 1) rph <= (rph == SH - 1) ? {SRB{1'b0}} : rph + 1'b1;
                end else if (c >= KW - 1) begin
                    cph <= (cph == SW - 1) ? {SCB{1'b0}} : cph + 1'b1;
                end
            end else if (m_tready) begin
                ovalid <= 1'b0;
            end
        end
    end
endmodule
