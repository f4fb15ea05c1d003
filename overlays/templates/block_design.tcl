# Block design: processing system + AXI DMA (simple mode) + the accelerator IP.
#
#   PS master port --AXI-Lite--> ctrl_interconnect --> axi_dma_0/S_AXI_LITE   (DMA registers)
#   axi_dma_0/M_AXIS_MM2S --> accel/<in>  ...  accel/<out> --> axi_dma_0/S_AXIS_S2MM
#   axi_dma_0/M_AXI_MM2S, M_AXI_S2MM --> mem_interconnect --> PS high-performance port (DDR)
#   one PL clock (PS clock pin) for everything; proc_sys_reset from the PS reset pin.
#
# Every name that differs between boards (PS IP, ports, pins, configuration) comes from
# config.tcl, i.e. from overlays/boards/<board>.toml. The PS IP, DMA, interconnect and reset IPs
# are looked up by vendor:library:name (newest installed version). The DMA's interrupts are left
# unconnected: pynq's DMA driver polls the status registers.

set fd_board_repos [fd_board_repo_paths]
fd_info "creating project $fd(project_name) ($fd(part)) in [fd_path $fd(project_dir)]"
create_project $fd(project_name) [fd_path $fd(project_dir)] -part $fd(part) -force
set fd(board_part_used) [fd_set_board_part $fd_board_repos]
set_property ip_repo_paths [list [fd_path $fd(ip_repo)]] [current_project]
update_ip_catalog -rebuild
create_bd_design $fd(bd_name)

# --- cells ------------------------------------------------------------------------------------
set fd_ps [create_bd_cell -type ip -vlnv [fd_latest_ipdef $fd(ps_vlnv)] ps]
apply_bd_automation -rule $fd(ps_rule) -config $fd(ps_rule_config) $fd_ps
# The PL clock's source first (on the Ultra96: the preset's clock override off), then the ports
# and the PL clock itself, so that Vivado computes divisors for the requested frequency.
set_property -dict [fd_config_list $fd(ps_clock_config)] $fd_ps
set_property -dict [fd_config_list $fd(ps_config)] $fd_ps

set fd_dma_vlnv [fd_latest_ipdef $fd(dma_vlnv)]
if {$fd_dma_vlnv ne $fd(dma_pynq_vlnv)} {
    fd_warn "this Vivado has DMA $fd_dma_vlnv; pynq's DMA driver binds to $fd(dma_pynq_vlnv):\
             on the board, bind the DMA by hand or use a Vivado that has $fd(dma_pynq_vlnv)"
}
set fd_dma [create_bd_cell -type ip -vlnv $fd_dma_vlnv axi_dma_0]
# The stream widths are ours, not propagated from the neighbours.
set_property -dict [list CONFIG.c_m_axis_mm2s_tdata_width.VALUE_SRC USER \
                         CONFIG.c_s_axis_s2mm_tdata_width.VALUE_SRC USER] $fd_dma
set_property -dict [fd_config_list $fd(dma_config)] $fd_dma

set fd_accel [create_bd_cell -type ip -vlnv [fd_latest_ipdef $fd(accel_vlnv)] accel]

set fd_smc [fd_latest_ipdef $fd(interconnect_vlnv)]
set fd_ctrl [create_bd_cell -type ip -vlnv $fd_smc ctrl_interconnect]
set_property -dict [list CONFIG.NUM_SI 1 CONFIG.NUM_MI 1] $fd_ctrl
set fd_mem [create_bd_cell -type ip -vlnv $fd_smc mem_interconnect]
set_property -dict [list CONFIG.NUM_SI 2 CONFIG.NUM_MI 1] $fd_mem
set fd_rst [create_bd_cell -type ip -vlnv [fd_latest_ipdef $fd(reset_vlnv)] rst_pl]

# --- streams: DMA -> accelerator -> DMA ----------------------------------------------------------
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXIS_MM2S] [get_bd_intf_pins accel/$fd(accel_in)]
connect_bd_intf_net [get_bd_intf_pins accel/$fd(accel_out)] [get_bd_intf_pins axi_dma_0/S_AXIS_S2MM]

# --- control: PS master -> DMA registers -----------------------------------------------------------
connect_bd_intf_net [get_bd_intf_pins ps/$fd(ps_master)] [get_bd_intf_pins ctrl_interconnect/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins ctrl_interconnect/M00_AXI] [get_bd_intf_pins axi_dma_0/S_AXI_LITE]

# --- memory: DMA -> PS high-performance port ------------------------------------------------------
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXI_MM2S] [get_bd_intf_pins mem_interconnect/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXI_S2MM] [get_bd_intf_pins mem_interconnect/S01_AXI]
connect_bd_intf_net [get_bd_intf_pins mem_interconnect/M00_AXI] [get_bd_intf_pins ps/$fd(ps_hp)]

