//! The ECMP network of `scripts/lib/topo-ecmp.sh` as the router sees it:
//! which appliances are next hops of the VIPs (the BGP and sync tests).

use crate::cmd::Output;
use crate::{Node, TopologyInfo};
use std::collections::BTreeSet;
use std::time::Duration;

/// The router's next hops for `vip` (`ip route show`).
pub fn next_hops(topo: &TopologyInfo, vip: &str) -> BTreeSet<String> {
    let (family, prefix) = if vip.contains(':') {
        ("-6", format!("{vip}/128"))
    } else {
        ("-4", format!("{vip}/32"))
    };
    let out = topo
        .exec(
            Node::Router,
            "ip",
            &[family, "route", "show", &prefix],
            Duration::from_secs(5),
        )
        .and_then(Output::checked)
        .expect("ip route");
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect()
}

/// Both VIPs have exactly these next hops (`lb` numbers).
pub fn routed_via(topo: &TopologyInfo, lbs: &[u8]) -> Result<(), String> {
    for (vip, key) in [(topo.vip4(), "IP4"), (topo.vip6(), "IP6")] {
        let want: BTreeSet<String> = lbs
            .iter()
            .map(|n| topo.get(&format!("LB{n}_{key}")).to_string())
            .collect();
        let got = next_hops(topo, vip);
        if got != want {
            return Err(format!("{vip} via {got:?}, want {want:?}"));
        }
    }
    Ok(())
}

/// The router's BFD sessions to these appliances (`lb` numbers, both
/// families) are up at the fast rate: only then does a silent link loss
/// withdraw within a second. A session that just came up (after a restart)
/// runs at BIRD's idle rate of 1 s until the rates are negotiated.
pub fn bfd_fast(topo: &TopologyInfo, lbs: &[u8], max_detect_s: f64) -> Result<(), String> {
    let out = crate::cmd::run(
        std::process::Command::new("birdc").args([
            "-s",
            topo.get("ROUTER_BIRD_SOCKET"),
            "show",
            "bfd",
            "sessions",
        ]),
        Duration::from_secs(5),
    )
    .and_then(Output::checked)
    .map_err(|e| format!("birdc show bfd sessions: {e}"))?;
    for n in lbs {
        for key in ["IP4", "IP6"] {
            let addr = topo.get(&format!("LB{n}_{key}"));
            let line = out
                .stdout
                .lines()
                .find(|l| l.split_whitespace().next() == Some(addr))
                .ok_or_else(|| format!("no BFD session to {addr}: {}", out.stdout))?;
            let f: Vec<&str> = line.split_whitespace().collect();
            let timeout: f64 = f.last().and_then(|t| t.parse().ok()).unwrap_or(f64::MAX);
            if f.get(2) != Some(&"Up") || timeout > max_detect_s {
                return Err(format!("BFD session to {addr}: {line}"));
            }
        }
    }
    Ok(())
}
