//! The machine a result was measured on: CPU model, cores, kernel, load.
//! Every result carries it, so numbers from different machines are never
//! compared by mistake.

use serde::Serialize;

/// What the benchmark ran on.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical CPUs online.
    pub cores: usize,
    /// CPUs this process may run on (its affinity mask).
    pub allowed_cores: Vec<usize>,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the result was taken (other work on the
    /// machine makes every figure pessimistic).
    pub load_avg_1m: f64,
    /// Hypervisor, when `/proc/cpuinfo` says the CPU is virtual.
    pub virtualized: bool,
}

impl Machine {
    /// Reads the machine's description now.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let virtualized = cpuinfo
            .lines()
            .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .max(
                cpuinfo
                    .lines()
                    .filter(|l| l.starts_with("processor"))
                    .count(),
            );
        let allowed_cores = core_affinity::get_core_ids()
            .map(|ids| ids.into_iter().map(|c| c.id).collect())
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let load_avg_1m = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(f64::NAN);
        Machine {
            cpu,
            cores,
            allowed_cores,
            kernel,
            load_avg_1m,
            virtualized,
        }
    }

    /// One line for logs and tables: `AMD EPYC, 2 cores (VM), load 1.2`.
    pub fn summary(&self) -> String {
        format!(
            "{}, {} core{}{}, kernel {}, load average {:.1}",
            self.cpu,
            self.cores,
            if self.cores == 1 { "" } else { "s" },
            if self.virtualized {
                " (virtual machine)"
            } else {
                ""
            },
            self.kernel,
            self.load_avg_1m
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_this_machine() {
        let m = Machine::detect();
        assert!(m.cores >= 1);
        assert!(!m.cpu.is_empty());
        assert!(m.summary().contains(&m.cpu));
    }
}
