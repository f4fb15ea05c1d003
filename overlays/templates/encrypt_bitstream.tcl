# Optional bitstream encryption: copied into the overlay folder and sourced by build_overlay.tcl
# only when encryption was asked for (fpga_dnn.overlay.encryption), i.e. when config.tcl sets
# fd(encrypt_family). config.tcl holds the key files' paths on this machine, never key material;
# keys must never be copied into the bundle (checked after the export).
#
#   zynq7000 (PYNQ-Z2): AES-256 + HMAC by write_bitstream (BITSTREAM.ENCRYPTION.* properties, set
#                       by encrypt_pre_bitstream.tcl, a pre-hook of the implementation run's
#                       bitstream step: that step runs in the run's own Vivado process)
#   zynqmp (Ultra96):   AES-256-GCM + RSA authentication by bootgen after the export
#                       (encrypt_bootgen.tcl): <design>.bin replaces the plaintext .bit in the bundle

proc fd_check_key_file {path what} {
    if {![file isfile $path]} {
        fd_error "$what $path not found: bitstream encryption needs it on this machine\
                  (see overlays/README.md, 'Encrypted bitstreams')"
    }
}

fd_check_key_file $fd(encrypt_key_file) "AES key file"
if {$fd(encrypt_family) eq "zynq7000"} {
    set_property STEPS.WRITE_BITSTREAM.TCL.PRE [file join $fd(script_dir) encrypt_pre_bitstream.tcl] [get_runs impl_1]
    fd_info "bitstream encryption: AES-256 + HMAC (Zynq-7000), device key in $fd(encrypt_key_source)"
} elseif {$fd(encrypt_family) eq "zynqmp"} {
    fd_check_key_file $fd(encrypt_psk) "RSA primary secret key (PSK)"
    fd_check_key_file $fd(encrypt_ssk) "RSA secondary secret key (SSK)"
    fd_info "bitstream encryption: AES-256-GCM + RSA authentication by bootgen (Zynq UltraScale+),\
             key source $fd(encrypt_key_source)"
} else {
    fd_error "unknown encryption family $fd(encrypt_family)"
}

# After export_bundle.tcl: the ZynqMP image is made; then no key file may sit in the bundle.
proc fd_encrypt_export {} {
    global fd
    if {$fd(encrypt_family) eq "zynqmp"} {
        source [file join $fd(script_dir) encrypt_bootgen.tcl]
    }
    set bundle [fd_path $fd(bundle_dir)]
    set keys [glob -nocomplain -directory $bundle -types f *.nky *.pem *.bif]
    if {[llength $keys] > 0} {
        fd_error "key material in the bundle folder ([join $keys {, }]): remove it; keys never go into a bundle"
    }
    fd_info "bundle holds the encrypted bitstream only (no key, no plaintext bitstream)"
}
