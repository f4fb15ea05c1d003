// fd_chanaffine: per-channel affine map y[c] = x[c]*scale[c] + bias[c] (Verilog-2005); for a
// BatchNormalization that is not folded into a weight layer. An fd_requant follows it.
//
// Parameters
//   N           channels (elements per beat).
//   IW, ISIGNED input element bits; 1: signed, 0: unsigned.
//   MW          scale bits (signed).
//   AW          output bits per element: y = x*scale + bias in AW-bit two's-complement
//               wrap-around (choose AW so that the exact result fits).
//   SCALE_FILE  $readmemh file: N lines, line c = scale[c] (MW-bit two's complement).
//   BIAS_FILE   $readmemh file: N lines, line c = bias[c] (AW-bit two's complement, on the
//               product's grid). Both written by memfiles.write_vector_memfile.
// Ports
//   clk, rst                                clock; synchronous active-high reset.
//   s_tdata[N*IW-1:0], s_tvalid, s_tready   pixels in (channel c at [c*IW +: IW]).
//   m_tdata[N*AW-1:0], m_tvalid, m_tready   pixels out (channel c at [c*AW +: AW]).
// Timing: one beat per cycle, one register stage (latency 1); s_tready = !m_tvalid || m_tready.
module fd_chanaffine #(
    parameter integer N = 1,
    parameter integer IW = 8,
    parameter integer ISIGNED = 1,
    parameter integer MW = 8,
    parameter integer AW = 24,
    parameter SCALE_FILE = "scale.mem",
    parameter BIAS_FILE = "bias.mem"
) (
    input  wire            clk,
    input  wire            rst,
    input  wire [N*IW-1:0] s_tdata,
    input  wire            s_tvalid,
    output wire            s_tready,
    output wire [N*AW-1:0] m_tdata,
    output wire            m_tvalid,
    input  wire            m_tready
);
    localparam integer PW = IW + 1 + MW;
    localparam integer EXW = (AW > PW) ? AW : PW;
    reg [MW-1:0] scale [0:N-1];
    reg [AW-1:0] bias [0:N-1];
    initial begin
        $readmemh(SCALE_FILE, scale);
        $readmemh(BIAS_FILE, bias);
    end

    wire [N*AW-1:0] y;
    genvar c;
    generate
    for (c = 0; c < N; c = c + 1) begin : g_ch
        wire [IW-1:0] xr = s_tdata[c*IW +: IW];
        wire signed [IW:0] xv = ISIGNED ? {xr[IW-1], xr} : {1'b0, xr};
        wire signed [MW-1:0] sv = scale[c];
        wire signed [PW-1:0] m = xv * sv;
        wire signed [EXW-1:0] mx = m;
        assign y[c*AW +: AW] = mx[AW-1:0] + bias[c];
    end
    endgenerate

    reg [N*AW-1:0] yr;
    reg            vr;
    assign s_tready = !vr || m_tready;
    always @(posedge clk) begin
        if (rst) vr <= 1'b0;
        else if (s_tready) vr <= s_tvalid;
        if (s_tready && s_tvalid) yr <= y;
    end
    assign m_tdata = yr;
    assign m_tvalid = vr;
endmodule
