//! Fuzz target `manifest`: Ironcore YAML manifests (multi-document
//! `LoadBalancer`, `LoadBalancerRouting`, `Network`, `NetworkInterface`)
//! applied on top of a desired state loaded from a config
//! (`DesiredState::apply_manifests_str`, what `lbfwd run -f` and `lbfwd
//! check` do per file), then resolved.
//!
//! Checks that nothing panics; that refused manifests get at least one
//! error, each with a message, and change nothing of the state (all or
//! nothing); that an accepted state saves (`to_toml`) as a text that loads
//! into an equal state; and that its resolution either succeeds or says
//! why.
#![no_main]

use lbfwd_config::{Config, DesiredState};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The interfaces and pool the Ironcore documentation examples refer to.
const BASE: &str = include_str!("../../../config/tests/fixtures/ironcore-base.toml");

fn base() -> &'static Config {
    static BASE_CONFIG: OnceLock<Config> = OnceLock::new();
    BASE_CONFIG.get_or_init(|| Config::from_toml_str(BASE, "ironcore-base.toml").expect("base"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = base();
    let mut state = config.state.clone();
    match state.apply_manifests_str(text, "fuzz.yaml") {
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without an error");
            for e in errors.iter() {
                assert!(!e.to_string().trim().is_empty(), "an empty error");
            }
            assert!(state == config.state, "refused manifests changed the state");
        }
        Ok(_) => {
            let saved = state.to_toml();
            let back = DesiredState::from_toml_str(&saved, "state.toml")
                .unwrap_or_else(|e| panic!("the state does not load back: {e}\n{saved}"));
            assert!(
                back == state,
                "the state loads back as another one:\n{saved}"
            );
            if let Err(errors) = state.resolve(&config.settings.underlay) {
                assert!(!errors.is_empty(), "a resolution refused without an error");
            }
        }
    }
});
