// fd_stream_shell: AXI4-Stream (fpga_dnn-lanes-v1 beats) <-> pixel streams of a streaming core.
//
// The same beat layout as sim/axis_shell.v (normative text: fpga_dnn/runtime/packing.py):
// element i of a sample in lane i of LANE bits (8/16/32, the smallest holding the element),
// lanes back to back from bit 0 of a sample's first beat, a sample zero-padded to whole beats.
// For a streaming core the flat element order (h, w, c) is the pixel order, so:
//   * input: lanes are taken one element per cycle and grouped IN_C to a pixel beat
//     (core_s_*); the padding lanes after a sample's last element are dropped;
//   * output: pixel beats of OUT_C elements (core_m_*) are unpacked one element per cycle into
//     lanes (sign- or zero-extended), a beat is sent when full or when the sample ends;
//   * tkeep: as in sim/axis_shell.v, s_axis_tkeep is accepted and ignored (the host sends whole
//     beats: samples are padded to whole beats) and m_axis_tkeep is all ones (every output beat
//     is whole), so the DMA's S2MM channel gets a driven TKEEP;
//   * tlast: a flag per sample (its last input beat's tlast) travels in a FIFO of FLAGS entries
//     and marks the last output beat of that sample's result; input stalls while FLAGS samples
//     are in flight. Samples must be whole (the runtime always sends whole samples).
// Rates: one element per cycle each way, with no bubble between beats, pixels or samples:
// s_axis_tready depends combinationally on the core's s_tready (a new beat loads in the cycle
// the last one empties) and core_m_tready on m_axis_tready (a new pixel loads in the cycle the
// last one's final element moves into the output beat).
// Reset: synchronous active-low aresetn; `rst` (active high, registered) resets the core too.
`timescale 1 ns / 1 ps
/* verilator lint_off DECLFILENAME */
module fd_stream_shell #(
    parameter integer S_AXIS_BITS  = 64,
    parameter integer M_AXIS_BITS  = 64,
    parameter integer IN_ELEMENTS  = 1,   // elements per input sample
    parameter integer IN_WIDTH     = 8,   // bits per input element (1..32)
    parameter integer IN_C         = 1,   // elements per input pixel
    parameter integer OUT_ELEMENTS = 1,
    parameter integer OUT_WIDTH    = 8,
    parameter integer OUT_SIGNED   = 1,
    parameter integer OUT_C        = 1,
    parameter integer FLAGS        = 16   // samples in flight (tlast flags)
) (
    input  wire                        clk,
    input  wire                        aresetn,
    output reg                         rst,
    input  wire [S_AXIS_BITS-1:0]      s_axis_tdata,
    input  wire                        s_axis_tvalid,
    output wire                        s_axis_tready,
    input  wire                        s_axis_tlast,
    /* verilator lint_off UNUSEDSIGNAL */  // whole beats only (see tkeep above)
    input  wire [S_AXIS_BITS/8-1:0]    s_axis_tkeep,
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [M_AXIS_BITS-1:0]      m_axis_tdata,
    output wire                        m_axis_tvalid,
    input  wire                        m_axis_tready,
    output wire                        m_axis_tlast,
    output wire [M_AXIS_BITS/8-1:0]    m_axis_tkeep,
    output wire [IN_C*IN_WIDTH-1:0]    core_s_tdata,
    output wire                        core_s_tvalid,
    input  wire                        core_s_tready,
    input  wire [OUT_C*OUT_WIDTH-1:0]  core_m_tdata,
    input  wire                        core_m_tvalid,
    output wire                        core_m_tready
);
    localparam integer IN_LANE  = (IN_WIDTH  <= 8) ? 8 : (IN_WIDTH  <= 16) ? 16 : 32;
    localparam integer OUT_LANE = (OUT_WIDTH <= 8) ? 8 : (OUT_WIDTH <= 16) ? 16 : 32;
    localparam integer IN_LPB   = S_AXIS_BITS / IN_LANE;    // lanes per input beat
    localparam integer OUT_LPB  = M_AXIS_BITS / OUT_LANE;
    localparam integer FB       = (FLAGS <= 2) ? 1 : $clog2(FLAGS);

    always @(posedge clk) rst <= ~aresetn;

    // ---------------------------------------------------------------- tlast flags, per sample
    reg          flag_mem [0:FLAGS-1];
    reg [FB-1:0] flag_wr, flag_rd;
    reg [FB:0]   flag_n;
    wire         flag_push, flag_pop;
    wire         flag_room = flag_n < FLAGS;

    // ---------------------------------------------------------------- input: lanes -> pixels
    reg  [S_AXIS_BITS-1:0]   beat_q;
    reg                      beat_full, beat_last;
    reg  [31:0]              lane_i, elem_i, chan_i;
    reg  [IN_C*IN_WIDTH-1:0] pix_q;
    reg                      pix_full;
    wire                     pix_fire = pix_full & core_s_tready;
    wire                     take = beat_full & (~pix_full | pix_fire) & flag_room;
    wire                     sample_in_end = take & (elem_i == IN_ELEMENTS - 1);
    wire [IN_WIDTH-1:0]      lane_val = beat_q[lane_i*IN_LANE +: IN_WIDTH];
    // the beat's last element leaves this cycle: the next beat may load in the same cycle
    // (else every beat costs one bubble: 72 instead of 64 cycles for an 8x8 image in 8 beats)
    wire                     beat_done = take & ((elem_i == IN_ELEMENTS - 1) | (lane_i == IN_LPB - 1));

    assign s_axis_tready = ~rst & (~beat_full | beat_done);
    assign core_s_tdata  = pix_q;
    assign core_s_tvalid = pix_full;
    assign flag_push     = sample_in_end;

    always @(posedge clk) begin
        if (rst) begin
            beat_full <= 1'b0; beat_last <= 1'b0; lane_i <= 0; elem_i <= 0; chan_i <= 0; pix_full <= 1'b0;
        end else begin
            if (pix_fire) pix_full <= 1'b0;
            if (take) begin
                pix_q[chan_i*IN_WIDTH +: IN_WIDTH] <= lane_val;
                if (chan_i == IN_C - 1) begin chan_i <= 0; pix_full <= 1'b1; end
                else chan_i <= chan_i + 1;
                if (elem_i == IN_ELEMENTS - 1) begin
                    elem_i <= 0; beat_full <= 1'b0;          // the rest of the beat is padding
                end else begin
                    elem_i <= elem_i + 1;
                    if (lane_i == IN_LPB - 1) beat_full <= 1'b0;
                    else lane_i <= lane_i + 1;
                end
            end
            if (s_axis_tvalid & s_axis_tready) begin   // after `take`: a new beat wins
                beat_q <= s_axis_tdata; beat_full <= 1'b1; beat_last <= s_axis_tlast; lane_i <= 0;
            end
        end
    end

    // ---------------------------------------------------------------- output: pixels -> lanes
    reg  [OUT_C*OUT_WIDTH-1:0] opix_q;
    reg                        opix_full;
    reg  [31:0]                olane_i, oelem_i, ochan_i;
    reg  [M_AXIS_BITS-1:0]     obeat_q;
    reg                        obeat_full, obeat_last;
    wire                       obeat_fire = obeat_full & m_axis_tready;
    wire                       omove = opix_full & (~obeat_full | obeat_fire);
    wire [OUT_WIDTH-1:0]       oval = opix_q[ochan_i*OUT_WIDTH +: OUT_WIDTH];
    wire                       oext = (OUT_SIGNED != 0) & oval[OUT_WIDTH-1];
    wire [OUT_LANE+OUT_WIDTH-1:0] oext_val = {{OUT_LANE{oext}}, oval};
    wire [OUT_LANE-1:0]        olane_val = oext_val[OUT_LANE-1:0];
    wire                       sample_out_end = omove & (oelem_i == OUT_ELEMENTS - 1);
    // the pixel's last element leaves this cycle: the next pixel may load in the same cycle
    // (else every output pixel costs one bubble: 2 instead of 1 cycle per 1-element pixel)
    wire                       opix_done = omove & (ochan_i == OUT_C - 1);

    assign core_m_tready = ~opix_full | opix_done;
    assign m_axis_tdata  = obeat_q;
    assign m_axis_tvalid = obeat_full;
    assign m_axis_tlast  = obeat_last;
    assign m_axis_tkeep  = {(M_AXIS_BITS/8){1'b1}};
    assign flag_pop      = sample_out_end;

    integer b;
    always @(posedge clk) begin
        if (rst) begin
            opix_full <= 1'b0; olane_i <= 0; oelem_i <= 0; ochan_i <= 0; obeat_full <= 1'b0; obeat_last <= 1'b0;
        end else begin
            if (obeat_fire) obeat_full <= 1'b0;
            if (omove) begin
                if (olane_i == 0) begin
                    for (b = 0; b < M_AXIS_BITS; b = b + 1) obeat_q[b] <= 1'b0;
                end
                obeat_q[olane_i*OUT_LANE +: OUT_LANE] <= olane_val;
                if (ochan_i == OUT_C - 1) begin ochan_i <= 0; opix_full <= 1'b0; end
                else ochan_i <= ochan_i + 1;
                if (oelem_i == OUT_ELEMENTS - 1) begin
                    oelem_i <= 0; olane_i <= 0; obeat_full <= 1'b1; obeat_last <= flag_mem[flag_rd];
                end else begin
                    oelem_i <= oelem_i + 1;
                    if (olane_i == OUT_LPB - 1) begin olane_i <= 0; obeat_full <= 1'b1; obeat_last <= 1'b0; end
                    else olane_i <= olane_i + 1;
                end
            end
            // after `omove`: a new pixel wins over the one that just left
            if (core_m_tvalid & core_m_tready) begin opix_q <= core_m_tdata; opix_full <= 1'b1; end
        end
    end

    always @(posedge clk) begin
        if (rst) begin
            flag_wr <= 0; flag_rd <= 0; flag_n <= 0;
        end else begin
            if (flag_push) begin flag_mem[flag_wr] <= beat_last; flag_wr <= (flag_wr == FLAGS - 1) ? 0 : flag_wr + 1; end
            if (flag_pop) flag_rd <= (flag_rd == FLAGS - 1) ? 0 : flag_rd + 1;
            flag_n <= flag_n + (flag_push ? 1 : 0) - (flag_pop ? 1 : 0);
        end
    end
endmodule
