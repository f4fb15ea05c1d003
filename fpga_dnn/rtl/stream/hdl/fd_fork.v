// fd_fork: broadcast one stream to N_OUT streams (Verilog-2005); each input beat is delivered
// once to every output, the outputs may take it in different cycles.
//
// Parameters
//   WIDTH   bits per beat.   N_OUT  outputs (>= 1).
// Ports
//   clk, rst                                clock; synchronous active-high reset.
//   s_tdata[WIDTH-1:0], s_tvalid, s_tready  input.
//   m_tdata[WIDTH-1:0]                      the beat, shared by every output.
//   m_tvalid[N_OUT-1:0], m_tready[N_OUT-1:0] per-output handshakes.
// Timing: one register stage; a beat per cycle when every output takes it; the next beat is
// accepted in the cycle the last output takes the current one (s_tready depends combinationally
// on m_tready). m_tvalid never depends on m_tready.
module fd_fork #(
    parameter integer WIDTH = 8,
    parameter integer N_OUT = 2
) (
    input  wire              clk,
    input  wire              rst,
    input  wire [WIDTH-1:0]  s_tdata,
    input  wire              s_tvalid,
    output wire              s_tready,
    output wire [WIDTH-1:0]  m_tdata,
    output wire [N_OUT-1:0]  m_tvalid,
    input  wire [N_OUT-1:0]  m_tready
);
    reg [WIDTH-1:0] d;
    reg [N_OUT-1:0] pending;                 // outputs that still have to take d
    wire [N_OUT-1:0] left = pending & ~m_tready;
    assign s_tready = (left == {N_OUT{1'b0}});
    assign m_tdata = d;
    assign m_tvalid = pending;
    always @(posedge clk) begin
        if (rst) pending <= {N_OUT{1'b0}};
        else if (s_tready) pending <= s_tvalid ? {N_OUT{1'b1}} : {N_OUT{1'b0}};
        else pending <= left;
        if (s_tready && s_tvalid) d <= s_tdata;
    end
endmodule
