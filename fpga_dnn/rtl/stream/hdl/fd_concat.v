// fd_concat: channel concatenation of two streams (Verilog-2005): output channel c is a[c] for
// c < N_A and b[c - N_A] after (Keras Concatenate(axis=-1) with channels_last).
//
// Parameters
//   N_A, N_B   channels of a and b.   EW  bits per element (both operands: cast them first).
// Ports
//   clk, rst                                     clock; synchronous active-high reset.
//   a_tdata[N_A*EW-1:0], a_tvalid, a_tready      operand a.
//   b_tdata[N_B*EW-1:0], b_tvalid, b_tready      operand b.
//   m_tdata[(N_A+N_B)*EW-1:0], m_tvalid, m_tready  concatenated pixels.
// Joins a beat of a with a beat of b; one register stage, a beat per cycle.
module fd_concat #(
    parameter integer N_A = 1,
    parameter integer N_B = 1,
    parameter integer EW = 8
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire [N_A*EW-1:0]       a_tdata,
    input  wire                    a_tvalid,
    output wire                    a_tready,
    input  wire [N_B*EW-1:0]       b_tdata,
    input  wire                    b_tvalid,
    output wire                    b_tready,
    output wire [(N_A+N_B)*EW-1:0] m_tdata,
    output wire                    m_tvalid,
    input  wire                    m_tready
);
    reg [(N_A+N_B)*EW-1:0] yr;
    reg                    vr;
    wire free = !vr || m_tready;
    assign a_tready = free && b_tvalid;
    assign b_tready = free && a_tvalid;
    always @(posedge clk) begin
        if (rst) vr <= 1'b0;
        else if (free) vr <= a_tvalid && b_tvalid;
        if (free && a_tvalid && b_tvalid) yr <= {b_tdata, a_tdata};
    end
    assign m_tdata = yr;
    assign m_tvalid = vr;
endmodule
