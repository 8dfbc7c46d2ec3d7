//! libFuzzer entry point for [`quorate_fuzz::address_parse`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quorate_fuzz::address_parse(data));
