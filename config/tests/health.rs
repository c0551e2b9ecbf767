//! `health_check` on a load balancer: TOML and the Ironcore annotation load
//! into the same spec, and every bad key is reported with its location.

use lbfwd_config::*;
use std::path::PathBuf;
use std::time::Duration;

fn example() -> String {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lbfwd.toml"));
    std::fs::read_to_string(p).unwrap()
}

const GOOD: &str = r#"health_check = { kind = "tcp", port = 80, interval_ms = 500, timeout_ms = 300, rise = 2, fall = 2 }"#;

#[test]
fn example_health_check_resolves() {
    let text = example();
    assert!(text.contains(GOOD), "the example carries the issue's line");
    let c = Config::from_toml_str(&text, "lbfwd.toml").unwrap();
    let lb = c.state.load_balancer("loadbalancer-sample").unwrap();
    let check = lb.health_check.as_ref().unwrap().resolve().unwrap();
    assert_eq!(check.interval, Duration::from_millis(500));
    assert_eq!(check.timeout, Duration::from_millis(300));
    assert_eq!((check.rise, check.fall), (2, 2));
    // Saved state loads back equal (the state file).
    let again = DesiredState::from_toml_str(&c.state.to_toml(), "state.toml").unwrap();
    assert_eq!(again, c.state);
}

fn errors_of(line: &str) -> Vec<String> {
    let text = example().replace(GOOD, line);
    match Config::from_toml_str(&text, "lbfwd.toml") {
        Ok(_) => panic!("{line} was accepted"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn bad_keys_are_located() {
    let line_no = example().lines().position(|l| l == GOOD).unwrap() + 1;
    let e = errors_of(
        r#"health_check = { kind = "tcp", port = 80, interval_ms = 500, timeout_ms = 500 }"#,
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!("lbfwd.toml:{line_no}:")),
        "located at the line: {e:?}"
    );
    assert!(
        e[0].contains("load_balancer[0].health_check.timeout_ms: timeout_ms 500 must be at least 1 and below interval_ms 500"),
        "{e:?}"
    );
    let e = errors_of(r#"health_check = { kind = "http", rise = 0, fall = 2 }"#);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("health_check.kind: kind = \"http\" needs a port"),
        "{e:?}"
    );
    assert!(
        e[1].contains("health_check.rise: rise 0 is outside 1-100"),
        "{e:?}"
    );
    let e = errors_of(r#"health_check = { kind = "tcp", port = 80, intervall_ms = 500 }"#);
    assert!(e[0].starts_with(&format!("lbfwd.toml:{line_no}:")), "{e:?}");
    assert!(e[0].contains("intervall_ms"), "{e:?}");
    let e = errors_of(r#"health_check = { kind = "udp", port = 80 }"#);
    assert!(e[0].contains("udp"), "{e:?}");
    let e = errors_of(r#"health_check = { kind = "encap", path = "/x", all_unhealthy = "drop" }"#);
    assert!(
        e[0].contains("health_check.path: path is only for kind = \"http\""),
        "{e:?}"
    );
    let e = errors_of(r#"health_check = { kind = "encap", all_unhealthy = "maybe" }"#);
    assert!(e[0].contains("maybe"), "{e:?}");
}

#[test]
fn annotation_loads_and_bad_one_is_located() {
    let dir = std::env::temp_dir().join(format!("lbfwd-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("base.toml");
    std::fs::write(&base, example().replace(GOOD, "")).unwrap();
    let manifest = |value: &str| {
        format!(
            "apiVersion: networking.ironcore.dev/v1alpha1\nkind: LoadBalancer\nmetadata:\n  name: hc\n  annotations:\n    lbfwd.ironcore.dev/health-check: \"{value}\"\nspec:\n  type: Public\n  ipFamilies: [IPv4]\n  networkRef:\n    name: network-sample\n  networkInterfaceSelector:\n    matchLabels:\n      app: web\n  ports:\n  - protocol: TCP\n    port: 80\n"
        )
    };
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        manifest("kind=http,port=80,path=/healthz,interval_ms=500,timeout_ms=300"),
    )
    .unwrap();
    let c = Config::load_with_manifests(&base, &[good]).unwrap();
    let spec = c
        .state
        .load_balancer("hc")
        .unwrap()
        .health_check
        .clone()
        .unwrap();
    assert_eq!(spec.kind, HealthCheckKind::Http);
    assert_eq!(spec.path.as_deref(), Some("/healthz"));
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        manifest("kind=tcp,port=80,interval_ms=500,timeout_ms=900"),
    )
    .unwrap();
    let e: Vec<String> = Config::load_with_manifests(&base, std::slice::from_ref(&bad))
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("bad.yaml:6:"), "{e:?}");
    assert!(
        e[0].contains("metadata.annotations[\"lbfwd.ironcore.dev/health-check\"]")
            || e[0].contains("lbfwd.ironcore.dev/health-check"),
        "{e:?}"
    );
    assert!(e[0].contains("timeout_ms 900"), "{e:?}");
    std::fs::write(&bad, manifest("kind=tcp,prot=80")).unwrap();
    let e = Config::load_with_manifests(&base, &[bad])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad.yaml:6:") && e.contains("unknown key \"prot\""),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
