# Pre-hook of the implementation run's write_bitstream step (Zynq-7000): encrypt the bitstream
# with AES-256 and authenticate it with HMAC, keys from the .nky file (Key 0, Key StartCBC,
# Key HMAC); the device decrypts with the same key held in BBRAM or eFUSE. Set on impl_1 by
# encrypt_bitstream.tcl; runs in the run's own Vivado process, so it reads config.tcl itself.
source [file join [file dirname [file normalize [info script]]] config.tcl]
set_property BITSTREAM.ENCRYPTION.ENCRYPT YES [current_design]
set_property BITSTREAM.ENCRYPTION.ENCRYPTKEYSELECT $fd(encrypt_key_source) [current_design]
set_property BITSTREAM.ENCRYPTION.KEYFILE $fd(encrypt_key_file) [current_design]
