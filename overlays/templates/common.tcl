# fpga_dnn overlay scripts: helpers shared by every step (Vivado and the HLS tool).
#
# Copied verbatim by fpga_dnn.overlay into each output folder; every design- and board-specific
# value comes from config.tcl (the array `fd`), which is sourced first. Messages use Vivado's
# "INFO:/WARNING:/ERROR:" prefixes so they stand out in vivado.log; fd_error also raises a Tcl
# error, which makes `vivado -mode batch` exit with a non-zero status.

proc fd_info {msg} { puts "INFO: \[fpga_dnn\] $msg" }
proc fd_warn {msg} { puts "WARNING: \[fpga_dnn\] $msg" }
proc fd_error {msg} {
    puts "ERROR: \[fpga_dnn\] $msg"
    error "fpga_dnn: $msg"
}

# A path from config.tcl: relative paths are relative to the output folder (fd(script_dir)), so
# the folder can be copied to the machine that has Vivado.
proc fd_path {p} {
    global fd
    if {[file pathtype $p] eq "relative"} {
        return [file normalize [file join $fd(script_dir) $p]]
    }
    return $p
}

proc fd_paths {ps} {
    set out {}
    foreach p $ps { lappend out [fd_path $p] }
    return $out
}

# True if `flag` (e.g. --bd-only) was given after -tclargs.
proc fd_flag {flag} {
    global argv
    return [expr {[info exists argv] && [lsearch -exact $argv $flag] >= 0}]
}

# {key value ...} -> {CONFIG.key value ...}, for set_property -dict.
proc fd_config_list {kv} {
    set out {}
    foreach {k v} $kv { lappend out CONFIG.$k $v }
    return $out
}

# Warn (do not stop) when this is not the Vivado release the scripts target.
proc fd_check_tool_version {} {
    global fd
    set v [version -short]
    if {[string first $fd(vivado_version) $v] != 0} {
        fd_warn "these scripts target Vivado $fd(vivado_version), the release PYNQ $fd(pynq_image) images\
                 are built with; this is Vivado $v. IP versions are looked up, not hard-coded, so another\
                 release should work; check the warnings below."
    } else {
        fd_info "Vivado $v (targeted: $fd(vivado_version), PYNQ $fd(pynq_image))"
    }
    return $v
}

# The newest installed IP integrator IP whose VLNV starts with `prefix` (vendor:library:name), so
# one script serves several Vivado releases whatever the IP's version there. `get_ipdefs -all`
# also lists hidden IP and IP that only the IP catalog (not IP integrator) can instantiate:
# filtered out, as Vivado's own write_bd_tcl scripts and ADI's do.
proc fd_latest_ipdef {prefix} {
    set defs [get_ipdefs -all -filter {DESIGN_TOOL_CONTEXTS =~ *IPI*} "${prefix}:*"]
    if {[llength $defs] == 0} {
        fd_error "IP $prefix is not in Vivado's IP integrator catalog (check the IP repository paths and the part)"
    }
    set best [lindex [lsort -dictionary $defs] end]
    fd_info "IP $prefix -> $best"
    return $best
}

# Board repositories: FPGA_DNN_BOARD_REPO may name an extra folder of board files. Vivado reads
# board.repoPaths when a project is created, so this runs before create_project; the project's
# BOARD_PART_REPO_PATHS is set too (fd_set_board_part), so the project keeps seeing the folder.
proc fd_board_repo_paths {} {
    global env
    if {![info exists env(FPGA_DNN_BOARD_REPO)] || $env(FPGA_DNN_BOARD_REPO) eq ""} { return {} }
    set repo [file normalize $env(FPGA_DNN_BOARD_REPO)]
    if {![file isdirectory $repo]} {
        fd_error "FPGA_DNN_BOARD_REPO=$repo is not a folder (it should hold the board files, e.g. .../ultra96v2/1.2/board.xml)"
    }
    set_param board.repoPaths [concat [get_param board.repoPaths] [list $repo]]
    fd_info "board repository $repo"
    return [list $repo]
}

# Set the project's board part (board preset for the PS). Takes the exact file version from the
# board file, else the newest installed version of the same board; stops with a clear ERROR
# naming where to get the board files when none is installed. `repos`: fd_board_repo_paths.
proc fd_set_board_part {repos} {
    global fd
    if {[llength $repos]} {
        set_property BOARD_PART_REPO_PATHS $repos [current_project]
    }
    set want $fd(board_part)
    set all [get_board_parts -quiet]
    set found [lsearch -inline -exact -nocase $all $want]
    if {$found eq ""} {
        set prefix [join [lrange [split $want :] 0 2] :]
        set same_board [lsearch -all -inline -glob -nocase $all "${prefix}:*"]
        set found [lindex [lsort -dictionary $same_board] end]
        if {$found eq ""} {
            fd_error "the Vivado board files for $fd(board) ($want) are not installed. Get them:\
                      $fd(board_files). Or put them in a folder and run again with\
                      FPGA_DNN_BOARD_REPO=<folder>."
        }
        fd_warn "board part $want is not installed; using $found"
    }
    set_property board_part $found [current_project]
    fd_info "board part $found"
    return $found
}

# The bundle folder must hold the spec.json fpga_dnn wrote (finalize_bundle.py adds the checksums
# to it at the very end): checked before anything long runs, not after the bitstream.
proc fd_check_bundle_spec {} {
    global fd
    set spec [file join [fd_path $fd(bundle_dir)] spec.json]
    if {![file isfile $spec]} {
        fd_error "no $spec: the bundle folder must be the one fpga_dnn wrote beside these scripts\
                  (copy the whole overlay folder, bundle/ included, or regenerate the scripts)"
    }
}
