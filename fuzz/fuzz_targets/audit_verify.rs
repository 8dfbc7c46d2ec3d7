//! libFuzzer entry point for [`quorate_fuzz::audit_verify`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quorate_fuzz::audit_verify(data));
