# Synthesis, implementation and bitstream of the block design's wrapper, with the checks a
# user would otherwise do by reading logs: each run must complete, and timing must be met at
# the board's PL clock (a bitstream with negative slack may compute wrong results on the board;
# pass -tclargs --allow-timing-violation to export it anyway).

proc fd_check_run {run what} {
    set r [get_runs $run]
    set progress [get_property PROGRESS $r]
    set status [get_property STATUS $r]
    if {$progress ne "100%" || [string match -nocase "*error*" $status] || [string match -nocase "*fail*" $status]} {
        fd_error "$what failed (run $run: $status, $progress); log: [get_property DIRECTORY $r]/runme.log"
    }
    fd_info "$what: $status"
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
set fd_wns [get_property STATS.WNS [get_runs impl_1]]
if {$fd_wns ne "" && $fd_wns < 0} {
    set fd_msg "timing not met at $fd(clock_mhz) MHz: worst negative slack $fd_wns ns\
                (see [file join $fd_reports timing_summary.rpt]). Pipeline the design more or lower\
                pl_clock_mhz in the board file."
    if {[fd_flag --allow-timing-violation]} {
        fd_warn $fd_msg
    } else {
        fd_error "$fd_msg To export the bitstream anyway: -tclargs --allow-timing-violation"
    }
} else {
    fd_info "timing met at $fd(clock_mhz) MHz (worst negative slack $fd_wns ns)"
}
