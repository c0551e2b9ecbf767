//! The host path's sysctls: the kernel must drop the VIP traffic it sees
//! (see the backend's docs).

use super::super::IoError;

/// What [`prepare_host_path`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPathReport {
    /// Settings changed (`key: old -> 0`).
    pub changed: Vec<String>,
}

/// Makes sure the kernel silently drops the VIP traffic it sees on
/// `interfaces` (see the module docs): `net.ipv4.conf.IF.forwarding`,
/// `net.ipv6.conf.IF.forwarding` and `net.ipv6.conf.all.forwarding` must be 0.
/// With `enforce` they are set to 0 (and reported); without, a non-zero one
/// is an error that says which. IPv6 settings are skipped when IPv6 is
/// disabled. Acts on the calling thread's network namespace.
pub fn prepare_host_path(interfaces: &[&str], enforce: bool) -> Result<HostPathReport, IoError> {
    let mut keys = Vec::new();
    for ifname in interfaces {
        crate::io::interface_info(ifname)?;
        keys.push(format!("net/ipv4/conf/{ifname}/forwarding"));
        keys.push(format!("net/ipv6/conf/{ifname}/forwarding"));
    }
    keys.push("net/ipv6/conf/all/forwarding".to_string());
    let mut report = HostPathReport::default();
    for key in keys {
        let path = format!("/proc/sys/{key}");
        let value = match std::fs::read_to_string(&path) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && key.starts_with("net/ipv6") => {
                continue
            }
            Err(source) => {
                return Err(IoError::Os {
                    what: "read sysctl",
                    interface: path,
                    source,
                })
            }
        };
        let value = value.trim();
        if value == "0" {
            continue;
        }
        let name = key.replace('/', ".");
        if !enforce {
            return Err(IoError::Setup(format!(
                "{name} is {value}: the kernel would route VIP traffic a second time; set it to 0 (sysctl -w {name}=0)"
            )));
        }
        std::fs::write(&path, "0").map_err(|source| IoError::Os {
            what: "write sysctl",
            interface: path.clone(),
            source,
        })?;
        report.changed.push(format!("{name}: {value} -> 0"));
    }
    Ok(report)
}