# --- clock and reset -----------------------------------------------------------------------------
connect_bd_net [get_bd_pins ps/$fd(ps_clk)] \
    [get_bd_pins ps/$fd(ps_master_clk)] [get_bd_pins ps/$fd(ps_hp_clk)] \
    [get_bd_pins rst_pl/slowest_sync_clk] \
    [get_bd_pins axi_dma_0/s_axi_lite_aclk] [get_bd_pins axi_dma_0/m_axi_mm2s_aclk] \
    [get_bd_pins axi_dma_0/m_axi_s2mm_aclk] \
    [get_bd_pins accel/$fd(accel_clk)] \
    [get_bd_pins ctrl_interconnect/aclk] [get_bd_pins mem_interconnect/aclk]
connect_bd_net [get_bd_pins ps/$fd(ps_resetn)] [get_bd_pins rst_pl/ext_reset_in]
connect_bd_net [get_bd_pins rst_pl/peripheral_aresetn] \
    [get_bd_pins axi_dma_0/axi_resetn] [get_bd_pins accel/$fd(accel_resetn)]
connect_bd_net [get_bd_pins rst_pl/interconnect_aresetn] \
    [get_bd_pins ctrl_interconnect/aresetn] [get_bd_pins mem_interconnect/aresetn]

# --- addresses, checks, wrapper ------------------------------------------------------------------
assign_bd_address
validate_bd_design

# The PL clock the PS really makes (its divisors from the PLL) must be the board file's within 1%:
# the timing analysis, the runtime's latency figures and pynq's clock setting all rest on it.
# The actual value goes into the bundle's spec (export_bundle.tcl -> finalize_bundle.py).
proc fd_check_clock {} {
    global fd
    set act [get_property CONFIG.$fd(ps_clock_actual) [get_bd_cells ps]]
    if {![string is double -strict $act] || $act <= 0} {
        fd_error "cannot read the PL clock back (CONFIG.$fd(ps_clock_actual) of the PS is '$act')"
    }
    if {abs($act - $fd(clock_mhz)) > 0.01 * $fd(clock_mhz)} {
        fd_error "the PL clock is $act MHz ($fd(ps_clock_actual)); the board file asks for $fd(clock_mhz) MHz\
                  (more than 1% off: the PS cannot make that clock from its PLL, or the board preset\
                  overrides it). Pick a pl_clock_mhz the PLL divides to, or check ps.clock_config."
    }
    set fd(clock_actual_mhz) $act
    fd_info "PL clock $act MHz (asked for $fd(clock_mhz) MHz)"
}
fd_check_clock

# The DMA's stream widths must be the spec's, and the accelerator's ports must agree with both;
# the DMA's S2MM channel only ends a transfer on TLAST, so both streams must carry it. Both carry
# TKEEP too: the accelerator drives m_axis TKEEP all ones and accepts s_axis TKEEP, so IP
# integrator ties no DMA stream pin to a constant.
proc fd_check_streams {} {
    global fd
    set dma [get_bd_cells axi_dma_0]
    set in_pin [get_bd_intf_pins accel/$fd(accel_in)]
    set out_pin [get_bd_intf_pins accel/$fd(accel_out)]
    set checks [list \
        "DMA MM2S stream (c_m_axis_mm2s_tdata_width)" [get_property CONFIG.c_m_axis_mm2s_tdata_width $dma] $fd(in_bits) \
        "DMA S2MM stream (c_s_axis_s2mm_tdata_width)" [get_property CONFIG.c_s_axis_s2mm_tdata_width $dma] $fd(out_bits) \
        "accelerator input $fd(accel_in) TDATA" [expr {8 * [get_property CONFIG.TDATA_NUM_BYTES $in_pin]}] $fd(in_bits) \
        "accelerator output $fd(accel_out) TDATA" [expr {8 * [get_property CONFIG.TDATA_NUM_BYTES $out_pin]}] $fd(out_bits)]
    foreach {what got want} $checks {
        if {$got != $want} { fd_error "$what is $got bits; the spec says $want" }
    }
    foreach pin [list $in_pin $out_pin] {
        if {[get_property CONFIG.HAS_TLAST $pin] != 1} {
            fd_error "accelerator stream $pin has no TLAST; the DMA's S2MM channel needs it"
        }
        if {[get_property CONFIG.HAS_TKEEP $pin] != 1} {
            fd_error "accelerator stream $pin has no TKEEP; the generated top drives m_axis_tkeep\
                      (all ones) and takes s_axis_tkeep, so the IP was packaged from other sources"
        }
    }
    fd_info "streams: DMA MM2S $fd(in_bits) bits -> accel/$fd(accel_in), accel/$fd(accel_out) -> DMA S2MM $fd(out_bits) bits, TLAST and TKEEP"
}
fd_check_streams
save_bd_design

set fd_bd_file [get_files $fd(bd_name).bd]
add_files -norecurse [make_wrapper -files $fd_bd_file -top]
set_property top $fd(bd_name)_wrapper [current_fileset]
update_compile_order -fileset sources_1
fd_info "block design $fd(bd_name) done"
