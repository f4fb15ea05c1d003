// fpga_dnn AXI4-Stream shell around a fixed-latency core with flat buses and no handshake.
//
// The core (da4ml's NAME_wrapper, or sim/test_cores/dummy_core.v) takes a whole sample on
// `core_inp` every cycle and produces its result CORE_LATENCY cycles later on `core_out`; it has
// no enable, valid or reset, so it can never stall. This shell:
//   * deserialises s_axis beats into one sample (beat layout below), holding it in a register
//     that drives `core_inp`;
//   * admits that sample into the core only when the output FIFO has room for everything in
//     flight (credit counting: `occupancy` counts samples admitted and not yet sent), so nothing
//     is lost when m_axis stalls;
//   * carries each sample's tlast through a shift register alongside the core pipeline;
//   * collects results in a FIFO of OUT_FIFO_DEPTH >= CORE_LATENCY + 2 entries and serialises them
//     onto m_axis.
// TKEEP: m_axis_tkeep is all ones (every output beat is whole: samples are padded to whole beats),
// so the DMA's S2MM channel gets a driven TKEEP instead of one IP integrator ties off.
// s_axis_tkeep is accepted and ignored: the host only sends whole beats (samples are padded to
// whole beats), so every byte of an input beat is data.
// The core is instantiated by a generated top (fpga_dnn.rtl.shell.render_axis_top), not
// here, so this file stays the same for every design.
//
// Beat layout (fpga_dnn-lanes-v1; the normative text is fpga_dnn/runtime/packing.py):
// element i of a sample sits in lane i of LANE bits (8/16/32, the smallest holding the element
// width), sign- or zero-extended, lanes little-endian and back to back from bit 0 of the first
// beat; a sample is zero-padded to whole beats, so every sample starts at a beat boundary. tlast
// marks the last beat of a frame (a DMA transfer of whole samples); the shell outputs tlast on
// the last beat of the result of the sample whose last beat carried tlast. A tlast before a
// sample's last beat ends the sample early (missing beats read as zero), which realigns framing.
//
// Latency, no stalls: from the edge accepting a sample's last input beat to the edge accepting
// its first output beat is CORE_LATENCY + 2 cycles (hold register, FIFO write; the spec's
// latency.total_cycles). Throughput: one sample every
// max(IN_BEATS, OUT_BEATS) cycles, i.e. one per cycle when both streams are a sample wide.
//
// Reset: synchronous, active-low `aresetn` (AXI convention); drops everything in flight.
// Verilog-2005, no vendor primitives: Verilator and Vivado both accept it.

