//! libFuzzer entry point for [`quorate_fuzz::stored_records`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quorate_fuzz::stored_records(data));
