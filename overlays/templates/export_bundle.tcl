# Export: copy the bitstream and the hardware handoff into the bundle folder under ONE base name
# (<design>.bit, <design>.hwh), as pynq.Overlay needs. spec.json is already there (written by
# fpga_dnn); finalize_bundle.py afterwards adds the checksums of the two files and the PL clock
# Vivado really set (read back in block_design.tcl, written here to reports/pl_clock_mhz.txt).
#
# The .hwh moved between Vivado releases: 2020.2 and later generate block-design products under
# <project>.gen/sources_1/bd/<bd>/hw_handoff/, 2020.1 and older under <project>.srcs/...; both are
# tried, then the whole project folder is searched.

proc fd_find_files {dir pattern} {
    set found [glob -nocomplain -directory $dir -types f $pattern]
    foreach sub [glob -nocomplain -directory $dir -types d *] {
        set found [concat $found [fd_find_files $sub $pattern]]
    }
    return $found
}

proc fd_find_hwh {} {
    global fd
    set proj [fd_path $fd(project_dir)]
    set bd $fd(bd_name)
    foreach srcdir [list $fd(project_name).gen $fd(project_name).srcs] {
        set candidate [file join $proj $srcdir sources_1 bd $bd hw_handoff $bd.hwh]
        if {[file isfile $candidate]} { return $candidate }
    }
    set found [fd_find_files $proj $bd.hwh]
    if {[llength $found] == 0} {
        fd_error "no $bd.hwh under $proj: the block design's output products were not generated"
    }
    return [lindex $found 0]
}

proc fd_find_bit {} {
    global fd
    set impl_dir [get_property DIRECTORY [get_runs impl_1]]
    set bit [file join $impl_dir $fd(bd_name)_wrapper.bit]
    if {[file isfile $bit]} { return $bit }
    set found [glob -nocomplain -directory $impl_dir -types f *.bit]
    if {[llength $found] != 1} {
        fd_error "expected one bitstream in $impl_dir, found [llength $found]"
    }
    return [lindex $found 0]
}

set fd_bundle [fd_path $fd(bundle_dir)]
file mkdir $fd_bundle
set fd_bit [fd_find_bit]
set fd_hwh [fd_find_hwh]
file copy -force $fd_bit [file join $fd_bundle $fd(design).bit]
file copy -force $fd_hwh [file join $fd_bundle $fd(design).hwh]
fd_info "bundle: [file join $fd_bundle $fd(design).bit] (from $fd_bit)"
fd_info "bundle: [file join $fd_bundle $fd(design).hwh] (from $fd_hwh)"
set fd_clock_file [file join [fd_path $fd(reports_dir)] pl_clock_mhz.txt]
file mkdir [file dirname $fd_clock_file]
set fh [open $fd_clock_file w]
puts $fh $fd(clock_actual_mhz)
close $fh
fd_info "PL clock $fd(clock_actual_mhz) MHz -> $fd_clock_file"
