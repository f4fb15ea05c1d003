# RTL path, step 1: package the accelerator's Verilog (AXI-Stream shell + core + generated top)
# as a Vivado IP in fd(ip_repo), so the block design can instantiate it.
#
# The top has ports clk, aresetn, s_axis_t{data,valid,ready,last,keep}, m_axis_t{data,valid,ready,
# last,keep} (fpga_dnn.simulate.shell.render_axis_top). The IP packager infers the two AXI-Stream
# interfaces from the port names; this script makes sure they exist, associates them with clk, and
# declares aresetn an active-low reset, so that IP integrator wires clock, reset and streams.
#
# $readmemh tables (da4ml's lookup tables, fd(rtl_data_files)): the Verilog opens them by bare
# file name, so they must travel with the IP into the block design's out-of-context synthesis.
# They are added to the packaging project as memory files used in synthesis (as da4ml's own
# Vivado script does), and after packaging the IP's synthesis file group must list each of them
# (added there if the packager left one out); the run stops otherwise.

set fd_ip_dir [file join [fd_path $fd(ip_repo)] $fd(top)]
fd_info "packaging $fd(top) as IP $fd(ip_vendor):$fd(ip_library):$fd(top):$fd(ip_version) in $fd_ip_dir"
file delete -force $fd_ip_dir

create_project fd_ip_pkg [fd_path $fd(ip_project_dir)] -part $fd(part) -force
add_files -norecurse [fd_paths $fd(rtl_sources)]
if {[llength $fd(rtl_data_files)]} {
    add_files -norecurse [fd_paths $fd(rtl_data_files)]
    foreach f [fd_paths $fd(rtl_data_files)] {
        set_property used_in_synthesis true [get_files $f]
        set_property used_in_simulation true [get_files $f]
    }
}
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

# The packaged file list: every $readmemh table in the synthesis file group.
proc fd_check_packaged_data_files {core root} {
    global fd
    if {![llength $fd(rtl_data_files)]} { return }
    set group [ipx::get_file_groups xilinx_anylanguagesynthesis -of_objects $core]
    if {$group eq ""} { fd_error "the packaged IP has no synthesis file group (xilinx_anylanguagesynthesis)" }
    set names {}
    foreach f [ipx::get_files -of_objects $group] { lappend names [file tail [get_property NAME $f]] }
    foreach f $fd(rtl_data_files) {
        set name [file tail $f]
        if {[lsearch -exact $names $name] < 0} {
            set imported [file join src $name]
            if {![file isfile [file join $root $imported]]} {
                file mkdir [file join $root src]
                file copy -force [fd_path $f] [file join $root $imported]
            }
            set added [ipx::add_file $imported $group]
            # ipx's name of the memory-file type (component.xml userFileType "mem"); not run here
            if {[catch {set_property type mem $added} err]} {
                fd_warn "IP packaging: could not mark $name as a memory file ($err); check the IP's files"
            }
            fd_info "IP packaging: added the table $name to the synthesis files"
            lappend names $name
        }
    }
    set tables {}
    foreach f $fd(rtl_data_files) { lappend tables [file tail $f] }
    fd_info "IP synthesis files include the [llength $tables] \$readmemh table(s): [join $tables {, }]"
}
fd_check_packaged_data_files $fd_core $fd_ip_dir

ipx::create_xgui_files $fd_core
ipx::update_checksums $fd_core
ipx::check_integrity $fd_core
ipx::save_core $fd_core
close_project
fd_info "IP packaged: $fd_ip_dir/component.xml"
