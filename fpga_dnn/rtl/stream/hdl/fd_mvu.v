// fd_mvu: folded matrix-vector unit, PE x SIMD multiply-accumulate lanes (Verilog-2005).
//
// acc[n] = bias[n] + sum_k w[n][k] * x[k]   for n < N, in AW-bit two's-complement wrap-around
// arithmetic (every product and partial sum is taken mod 2^AW, so the result is exact whenever
// the true sum fits AW bits, in whatever order it is summed).
//
// Parameters
//   K          input vector length.   N   output vector length.
//   SIMD       inputs consumed per cycle (divides K).   PE  outputs computed in parallel
//              (divides N). Folds: NF = N/PE output groups, KF = K/SIMD input slices.
//   IN_ELEMS   elements per input beat (divides K); NB = K/IN_ELEMS beats make one vector.
//              SIMD and IN_ELEMS must divide one another.
//   IW         bits per input element; ISIGNED 1: signed, 0: unsigned.
//   WW         bits per weight (signed).
//   AW         accumulator/output bits per element.
//   BIAS       1: add the biases of BIAS_FILE; 0: no bias (BIAS_FILE unused).
//   WEIGHT_FILE $readmemh file of the weight ROM: NF*KF words, word a = nf*KF + kf holds
//              w[nf*PE + p][kf*SIMD + s] (WW-bit two's complement) at bits
//              [(p*SIMD + s)*WW +: WW]. Written by fpga_dnn/rtl/stream/memfiles.py.
//   BIAS_FILE  $readmemh file of the bias ROM: NF words, word nf holds bias[nf*PE + p] (AW-bit
//              two's complement) at bits [p*AW +: AW].
//   ROM_STYLE  weight ROM: 0 auto (block RAM when it holds >= 16384 bits and >= 32 words),
//              1 block RAM (rom_style "block"), 2 distributed (LUTs).
//   RQ         1: each finished accumulator is cast (fd_cast) as its PE lane finishes, so the
//              output holds N elements of OW bits, not AW: PE casts instead of N, and N*OW
//              output bits instead of N*AW. 0: the raw accumulators (AW bits each).
//   SHIFT, OW, OSIGNED, ROUND, SAT, RELU   the cast when RQ = 1 (as fd_cast's; unused for 0).
//   MULT       0: each product is a multiplier (DSP48); 1: in LUTs, as the sum of the weight
//              shifted by each set bit of the input (no multiplier cell, use_dsp "no"): the
//              same product, for a layer the DSP budget cannot hold.
// Ports
//   clk, rst                                 clock; synchronous active-high reset.
//   s_tdata[IN_ELEMS*IW-1:0], s_tvalid, s_tready  input beats; element i at [i*IW +: IW];
//                                            beat b of a vector carries x[b*IN_ELEMS + i].
//                                            s_tready is a register output, except with one
//                                            beat per vector (see Structure).
//   m_tdata[N*EW-1:0], m_tvalid, m_tready    one beat per vector: element n at [n*EW +: EW],
//                                            EW = OW (RQ = 1: cast(acc[n])) or AW (acc[n]).
// Structure: the input vector is written into one of two banks (double buffer) while the other
// is read, so the next vector is computed without idle cycles. With one beat per vector (a
// Conv's window: IN_ELEMS = K) the store is one register bank instead, copied whole into the
// stage-A register by a vector's first step (which all its steps then slice): the bank takes the
// next window from that cycle on (s_tready = bank empty or that first step), so bank and stage-A
// register are the double buffer - no idle cycle, and no LUT RAM for a 2-word memory thousands
// of bits wide. Each cycle one (nf, kf) step
// reads SIMD inputs and PE*SIMD weights (synchronous ROM read), multiplies them (registered
// products: DSP48 MREG), sums each PE's SIMD products (adder tree, registered) and accumulates;
// finished output groups shift into a register chain (no write-address decode per output bit).
// Cycle counts (exact, fed and drained without stalls):
//   cycles per vector in steady state = max(NF*KF, NB)        (NF*KF = (N/PE)*(K/SIMD))
//   latency: the output is valid NF*KF + 4 cycles after the cycle that delivered the vector's
//   last input beat (when the unit was idle): 1 to mark the bank full, NF*KF issues, then the
//   product, tree and accumulate registers.
// Backpressure: the pipeline stops only when a finished vector meets an output register that is
// still full.
module fd_mvu #(
    parameter integer K = 4,
    parameter integer N = 4,
    parameter integer SIMD = 1,
    parameter integer PE = 1,
    parameter integer IN_ELEMS = 1,
    parameter integer IW = 8,
    parameter integer ISIGNED = 0,
    parameter integer WW = 8,
    parameter integer AW = 24,
    parameter integer BIAS = 0,
    parameter WEIGHT_FILE = "weights.mem",
    parameter BIAS_FILE = "bias.mem",
    parameter integer ROM_STYLE = 0,
    parameter integer RQ = 0,
    parameter integer SHIFT = 0,
    parameter integer OW = 8,
    parameter integer OSIGNED = 1,
    parameter integer ROUND = 0,
    parameter integer SAT = 0,
    parameter integer RELU = 0,
    parameter integer MULT = 0
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire [IN_ELEMS*IW-1:0] s_tdata,
    input  wire                   s_tvalid,
    output wire                   s_tready,
    output wire [N*(RQ ? OW : AW)-1:0] m_tdata,
    output wire                   m_tvalid,
    input  wire                   m_tready
);
    localparam integer NF = N / PE;
    localparam integer KF = K / SIMD;
    localparam integer NB = K / IN_ELEMS;
    localparam integer L  = (SIMD > IN_ELEMS) ? SIMD / IN_ELEMS : 1;   // input lanes
    localparam integer R  = (IN_ELEMS > SIMD) ? IN_ELEMS / SIMD : 1;   // slices per word
    localparam integer LD = NB / L;                                    // words per bank
    localparam integer XWW = IN_ELEMS * IW;                            // input word bits
    localparam integer WD = NF * KF;                                   // weight ROM words
    localparam integer WWORD = PE * SIMD * WW;
    localparam integer WSTYLE = (ROM_STYLE != 0) ? ROM_STYLE
                              : ((WD >= 32 && WD * WWORD >= 16384) ? 1 : 2);
    localparam integer PW = IW + 1 + WW;                               // signed product bits
    localparam integer EXW = (AW > PW) ? AW : PW;                      // >= TW
    localparam integer TP = (SIMD <= 1) ? 1 : (1 << $clog2(SIMD));     // adder-tree leaves
    localparam integer EW = RQ ? OW : AW;                              // output element bits
    // products and their per-PE sum: exact in TW0 bits (PW-bit products, TP leaves), so the
    // tree is that wide, sign-extended into the AW-bit accumulator; when AW is narrower the
    // tree wraps at AW like the accumulator (the sum mod 2^AW either way)
    localparam integer TW0 = PW + ((TP > 1) ? $clog2(TP) : 0);
    localparam integer TW = (TW0 < AW) ? TW0 : AW;

    function integer bits(input integer n);   // bits of a counter 0..n-1
        bits = (n > 1) ? $clog2(n) : 1;
    endfunction
    localparam integer NFB = bits(NF);
    localparam integer KFB = bits(KF);
    localparam integer WAB = bits(WD);
    localparam integer LB  = bits(L);
    localparam integer LDB = bits(LD);
    localparam integer RB  = bits(R);
    localparam integer IAB = bits(2 * LD);
    localparam integer SB  = (NB == 1) ? 1 : 0;                        // single register bank

    // parameter checks: an instance of a module that does not exist stops elaboration
    generate
    if (K % SIMD != 0 || N % PE != 0 || K % IN_ELEMS != 0 ||
        (SIMD % IN_ELEMS != 0 && IN_ELEMS % SIMD != 0)) begin : g_bad
        fd_mvu_bad_parameters_SIMD_PE_IN_ELEMS_must_divide_K_N bad ();
    end
    endgenerate

    // ---------------- input side: double-buffered vector store ----------------
    reg [1:0]     bank_full;
    reg           wbank, rbank;
    reg [LB-1:0]  w_lane;
    reg [LDB-1:0] w_word;
    wire wr = s_tvalid && s_tready;
    wire w_last = (w_lane == L - 1) && (w_word == LD - 1);

    // ---------------- read side: (nf, kf) steps ----------------
    wire en;                            // pipeline advance
    reg [NFB-1:0] nf;
    reg [KFB-1:0] kf;
    reg [WAB-1:0] waddr;
    reg [LDB-1:0] r_word;
    reg [RB-1:0]  r_slice;
    wire k_last = (kf == KF - 1);
    wire v_last = k_last && (nf == NF - 1);
    wire v_first = (kf == 0) && (nf == 0);
    // a step issues when its vector is stored (single bank: the first step needs the bank, the
    // others read the stage-A copy)
    wire issue = en && (SB ? (bank_full[0] || !v_first) : bank_full[rbank]);
    assign s_tready = SB ? (!bank_full[0] || (issue && v_first)) : !bank_full[wbank];

    always @(posedge clk) begin
        if (rst) begin
            bank_full <= 2'b00;
            wbank <= 1'b0;
            rbank <= 1'b0;
            w_lane <= {LB{1'b0}};
            w_word <= {LDB{1'b0}};
            nf <= {NFB{1'b0}};
            kf <= {KFB{1'b0}};
            waddr <= {WAB{1'b0}};
            r_word <= {LDB{1'b0}};
            r_slice <= {RB{1'b0}};
        end else begin
            if (wr) begin
                if (w_lane == L - 1) begin
                    w_lane <= {LB{1'b0}};
                    w_word <= (w_word == LD - 1) ? {LDB{1'b0}} : w_word + 1'b1;
                end else begin
                    w_lane <= w_lane + 1'b1;
                end
                if (w_last && SB == 0) begin
                    bank_full[wbank] <= 1'b1;
                    wbank <= ~wbank;
                end
            end
            if (issue) begin
                waddr <= (waddr == WD - 1) ? {WAB{1'b0}} : waddr + 1'b1;
                if (k_last) begin
                    kf <= {KFB{1'b0}};
                    r_word <= {LDB{1'b0}};
                    r_slice <= {RB{1'b0}};
                    nf <= (nf == NF - 1) ? {NFB{1'b0}} : nf + 1'b1;
                end else begin
                    kf <= kf + 1'b1;
                    if (r_slice == R - 1) begin
                        r_slice <= {RB{1'b0}};
                        r_word <= r_word + 1'b1;
                    end else begin
                        r_slice <= r_slice + 1'b1;
                    end
                end
                if (v_last && SB == 0) begin
                    bank_full[rbank] <= 1'b0;
                    rbank <= ~rbank;
                end
            end
            // single bank: emptied by the first step, refilled by the write (which wins)
            if (SB != 0) begin
                if (wr) bank_full[0] <= 1'b1;
                else if (issue && v_first) bank_full[0] <= 1'b0;
            end
        end
    end

    // stage A: synchronous reads of the input store, the weight ROM and the bias ROM
    wire [IAB-1:0] w_iaddr = (wbank ? LD : 0) + w_word;
    wire [IAB-1:0] r_iaddr = (rbank ? LD : 0) + r_word;
    wire [L*XWW-1:0] xa;                // L lanes of IN_ELEMS elements
    genvar l, p, s, t;
    generate
    if (SB != 0) begin : g_single      // L = 1
        reg [XWW-1:0] bank;
        reg [XWW-1:0] q;
        always @(posedge clk) begin
            if (wr) bank <= s_tdata;
            if (issue && v_first) q <= bank;
        end
        assign xa = q;
    end else begin : g_double
        for (l = 0; l < L; l = l + 1) begin : g_lane
            reg [XWW-1:0] ibuf [0:2*LD-1];
            reg [XWW-1:0] q;
            always @(posedge clk) begin
                if (wr && w_lane == l) ibuf[w_iaddr] <= s_tdata;
                if (issue) q <= ibuf[r_iaddr];
            end
            assign xa[l*XWW +: XWW] = q;
        end
    end
    endgenerate

    reg [WWORD-1:0] wa;
    generate
    if (WSTYLE == 1) begin : g_wblock
        (* rom_style = "block" *) reg [WWORD-1:0] wrom [0:WD-1];
        initial $readmemh(WEIGHT_FILE, wrom);
        always @(posedge clk) if (issue) wa <= wrom[waddr];
    end else begin : g_wdist
`ifdef YOSYS
        // yosys refuses rom_style "distributed" on a ROM ("no valid mapping found for memory")
        // and maps an unattributed one to LUTs, which is what the attribute asks Vivado for
        reg [WWORD-1:0] wrom [0:WD-1];
`else
        (* rom_style = "distributed" *) reg [WWORD-1:0] wrom [0:WD-1];
`endif
        initial $readmemh(WEIGHT_FILE, wrom);
        always @(posedge clk) if (issue) wa <= wrom[waddr];
    end
    endgenerate

    wire [PE*AW-1:0] ba;
    generate
    if (BIAS != 0) begin : g_bias
        reg [PE*AW-1:0] brom [0:NF-1];
        reg [PE*AW-1:0] q;
        initial $readmemh(BIAS_FILE, brom);
        always @(posedge clk) if (issue) q <= brom[nf];
        assign ba = q;
    end else begin : g_nobias
        assign ba = {PE*AW{1'b0}};
    end
    endgenerate

    reg           va, a_first, a_klast, a_vlast;
    reg [RB-1:0]  a_slice;
    always @(posedge clk) begin
        if (rst) va <= 1'b0;
        else if (en) va <= issue;
        if (issue) begin
            a_first <= (kf == 0);
            a_klast <= k_last;
            a_vlast <= v_last;
            a_slice <= r_slice;
        end
    end

    // wv * xv without a multiplier: the input's IW+1 two's-complement bits each add the weight
    // shifted to their place (the sign bit subtracts it), all in PW bits - the product exactly
    function signed [PW-1:0] shift_add(input signed [WW-1:0] wv, input signed [IW:0] xv);
        integer i;
        reg signed [PW-1:0] we, acc;
        begin
            we = wv;
            acc = {PW{1'b0}};
            for (i = 0; i < IW; i = i + 1)
                acc = acc + ((we <<< i) & {PW{xv[i]}});
            shift_add = acc - ((we <<< IW) & {PW{xv[IW]}});
        end
    endfunction

    // stage B: products
    wire [SIMD*IW-1:0] xs = xa[a_slice*(SIMD*IW) +: SIMD*IW];
    reg           vb, b_first, b_klast, b_vlast;
    reg [PE*AW-1:0] bb;
    reg [PE*SIMD*TW-1:0] prod;
    generate
    for (p = 0; p < PE; p = p + 1) begin : g_pe
        for (s = 0; s < SIMD; s = s + 1) begin : g_simd
            wire signed [WW-1:0] wv = wa[(p*SIMD + s)*WW +: WW];
            wire [IW-1:0] xr = xs[s*IW +: IW];
            wire signed [IW:0] xv = ISIGNED ? {xr[IW-1], xr} : {1'b0, xr};
            wire signed [PW-1:0] m;
            if (MULT == 1) begin : g_lutmul
                (* use_dsp = "no" *) wire signed [PW-1:0] ml = shift_add(wv, xv);
                assign m = ml;
            end else begin : g_dspmul
                assign m = wv * xv;
            end
            wire signed [EXW-1:0] mx = m;
            always @(posedge clk) if (en) prod[(p*SIMD + s)*TW +: TW] <= mx[TW-1:0];
        end
    end
    endgenerate
    always @(posedge clk) begin
        if (rst) vb <= 1'b0;
        else if (en) vb <= va;
        if (en) begin
            b_first <= a_first;
            b_klast <= a_klast;
            b_vlast <= a_vlast;
            bb <= ba;
        end
    end

    // stage C: per-PE sum of the SIMD products (balanced adder tree, TW bits)
    reg           vc, c_first, c_klast, c_vlast;
    reg [PE*AW-1:0] cb;
    reg [PE*TW-1:0] psum;
    generate
    for (p = 0; p < PE; p = p + 1) begin : g_tree
        wire [(2*TP-1)*TW-1:0] tr;      // node i = tr[i*TW +: TW]; leaves TP-1 .. 2*TP-2
        for (t = 0; t < TP; t = t + 1) begin : g_leaf
            if (t < SIMD) begin : g_p
                assign tr[(TP-1+t)*TW +: TW] = prod[(p*SIMD + t)*TW +: TW];
            end else begin : g_z
                assign tr[(TP-1+t)*TW +: TW] = {TW{1'b0}};
            end
        end
        for (t = 0; t < TP - 1; t = t + 1) begin : g_node
            assign tr[t*TW +: TW] = tr[(2*t+1)*TW +: TW] + tr[(2*t+2)*TW +: TW];
        end
        always @(posedge clk) if (en) psum[p*TW +: TW] <= tr[0 +: TW];
    end
    endgenerate
    always @(posedge clk) begin
        if (rst) vc <= 1'b0;
        else if (en) vc <= vb;
        if (en) begin
            c_first <= b_first;
            c_klast <= b_klast;
            c_vlast <= b_vlast;
            cb <= bb;
        end
    end

    // stage D: accumulate; finished groups go to res, a finished vector to the output register
    reg [PE*AW-1:0] acc;
    localparam integer RESW = ((NF > 1) ? NF - 1 : 1) * PE * EW;       // groups 0 .. NF-2
    reg [RESW-1:0]  res;
    reg [N*EW-1:0]  oreg;
    reg             ovalid;
    wire [PE*AW-1:0] accn;
    wire [PE*EW-1:0] outn;             // the finished group's elements as the output holds them
    generate
    for (p = 0; p < PE; p = p + 1) begin : g_acc
        wire signed [TW-1:0] ps = psum[p*TW +: TW];
        wire signed [AW-1:0] psx = ps;                      // sign-extended (TW <= AW)
        assign accn[p*AW +: AW] = (c_first ? cb[p*AW +: AW] : acc[p*AW +: AW]) + psx;
        if (RQ != 0) begin : g_cast
            fd_cast #(.AW(AW), .ISIGNED(1), .SHIFT(SHIFT), .OW(OW), .OSIGNED(OSIGNED), .ROUND(ROUND),
                      .SAT(SAT), .RELU(RELU)) cast (.a(accn[p*AW +: AW]), .y(outn[p*EW +: EW]));
        end else begin : g_raw
            assign outn[p*EW +: EW] = accn[p*AW +: AW];
        end
    end
    endgenerate
    wire done = vc && c_vlast;
    assign en = !(done && ovalid && !m_tready);
    always @(posedge clk) begin
        if (en && vc) begin
            acc <= accn;
        end
    end
    generate
    // group nf enters at the top and moves down one group per finished group: when group NF-1
    // finishes, res holds groups NF-2 .. 0 from the top down
    if (NF > 2) begin : g_shift
        always @(posedge clk) if (en && vc && c_klast) res <= {outn, res[RESW-1:PE*EW]};
    end else if (NF == 2) begin : g_hold
        always @(posedge clk) if (en && vc && c_klast) res <= outn;
    end
    if (NF > 1) begin : g_out
        always @(posedge clk) if (en && done) oreg <= {outn, res};
    end else begin : g_out1
        always @(posedge clk) if (en && done) oreg <= outn;
    end
    endgenerate
    always @(posedge clk) begin
        if (rst) ovalid <= 1'b0;
        else if (en && done) ovalid <= 1'b1;
        else if (m_tready) ovalid <= 1'b0;
    end
    assign m_tdata = oreg;
    assign m_tvalid = ovalid;
endmodule
