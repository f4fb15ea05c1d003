// fd_fifo: first-word-fall-through FIFO for the streaming path (Verilog-2005).
//
// Parameters
//   WIDTH      bits per beat (>= 1).
//   DEPTH      capacity in beats (>= 1); the FIFO holds at most DEPTH beats.
//   RAM_STYLE  storage of the DEPTH-1 beats behind the output register:
//              0 = auto: block RAM when the memory is both deep (DEPTH-1 > LUTRAM_DEPTH) and
//                  big (WIDTH*(DEPTH-1) >= BLOCK_BITS), else distributed (LUT RAM);
//              1 = block, 2 = distributed (LUTRAM), 3 = registers.
//   BLOCK_BITS   auto: fewer bits than this always go to LUT RAM (default 4096).
//   LUTRAM_DEPTH auto: memories of at most this many entries go to LUT RAM whatever their
//                width (default 64). Why: a RAMB36 is at most 72 bits wide (512 deep), so a
//                shallow wide FIFO takes BRAM by width and uses a sliver of each: 20 x 2,816
//                bits took 39.5 BRAM36 (of the PYNQ-Z2's 140) at 1.5% fill. As LUT RAM it is
//                ceil(W/6) RAM32M up to 32 entries, ceil(W/3) RAM64M up to 64 (4 LUTs each):
//                470 RAM32M = 1,880 LUTs. Up to 64 entries a BRAM36 holds at most 64 x 72 =
//                4,608 of its 36,864 bits, which LUT RAM stores in 24 RAM64M (96 LUTs), well
//                under the ~380 LUTs a BRAM36 stands for on a Zynq-7020 (53,200 / 140).
// Ports
//   clk, rst                  clock; synchronous active-high reset (empties the FIFO and clears
//                             max_count).
//   s_tdata/s_tvalid/s_tready input stream. s_tready is a register output (no combinational
//                             path from m_tready) except for DEPTH == 1
//                             (there s_tready = !m_tvalid || m_tready).
//   m_tdata/m_tvalid/m_tready output stream; m_tdata is a register (first word falls through:
//                             it is valid as soon as m_tvalid is high).
//   count                     beats held now (output register included).
//   max_count                 the largest count seen since reset (for FIFO-sizing checks; it
//                             never exceeds DEPTH).
// Structure and timing
//   DEPTH == 1: one register stage, s_tready = !m_tvalid || m_tready: a beat per cycle.
//   DEPTH == 2: a skid buffer (output register + one spare; s_tready = spare empty), a beat per
//   cycle, latency 1.
//   DEPTH >= 3: a (DEPTH-1)-entry memory with a synchronous read port whose read register is
//   the output register (so block RAM inference works), read whenever the memory holds a beat
//   and the output register is empty or being taken: one beat per cycle sustained; a beat
//   written into an empty FIFO appears at m_tvalid two cycles later.
module fd_fifo #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 2,
    parameter integer RAM_STYLE = 0,
    parameter integer BLOCK_BITS = 4096,
    parameter integer LUTRAM_DEPTH = 64
) (
    input  wire                     clk,
    input  wire                     rst,
    input  wire [WIDTH-1:0]         s_tdata,
    input  wire                     s_tvalid,
    output wire                     s_tready,
    output wire [WIDTH-1:0]         m_tdata,
    output wire                     m_tvalid,
    input  wire                     m_tready,
    output wire [$clog2(DEPTH+1)-1:0] count,
    output reg  [$clog2(DEPTH+1)-1:0] max_count
);
    localparam integer CW = $clog2(DEPTH + 1);
    localparam integer MD = (DEPTH > 1) ? DEPTH - 1 : 1;   // memory entries
    localparam integer PW = (MD > 1) ? $clog2(MD) : 1;     // pointer bits
    localparam integer STYLE = (RAM_STYLE != 0) ? RAM_STYLE
                             : ((WIDTH * MD >= BLOCK_BITS && MD > LUTRAM_DEPTH) ? 1 : 2);

    reg [WIDTH-1:0] oreg;
    reg             ovalid;
    assign m_tdata  = oreg;
    assign m_tvalid = ovalid;

    wire [CW-1:0] count_next;
    always @(posedge clk) begin
        if (rst) max_count <= {CW{1'b0}};
        else if (count_next > max_count) max_count <= count_next;
    end

    generate
    if (DEPTH == 1) begin : g_reg
        assign s_tready = !ovalid || m_tready;
        always @(posedge clk) begin
            if (rst) ovalid <= 1'b0;
            else if (s_tready) ovalid <= s_tvalid;
            if (s_tready && s_tvalid) oreg <= s_tdata;
        end
        assign count = {{(CW-1){1'b0}}, ovalid};
        assign count_next = {{(CW-1){1'b0}}, (s_tready ? s_tvalid : ovalid)};
    end else if (DEPTH == 2) begin : g_skid
        // skid buffer: the output register and one spare, s_tready = spare empty (registered)
        reg [WIDTH-1:0] spare;
        reg             svalid;
        assign s_tready = !svalid;
        wire take = !ovalid || m_tready;
        always @(posedge clk) begin
            if (rst) begin
                ovalid <= 1'b0;
                svalid <= 1'b0;
            end else if (take) begin
                if (svalid) begin
                    ovalid <= 1'b1;
                    svalid <= 1'b0;
                end else begin
                    ovalid <= s_tvalid;
                end
            end else if (s_tvalid && !svalid) begin
                svalid <= 1'b1;
            end
            if (take) oreg <= svalid ? spare : s_tdata;
            if (!take && s_tvalid && !svalid) spare <= s_tdata;
        end
        assign count = ovalid + svalid;
        assign count_next = (take ? (svalid ? 1'b1 : s_tvalid) : ovalid) + (take ? 1'b0 : (svalid || s_tvalid));
    end else begin : g_mem
        reg [PW-1:0] wp, rp;
        reg [CW-1:0] mcount;                     // beats in the memory
        wire wr = s_tvalid && s_tready;
        wire rd = (mcount != 0) && (!ovalid || m_tready);
        assign s_tready = (mcount != MD);
        always @(posedge clk) begin
            if (rst) begin
                wp <= {PW{1'b0}};
                rp <= {PW{1'b0}};
                mcount <= {CW{1'b0}};
                ovalid <= 1'b0;
            end else begin
                if (wr) wp <= (wp == MD - 1) ? {PW{1'b0}} : wp + 1'b1;
                if (rd) rp <= (rp == MD - 1) ? {PW{1'b0}} : rp + 1'b1;
                mcount <= mcount + wr - rd;
                if (rd) ovalid <= 1'b1;
                else if (m_tready) ovalid <= 1'b0;
            end
        end
        assign count = mcount + ovalid;
        assign count_next = mcount + wr - rd + ((rd || (ovalid && !m_tready)) ? 1'b1 : 1'b0);
        if (STYLE == 1) begin : g_block
            (* ram_style = "block" *) reg [WIDTH-1:0] mem [0:MD-1];
            always @(posedge clk) begin
                if (wr) mem[wp] <= s_tdata;
                if (rd) oreg <= mem[rp];
            end
        end else if (STYLE == 2) begin : g_dist
            (* ram_style = "distributed" *) reg [WIDTH-1:0] mem [0:MD-1];
            always @(posedge clk) begin
                if (wr) mem[wp] <= s_tdata;
                if (rd) oreg <= mem[rp];
            end
        end else begin : g_regs
            (* ram_style = "registers" *) reg [WIDTH-1:0] mem [0:MD-1];
            always @(posedge clk) begin
                if (wr) mem[wp] <= s_tdata;
                if (rd) oreg <= mem[rp];
            end
        end
    end
    endgenerate
endmodule
