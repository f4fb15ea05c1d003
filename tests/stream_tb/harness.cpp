// Stream-module test harness: drives every input stream of tb_top with random bubbles, every
// output stream with random backpressure (AXI-Stream rules: valid held until taken), and logs
// each transfer with its cycle. Ports and widths come from ports.h, written by
// tests/test_stream_modules.py (REGISTER_PORTS).
//   usage: sim DIR SEED P_BUBBLE P_STALL MAX_IDLE EXP_0 EXP_1 ...   (EXP_j: beats expected on
//   output j). Reads DIR/in<j>.hex (one hex beat per line), writes DIR/out.txt.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>
#include "Vtb_top.h"
#include "verilated.h"

typedef std::vector<uint32_t> Words;

static Words parse_hex(const std::string& s, int width) {
    Words w((width + 31) / 32, 0);
    int nib = 0;
    for (int i = (int)s.size() - 1; i >= 0; --i) {
        char ch = s[i];
        int v = (ch >= '0' && ch <= '9') ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
              : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10 : -1;
        if (v < 0) continue;
        if (nib / 8 < (int)w.size()) w[nib / 8] |= (uint32_t)v << (4 * (nib % 8));
        ++nib;
    }
    return w;
}
static std::string to_hex(const Words& w, int width) {
    int nd = (width + 3) / 4;
    std::string s(nd, '0');
    for (int d = 0; d < nd; ++d) {
        int v = (w[d / 8] >> (4 * (d % 8))) & 15;
        s[nd - 1 - d] = "0123456789abcdef"[v];
    }
    return s;
}
template <typename T> static void put(T& port, const Words& w) {
    uint64_t v = w[0];
    if (w.size() > 1) v |= (uint64_t)w[1] << 32;
    port = (T)v;
}
template <std::size_t N> static void put(VlWide<N>& port, const Words& w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = i < w.size() ? w[i] : 0;
}
template <typename T> static Words get(const T& port, int width) {
    uint64_t v = (uint64_t)port;
    Words w((width + 31) / 32, 0);
    w[0] = (uint32_t)v;
    if (w.size() > 1) w[1] = (uint32_t)(v >> 32);
    return w;
}
template <std::size_t N> static Words get(const VlWide<N>& port, int width) {
    Words w((width + 31) / 32, 0);
    for (std::size_t i = 0; i < w.size() && i < N; ++i) w[i] = port[i];
    return w;
}

struct InPort {
    int width;
    std::function<void(const Words&)> data;
    std::function<void(bool)> valid;
    std::function<bool()> ready;
    std::vector<Words> beats;
    size_t next = 0;
    bool asserted = false;
};
struct OutPort {
    int width;
    std::function<Words()> data;
    std::function<bool()> valid;
    std::function<void(bool)> ready;
    long expected = 0, got = 0;
    bool rdy = false;
};
template <typename D> static InPort make_in(D* d, CData* v, CData* r, int width) {
    InPort p;
    p.width = width;
    p.data = [d](const Words& w) { put(*d, w); };
    p.valid = [v](bool b) { *v = b; };
    p.ready = [r]() { return *r != 0; };
    return p;
}
template <typename D> static OutPort make_out(D* d, CData* v, CData* r, int width) {
    OutPort p;
    p.width = width;
    p.data = [d, width]() { return get(*d, width); };
    p.valid = [v]() { return *v != 0; };
    p.ready = [r](bool b) { *r = b; };
    return p;
}

#include "ports.h"

int main(int argc_all, char** argv_all) {
    std::vector<char*> pos;   // positional arguments; +verilator+... ones go to the context
    for (int i = 0; i < argc_all; ++i) if (argv_all[i][0] != '+') pos.push_back(argv_all[i]);
    int argc = (int)pos.size();
    char** argv = pos.data();
    if (argc < 6) { fprintf(stderr, "usage: sim DIR SEED P_BUBBLE P_STALL MAX_IDLE EXP...\n"); return 2; }
    std::string dir = argv[1];
    std::mt19937_64 rng(strtoull(argv[2], 0, 10));
    double p_bubble = atof(argv[3]), p_stall = atof(argv[4]);
    long max_idle = atol(argv[5]);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc_all, argv_all);
    auto top = std::make_unique<Vtb_top>(ctx.get());
    std::vector<InPort> ins;
    std::vector<OutPort> outs;
    REGISTER_PORTS
    for (size_t j = 0; j < ins.size(); ++j) {
        std::ifstream f(dir + "/in" + std::to_string(j) + ".hex");
        std::string line;
        while (std::getline(f, line)) if (!line.empty()) ins[j].beats.push_back(parse_hex(line, ins[j].width));
    }
    if ((int)outs.size() != argc - 6) { fprintf(stderr, "expected %zu output counts\n", outs.size()); return 2; }
    for (size_t j = 0; j < outs.size(); ++j) outs[j].expected = atol(argv[6 + j]);
    FILE* fo = fopen((dir + "/out.txt").c_str(), "w");
    top->clk = 0;
    top->rst = 1;
    for (auto& p : ins) p.valid(false);
    for (auto& p : outs) p.ready(false);
    for (int i = 0; i < 4; ++i) { top->eval(); top->clk = 1; top->eval(); top->clk = 0; top->eval(); }
    top->rst = 0;
    long cycle = 0, idle = 0, drain = -1;
    int status = 0;
    while (true) {
        for (auto& p : ins) {
            if (p.next < p.beats.size()) {
                if (!p.asserted && u(rng) >= p_bubble) p.asserted = true;
                p.data(p.beats[p.next]);
            } else {
                p.asserted = false;
            }
            p.valid(p.asserted);
        }
        for (auto& p : outs) { p.rdy = drain >= 0 || u(rng) >= p_stall; p.ready(p.rdy); }
        top->eval();
        bool moved = false;
        for (size_t j = 0; j < ins.size(); ++j) {
            InPort& p = ins[j];
            if (p.asserted && p.ready()) {
                fprintf(fo, "i%zu %ld\n", j, cycle);
                p.next++;
                p.asserted = false;
                moved = true;
            }
        }
        for (size_t j = 0; j < outs.size(); ++j) {
            OutPort& p = outs[j];
            if (p.valid() && p.rdy) {
                fprintf(fo, "o%zu %ld %s\n", j, cycle, to_hex(p.data(), p.width).c_str());
                p.got++;
                moved = true;
            }
        }
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
        ++cycle;
        idle = moved ? 0 : idle + 1;
        bool all = true;
        for (auto& p : outs) all = all && p.got >= p.expected;
        if (all && drain < 0) drain = 0;
        if (drain >= 0 && ++drain > 64) break;     // extra cycles: any surplus beat is logged
        if (idle > max_idle) { status = 3; break; }
    }
    fprintf(fo, "cycles %ld\n", cycle);
#ifdef HAS_PROBE
    fprintf(fo, "probe %s\n", to_hex(get(top->probe, PROBE_WIDTH), PROBE_WIDTH).c_str());
#endif
    fclose(fo);
    if (status == 3) fprintf(stderr, "STALL: no transfer for %ld cycles at cycle %ld\n", max_idle, cycle);
    return status;
}
