//! Fuzz target `config`: the TOML configuration through the config crate's
//! load entry point (`Config::from_toml_str`, what `Config::load` runs on a
//! file's text: parse, settings, desired state, resolution).
//!
//! Checks that nothing panics; that a refused text gets at least one error,
//! each with a message and a place (a line in the file, or a field path);
//! and that an accepted config exports (`to_toml`) as a text that loads
//! into an equal config.
#![no_main]

use lbfwd_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text, "fuzz.toml") {
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without an error");
            for e in errors.iter() {
                let shown = e.to_string();
                assert!(!shown.trim().is_empty(), "an empty error");
                assert!(
                    e.location.as_ref().is_some_and(|l| l.file == "fuzz.toml")
                        || !e.path.is_empty(),
                    "an error that says not where: {shown}"
                );
            }
        }
        Ok(config) => {
            let export = config.to_toml();
            let back = Config::from_toml_str(&export, "export.toml")
                .unwrap_or_else(|e| panic!("the export does not load: {e}\n{export}"));
            assert!(
                back == config,
                "the export loads as another config:\n{export}"
            );
        }
    }
});
