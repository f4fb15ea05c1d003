# fpga_dnn overlay build: the one script to run in Vivado.
#
#   vivado -mode batch -source build_overlay.tcl [-tclargs --bd-only] [-tclargs --allow-timing-violation]
#
# (run_vivado.sh does this, plus the HLS step of the HLS path and the bundle's checksums.)
# Steps: [RTL path] package the Verilog as an IP -> block design -> synthesis, implementation,
# bitstream -> copy .bit/.hwh into the bundle folder. --bd-only stops after the block design
# (open the project in the Vivado GUI to look at it).

set fd(script_dir) [file dirname [file normalize [info script]]]
source [file join $fd(script_dir) config.tcl]
source [file join $fd(script_dir) common.tcl]
fd_info "overlay for $fd(design) on $fd(board) ($fd(flow) path)"
fd_check_tool_version
fd_check_bundle_spec

if {$fd(flow) eq "rtl"} {
    source [file join $fd(script_dir) package_ip.tcl]
} elseif {![file isfile [file join [fd_path $fd(ip_repo)] component.xml]]} {
    fd_error "no HLS IP in [fd_path $fd(ip_repo)]: run the HLS step first\
              (cd hls && vitis-run --mode hls --tcl hls_synth.tcl; run_vivado.sh does it)"
}
source [file join $fd(script_dir) block_design.tcl]
if {[fd_flag --bd-only]} {
    fd_info "stopped after the block design (--bd-only): [fd_path $fd(project_dir)]/$fd(project_name).xpr"
    return
}
if {[info exists fd(encrypt_family)]} { source [file join $fd(script_dir) encrypt_bitstream.tcl] }
source [file join $fd(script_dir) build_bitstream.tcl]
source [file join $fd(script_dir) export_bundle.tcl]
if {[info exists fd(encrypt_family)]} { fd_encrypt_export }
fd_info "done: bundle [fd_path $fd(bundle_dir)]"
