# RTL path, step 1: package the accelerator's Verilog (AXI-Stream shell + core + generated top)
# as a Vivado IP in fd(ip_repo), so the block design can instantiate it.
#
# The top has ports clk, aresetn, s_axis_t{data,valid,ready,last}, m_axis_t{data,valid,ready,last}
# (fpga_dnn.simulate.shell.render_axis_top). The IP packager infers the two AXI-Stream interfaces
# from the port names; this script makes sure they exist, associates them with clk, and declares
# aresetn an active-low reset, so that IP integrator wires clock, reset and streams correctly.

set fd_ip_dir [file join [fd_path $fd(ip_repo)] $fd(top)]
fd_info "packaging $fd(top) as IP $fd(ip_vendor):$fd(ip_library):$fd(top):$fd(ip_version) in $fd_ip_dir"
file delete -force $fd_ip_dir

create_project fd_ip_pkg [fd_path $fd(ip_project_dir)] -part $fd(part) -force
add_files -norecurse [fd_paths $fd(rtl_sources)]
set_property top $fd(top) [current_fileset]
update_compile_order -fileset sources_1

ipx::package_project -root_dir $fd_ip_dir -vendor $fd(ip_vendor) -library $fd(ip_library) \
    -taxonomy /UserIP -import_files -set_current true
set fd_core [ipx::current_core]
set_property name $fd(top) $fd_core
set_property version $fd(ip_version) $fd_core
set_property display_name "fpga_dnn $fd(design) (AXI-Stream)" $fd_core
set_property description "fpga_dnn accelerator $fd(design): AXI-Stream in ($fd(in_bits) bits),\
    AXI-Stream out ($fd(out_bits) bits), beat layout fpga_dnn-lanes-v1" $fd_core
set_property supported_families {zynq Production zynquplus Production} $fd_core

# Interfaces: infer what the packager missed, then require all four.
ipx::infer_bus_interfaces xilinx.com:interface:axis_rtl:1.0 $fd_core
ipx::infer_bus_interfaces xilinx.com:signal:clock_rtl:1.0 $fd_core
ipx::infer_bus_interfaces xilinx.com:signal:reset_rtl:1.0 $fd_core
foreach busif [list $fd(accel_in) $fd(accel_out) $fd(accel_clk) $fd(accel_resetn)] {
    if {[ipx::get_bus_interfaces $busif -of_objects $fd_core] eq ""} {
        fd_error "IP packaging found no interface '$busif' on $fd(top); its ports must be named\
                  clk, aresetn, s_axis_t* and m_axis_t*"
    }
}
set fd_rst [ipx::get_bus_interfaces $fd(accel_resetn) -of_objects $fd_core]
set fd_pol [ipx::get_bus_parameters POLARITY -of_objects $fd_rst]
if {$fd_pol eq ""} { set fd_pol [ipx::add_bus_parameter POLARITY $fd_rst] }
set_property value ACTIVE_LOW $fd_pol
ipx::associate_bus_interfaces -busif $fd(accel_in) -clock $fd(accel_clk) $fd_core
ipx::associate_bus_interfaces -busif $fd(accel_out) -clock $fd(accel_clk) $fd_core
ipx::associate_bus_interfaces -clock $fd(accel_clk) -reset $fd(accel_resetn) $fd_core

ipx::create_xgui_files $fd_core
ipx::update_checksums $fd_core
ipx::check_integrity $fd_core
ipx::save_core $fd_core
close_project
fd_info "IP packaged: $fd_ip_dir/component.xml"
