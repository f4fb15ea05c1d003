# Synthesis, implementation and bitstream of the block design's wrapper, with the checks a
# user would otherwise do by reading logs: each run must complete, and the routed design must
# pass the full timing gate (as PYNQ's and SLAC's build scripts check it):
#   * setup: worst negative slack (WNS) >= 0 at the PL clock. A violation stops the run unless
#     -tclargs --allow-timing-violation is given (the bitstream may compute wrong results);
#   * hold (WHS) >= 0 and pulse width (TPWS) >= 0, and every net routed (report_route_status):
#     these always stop the run; a lower clock does not cure them.

proc fd_check_run {run what} {
    set r [get_runs $run]
    set progress [get_property PROGRESS $r]
    set status [get_property STATUS $r]
    if {$progress ne "100%" || [string match -nocase "*error*" $status] || [string match -nocase "*fail*" $status]} {
        fd_error "$what failed (run $run: $status, $progress); log: [get_property DIRECTORY $r]/runme.log"
    }
    fd_info "$what: $status"
}

# A number from a run's STATS property; "" (not computed) counts as no violation, anything else
# that is not a number stops the run rather than pass a gate unchecked.
proc fd_run_stat {run name} {
    set v [get_property STATS.$name [get_runs $run]]
    if {$v ne "" && ![string is double -strict $v]} {
        fd_error "run $run: STATS.$name is '$v', not a number"
    }
    return $v
}

# Nets with routing errors (unrouted or conflicting) in the open routed design, from
# report_route_status (also written to route_status.rpt); falls back to the run's
# STATS.FAILED_NETS if the report's summary lines are not found.
proc fd_routing_errors {report_file} {
    report_route_status -file $report_file
    set text [report_route_status -return_string]
    set n 0
    set found 0
    foreach what {"nets with routing errors" "unrouted nets"} {
        if {[regexp -nocase "# of ${what}\[. \]*:\\s*(\\d+)" $text -> count]} {
            set found 1
            if {$count > $n} { set n $count }
        }
    }
    if {!$found} {
        set n [fd_run_stat impl_1 FAILED_NETS]
        if {$n eq ""} { fd_error "cannot read the route status (see $report_file)" }
    }
    return $n
}

proc fd_timing_gate {reports} {
    global fd
    set summary [file join $reports timing_summary.rpt]
    set wns [fd_run_stat impl_1 WNS]
    set whs [fd_run_stat impl_1 WHS]
    set tpws [fd_run_stat impl_1 TPWS]
    set unrouted [fd_routing_errors [file join $reports route_status.rpt]]
    if {$unrouted > 0} {
        fd_error "$unrouted net(s) not routed (see [file join $reports route_status.rpt]): the design\
                  does not fit the routing; the bitstream would not work"
    }
    if {$whs ne "" && $whs < 0} {
        fd_error "hold timing not met: worst hold slack $whs ns (see $summary)"
    }
    if {$tpws ne "" && $tpws < 0} {
        fd_error "pulse width not met: total pulse width negative slack $tpws ns (see $summary)"
    }
    if {$wns ne "" && $wns < 0} {
        set msg "timing not met at $fd(clock_mhz) MHz: worst negative slack $wns ns (see $summary).\
                 Pipeline the design more or lower pl_clock_mhz in the board file."
        if {[fd_flag --allow-timing-violation]} {
            fd_warn $msg
            return
        }
        fd_error "$msg To export the bitstream anyway: -tclargs --allow-timing-violation"
    }
    fd_info "timing met at $fd(clock_mhz) MHz: WNS $wns ns, WHS $whs ns, TPWS $tpws ns, all nets routed"
}

generate_target all [get_files $fd(bd_name).bd]
launch_runs synth_1 -jobs $fd(jobs)
wait_on_run synth_1
fd_check_run synth_1 "synthesis"

launch_runs impl_1 -to_step write_bitstream -jobs $fd(jobs)
wait_on_run impl_1
fd_check_run impl_1 "implementation and bitstream"

open_run impl_1
set fd_reports [fd_path $fd(reports_dir)]
file mkdir $fd_reports
report_utilization -file [file join $fd_reports utilization.rpt]
report_timing_summary -file [file join $fd_reports timing_summary.rpt]
fd_timing_gate $fd_reports
