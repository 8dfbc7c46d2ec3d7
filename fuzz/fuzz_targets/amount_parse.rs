//! libFuzzer entry point for [`quorate_fuzz::amount_parse`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quorate_fuzz::amount_parse(data));
