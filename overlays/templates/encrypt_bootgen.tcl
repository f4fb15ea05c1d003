# Zynq UltraScale+: encrypt (AES-256-GCM) and authenticate (RSA) the exported bitstream with
# bootgen, as a PL image for the FPGA manager. The .bif and the plaintext .bit go to the Vivado
# project folder; the bundle keeps <design>.bin (and the .hwh). Sourced by fd_encrypt_export.
# bootgen: $FPGA_DNN_BOOTGEN, else `bootgen` on PATH (it comes with Vivado's settings64.sh).

set fd_bundle [fd_path $fd(bundle_dir)]
set fd_proj [fd_path $fd(project_dir)]
set fd_plain [file join $fd_proj $fd(design)_plain.bit]
file rename -force [file join $fd_bundle $fd(design).bit] $fd_plain
set fd_bif [file join $fd_proj $fd(design)_pl.bif]
set fh [open $fd_bif w]
puts $fh "fpga_dnn_pl_image:"
puts $fh "\{"
puts $fh "  \[keysrc_encryption\] $fd(encrypt_key_source)"
puts $fh "  \[pskfile\] $fd(encrypt_psk)"
puts $fh "  \[sskfile\] $fd(encrypt_ssk)"
puts $fh "  \[destination_device = pl, encryption = aes, aeskeyfile = $fd(encrypt_key_file), authentication = rsa\] $fd_plain"
puts $fh "\}"
close $fh

if {[info exists ::env(FPGA_DNN_BOOTGEN)]} {
    set fd_bootgen $::env(FPGA_DNN_BOOTGEN)
} else {
    set fd_bootgen [auto_execok bootgen]
}
if {$fd_bootgen eq ""} {
    fd_error "bootgen not found (it comes with Vivado: source settings64.sh, or set FPGA_DNN_BOOTGEN)"
}
set fd_bin [file join $fd_bundle $fd(design).bin]
if {[catch {exec {*}$fd_bootgen -arch zynqmp -image $fd_bif -o $fd_bin -w on} fd_out]} {
    fd_error "bootgen failed: $fd_out"
}
if {![file isfile $fd_bin]} {
    fd_error "bootgen wrote no $fd_bin"
}
fd_info "bundle: $fd_bin (AES-256-GCM + RSA, from $fd_plain via $fd_bif)"