`timescale 1 ns / 1 ps

/* verilator lint_off DECLFILENAME */
module fpga_dnn_axis_shell #(
    parameter integer S_AXIS_BITS  = 64,  // s_axis_tdata width, a multiple of 8
    parameter integer M_AXIS_BITS  = 64,  // m_axis_tdata width, a multiple of 8
    parameter integer IN_ELEMENTS  = 1,   // elements per input sample
    parameter integer IN_WIDTH     = 8,   // bits per input element on core_inp (1..32)
    parameter integer OUT_ELEMENTS = 1,   // elements per output sample
    parameter integer OUT_WIDTH    = 8,   // bits per output element on core_out (1..32)
    parameter integer OUT_SIGNED   = 1,   // 1: sign-extend output elements into lanes
    parameter integer CORE_LATENCY = 0    // core pipeline depth in cycles (0 = combinational)
) (
    input  wire                               clk,
    input  wire                               aresetn,
    // AXI4-Stream slave: samples in
    input  wire [S_AXIS_BITS-1:0]             s_axis_tdata,
    input  wire                               s_axis_tvalid,
    output wire                               s_axis_tready,
    input  wire                               s_axis_tlast,
    /* verilator lint_off UNUSEDSIGNAL */        // whole beats only (see TKEEP above)
    input  wire [S_AXIS_BITS/8-1:0]           s_axis_tkeep,
    /* verilator lint_on UNUSEDSIGNAL */
    // AXI4-Stream master: results out
    output wire [M_AXIS_BITS-1:0]             m_axis_tdata,
    output wire                               m_axis_tvalid,
    input  wire                               m_axis_tready,
    output wire                               m_axis_tlast,
    output wire [M_AXIS_BITS/8-1:0]           m_axis_tkeep,
    // the core's flat buses: element i at [(i+1)*WIDTH-1 : i*WIDTH]
    output wire [IN_ELEMENTS*IN_WIDTH-1:0]    core_inp,
    input  wire [OUT_ELEMENTS*OUT_WIDTH-1:0]  core_out
);

    // ------------------------------------------------------------------ derived sizes
    localparam integer IN_LANE   = (IN_WIDTH  <= 8) ? 8 : (IN_WIDTH  <= 16) ? 16 : 32;
    localparam integer OUT_LANE  = (OUT_WIDTH <= 8) ? 8 : (OUT_WIDTH <= 16) ? 16 : 32;
    localparam integer IN_BEATS  = (IN_ELEMENTS  * IN_LANE  + S_AXIS_BITS - 1) / S_AXIS_BITS;
    localparam integer OUT_BEATS = (OUT_ELEMENTS * OUT_LANE + M_AXIS_BITS - 1) / M_AXIS_BITS;
    localparam integer IN_BUF    = IN_BEATS  * S_AXIS_BITS;   // padded input sample
    localparam integer OUT_BUF   = OUT_BEATS * M_AXIS_BITS;   // padded output sample
    // FIFO depth: a power of two >= CORE_LATENCY + 2, enough for one admission per cycle while
    // results drain at one per cycle (see the credit check below).
    localparam integer FIFO_ABITS = (CORE_LATENCY + 2 <= 2) ? 1 : $clog2(CORE_LATENCY + 2);
    localparam integer OUT_FIFO_DEPTH = 1 << FIFO_ABITS;
    localparam integer IN_IDX_BITS  = (IN_BEATS  <= 1) ? 1 : $clog2(IN_BEATS);
    localparam integer OUT_IDX_BITS = (OUT_BEATS <= 1) ? 1 : $clog2(OUT_BEATS);
    // the same constants sized like the counters they are compared with
    /* verilator lint_off WIDTHTRUNC */
    localparam [IN_IDX_BITS-1:0]  IN_LAST_BEAT  = IN_BEATS - 1;
    localparam [OUT_IDX_BITS-1:0] OUT_LAST_BEAT = OUT_BEATS - 1;
    localparam [FIFO_ABITS:0]     FIFO_DEPTH_N  = OUT_FIFO_DEPTH;
    /* verilator lint_on WIDTHTRUNC */

    // The shell has been out of reset for a cycle: hold tready low during and right after reset.
    reg active_q;
    always @(posedge clk) active_q <= aresetn;

    // ------------------------------------------------------------------ input: beats -> sample
    reg  [IN_IDX_BITS-1:0] in_idx_q;     // beat index within the sample being assembled
    reg  [IN_BUF-1:0]      asm_q;        // beats 0..in_idx_q-1 of that sample
    /* verilator lint_off UNUSEDSIGNAL */  // lane extension bits and padding are ignored
    reg  [IN_BUF-1:0]      hold_q;       // a complete sample, driving core_inp
    /* verilator lint_on UNUSEDSIGNAL */
    reg                    hold_full_q;  // hold_q waits to be admitted into the core
    reg                    hold_last_q;  // its last beat carried tlast
    reg  [IN_BUF-1:0]      sample_next;  // asm_q plus the current beat, later beats zero
    wire                   credit_ok;    // the output FIFO can take one more sample
    wire                   admit = hold_full_q & credit_ok;  // core takes hold_q this cycle
    wire                   in_fire = s_axis_tvalid & s_axis_tready;
    wire                   in_ends_sample = (in_idx_q == IN_LAST_BEAT) | s_axis_tlast;

    // Accept a beat whenever a completed sample would find hold_q free: a registered-only
    // condition, so there is no combinational path from any input to s_axis_tready.
    assign s_axis_tready = active_q & (~hold_full_q | credit_ok);

    integer b;
    always @* begin
        for (b = 0; b < IN_BEATS; b = b + 1) begin
            if (b < {{(32-IN_IDX_BITS){1'b0}}, in_idx_q})
                sample_next[b*S_AXIS_BITS +: S_AXIS_BITS] = asm_q[b*S_AXIS_BITS +: S_AXIS_BITS];
            else if (b == {{(32-IN_IDX_BITS){1'b0}}, in_idx_q})
                sample_next[b*S_AXIS_BITS +: S_AXIS_BITS] = s_axis_tdata;
            else
                sample_next[b*S_AXIS_BITS +: S_AXIS_BITS] = {S_AXIS_BITS{1'b0}};
        end
    end

    always @(posedge clk) begin
        if (!aresetn) begin
            in_idx_q    <= {IN_IDX_BITS{1'b0}};
            hold_full_q <= 1'b0;
            hold_last_q <= 1'b0;
        end else begin
            if (in_fire & in_ends_sample) begin
                hold_q      <= sample_next;
                hold_last_q <= s_axis_tlast;
                hold_full_q <= 1'b1;
                in_idx_q    <= {IN_IDX_BITS{1'b0}};
            end else begin
                if (admit) hold_full_q <= 1'b0;
                if (in_fire) begin
                    asm_q[in_idx_q*S_AXIS_BITS +: S_AXIS_BITS] <= s_axis_tdata;
                    in_idx_q <= in_idx_q + 1'b1;
                end
            end
        end
    end

    // lanes -> core elements: the low IN_WIDTH bits of each lane (the rest is sign/zero padding)
    genvar gi;
    generate
        for (gi = 0; gi < IN_ELEMENTS; gi = gi + 1) begin : g_in
            assign core_inp[gi*IN_WIDTH +: IN_WIDTH] = hold_q[gi*IN_LANE +: IN_WIDTH];
        end
    endgenerate

    // ------------------------------------------------------------------ valid/tlast alongside the core
    wire core_valid;  // core_out holds the result of a sample admitted CORE_LATENCY cycles ago
    wire core_last;
    generate
        if (CORE_LATENCY == 0) begin : g_comb
            assign core_valid = admit;
            assign core_last  = hold_last_q;
        end else begin : g_pipe
            reg [CORE_LATENCY-1:0] valid_sr;
            reg [CORE_LATENCY-1:0] last_sr;
            integer k;
            always @(posedge clk) begin
                if (!aresetn) valid_sr <= {CORE_LATENCY{1'b0}};
                else begin
                    valid_sr[0] <= admit;
                    for (k = 1; k < CORE_LATENCY; k = k + 1) valid_sr[k] <= valid_sr[k-1];
                end
                last_sr[0] <= hold_last_q;
                for (k = 1; k < CORE_LATENCY; k = k + 1) last_sr[k] <= last_sr[k-1];
            end
            assign core_valid = valid_sr[CORE_LATENCY-1];
            assign core_last  = last_sr[CORE_LATENCY-1];
        end
    endgenerate

    // core elements -> lanes, sign- or zero-extended, zero padding to whole beats
    reg [OUT_BUF-1:0] out_lanes;
    integer e;
    always @* begin
        out_lanes = {OUT_BUF{1'b0}};
        for (e = 0; e < OUT_ELEMENTS; e = e + 1) begin
            if (OUT_SIGNED != 0 && core_out[e*OUT_WIDTH + OUT_WIDTH - 1])
                out_lanes[e*OUT_LANE +: OUT_LANE] = {OUT_LANE{1'b1}};
            out_lanes[e*OUT_LANE +: OUT_WIDTH] = core_out[e*OUT_WIDTH +: OUT_WIDTH];
        end
    end

    // ------------------------------------------------------------------ output FIFO and credits
    reg [OUT_BUF:0]        fifo_mem [0:OUT_FIFO_DEPTH-1];  // {tlast, lanes}
    reg [FIFO_ABITS-1:0]   wr_ptr_q, rd_ptr_q;
    reg [FIFO_ABITS:0]     count_q;      // results in the FIFO
    reg [FIFO_ABITS:0]     occupancy_q;  // samples admitted and not yet fully sent
    reg [OUT_IDX_BITS-1:0] out_idx_q;    // beat index within the FIFO head's sample
    wire [OUT_BUF:0]       head = fifo_mem[rd_ptr_q];
    wire                   out_fire = m_axis_tvalid & m_axis_tready;
    wire                   pop = out_fire & (out_idx_q == OUT_LAST_BEAT);

    // Admitting is safe when the FIFO could hold every sample in flight plus this one. With
    // occupancy counted from admission to the pop of the last beat, a steady one-per-cycle flow
    // keeps occupancy at CORE_LATENCY + 1 < OUT_FIFO_DEPTH, so credits never throttle it.
    assign credit_ok = (occupancy_q < FIFO_DEPTH_N);

    always @(posedge clk) begin
        if (core_valid) fifo_mem[wr_ptr_q] <= {core_last, out_lanes};
    end

    always @(posedge clk) begin
        if (!aresetn) begin
            wr_ptr_q    <= {FIFO_ABITS{1'b0}};
            rd_ptr_q    <= {FIFO_ABITS{1'b0}};
            count_q     <= {(FIFO_ABITS+1){1'b0}};
            occupancy_q <= {(FIFO_ABITS+1){1'b0}};
            out_idx_q   <= {OUT_IDX_BITS{1'b0}};
        end else begin
            if (core_valid) wr_ptr_q <= wr_ptr_q + 1'b1;
            if (pop)        rd_ptr_q <= rd_ptr_q + 1'b1;
            count_q     <= count_q + {{FIFO_ABITS{1'b0}}, core_valid} - {{FIFO_ABITS{1'b0}}, pop};
            occupancy_q <= occupancy_q + {{FIFO_ABITS{1'b0}}, admit} - {{FIFO_ABITS{1'b0}}, pop};
            if (out_fire) out_idx_q <= pop ? {OUT_IDX_BITS{1'b0}} : out_idx_q + 1'b1;
        end
    end

    // ------------------------------------------------------------------ output: sample -> beats
    assign m_axis_tvalid = (count_q != 0);
    assign m_axis_tdata  = head[out_idx_q*M_AXIS_BITS +: M_AXIS_BITS];
    assign m_axis_tlast  = head[OUT_BUF] & (out_idx_q == OUT_LAST_BEAT);
    assign m_axis_tkeep  = {(M_AXIS_BITS/8){1'b1}};

endmodule
