// fpga_dnn AXI-Stream packing for the HLS path: one sample in, one sample out, in the beat
// layout fpga_dnn-lanes-v1 (normative text: fpga_dnn/runtime/packing.py), the same layout as the
// RTL path's Verilog shell (sim/axis_shell.v), so the runtime packs and unpacks both alike:
//
//   element i of a sample sits in lane i of L bits (8/16/32, the smallest holding the element's
//   W bits), sign-extended (signed formats) or zero-extended, lanes little-endian and back to back
//   from bit 0 of the first beat; a sample is zero-padded to whole S-bit beats; TLAST marks the
//   last beat of a frame (one DMA transfer of whole samples), and the output sample of an input
//   sample whose beats carried TLAST ends with TLAST.
//
// Why not hls4ml's VivadoAccelerator wrapper (hls4ml 1.3.0): it moves one element per beat, writes
// fixed-point stream types as `fixed<...>` (not C++: only float/double compile), swaps the two
// stream widths in its project tcl, and its {data, last} struct gets no TLAST from Vitis HLS.
// ap_axiu (ap_axi_sdata.h) is recognised as AXI-Stream with side channels by both Vivado HLS and
// Vitis HLS; the 1-bit TUSER/TID/TDEST are unused (written as 0, ignored on input).
//
// Differences from the Verilog shell: the function handles one sample per call (ap_ctrl_none
// restarts it), so samples are not overlapped, and a TLAST in the middle of an input sample does
// not end it early.
//
// Compiled standalone (FPGA_DNN_STANDALONE, the project's tests, g++ with hls4ml's ap_types) a
// plain struct with the same members stands in for ap_axiu.

#ifndef FPGA_DNN_AXIS_H_
#define FPGA_DNN_AXIS_H_

#include "ap_int.h"
#include "hls_stream.h"

#ifdef FPGA_DNN_STANDALONE
template <int S> struct fpga_dnn_axiu {
    ap_uint<S> data;
    ap_uint<S / 8> keep;
    ap_uint<S / 8> strb;
    ap_uint<1> user;
    ap_uint<1> last;
    ap_uint<1> id;
    ap_uint<1> dest;
};
template <int S> struct fpga_dnn_beat { typedef fpga_dnn_axiu<S> type; };
#else
#include "ap_axi_sdata.h"
template <int S> struct fpga_dnn_beat { typedef ap_axiu<S, 1, 1, 1> type; };
#endif

// Read one sample: N elements of type T, W significant bits each, in L-bit lanes, from S-bit
// beats. Returns whether any of its beats carried TLAST.
template <class T, int N, int W, int L, int S>
bool fpga_dnn_read_sample(hls::stream<typename fpga_dnn_beat<S>::type> &in, T x[N]) {
    const int LANES = S / L;
    const int BEATS = (N + LANES - 1) / LANES;
    bool last = false;
read_beats:
    for (int b = 0; b < BEATS; b++) {
#pragma HLS PIPELINE II = 1
        typename fpga_dnn_beat<S>::type beat = in.read();
        last = last || (beat.last == 1);
    read_lanes:
        for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            const int i = b * LANES + l;
            if (i < N) {
                ap_uint<W> bits = beat.data.range(l * L + W - 1, l * L);
                x[i].range(W - 1, 0) = bits;
            }
        }
    }
    return last;
}

// Write one sample: N elements of type T (W bits, SIGNED or not) into L-bit lanes of S-bit beats;
// TLAST on its last beat when `last`.
template <class T, int N, int W, int L, int S, bool SIGNED>
void fpga_dnn_write_sample(hls::stream<typename fpga_dnn_beat<S>::type> &out, T y[N], bool last) {
    const int LANES = S / L;
    const int BEATS = (N + LANES - 1) / LANES;
write_beats:
    for (int b = 0; b < BEATS; b++) {
#pragma HLS PIPELINE II = 1
        typename fpga_dnn_beat<S>::type beat;
        ap_uint<S> data = 0;
    write_lanes:
        for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            const int i = b * LANES + l;
            if (i < N) {
                ap_uint<W> bits = y[i].range(W - 1, 0);
                ap_uint<L> lane;
                if (SIGNED) {
                    ap_int<W> value = bits;  // reinterpret as two's complement
                    ap_int<L> wide = value;  // sign-extend
                    lane = wide;
                } else {
                    lane = bits;             // zero-extend
                }
                data.range(l * L + L - 1, l * L) = lane;
            }
        }
        beat.data = data;
        beat.keep = -1;
        beat.strb = -1;
        beat.user = 0;
        beat.id = 0;
        beat.dest = 0;
        beat.last = (last && b == BEATS - 1) ? 1 : 0;
        out.write(beat);
    }
}

#endif
