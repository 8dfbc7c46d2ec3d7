//! libFuzzer entry point for [`quorate_fuzz::policy_parse`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| quorate_fuzz::policy_parse(data));
