//! What the models run on, described from the system's own files: the backend choice
//! (`auto`) is cached per device, and every benchmark report names the machine it measured.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// CPU model name (`/proc/cpuinfo`), or the board's model on ARM boards that give none.
    pub cpu: String,
    /// Logical CPUs this process may use.
    pub cores: usize,
    pub arch: String,
    pub os: String,
    /// NVIDIA GPUs the driver lists (`/proc/driver/nvidia/gpus/*/information`), or the Jetson
    /// module (`/proc/device-tree/model`); empty when none.
    pub gpus: Vec<String>,
    /// CPU features tract's kernels choose by, as the kernel reports them.
    pub cpu_features: Vec<String>,
    /// The onnxruntime library named by `ORT_DYLIB_PATH`, when set.
    pub onnxruntime: Option<String>,
}

/// Features worth naming: the ones that select matrix kernels.
const FEATURES: [&str; 10] = [
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "f16c",
    "asimd",
    "fphp",
    "asimddp",
    "i8mm",
];

impl Device {
    pub fn probe() -> Device {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |names: &[&str]| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                names.contains(&k.trim()).then(|| v.trim().to_string())
            })
        };
        let board = read_trimmed("/proc/device-tree/model");
        let cpu = field(&["model name", "Model", "cpu model"])
            .or_else(|| board.clone())
            .unwrap_or_else(|| "unknown CPU".into());
        let flags = field(&["flags", "Features"]).unwrap_or_default();
        let cpu_features =
            flags.split_whitespace().filter(|f| FEATURES.contains(f)).map(str::to_string).collect();
        let mut gpus: Vec<String> = std::fs::read_dir("/proc/driver/nvidia/gpus")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let info = std::fs::read_to_string(e.path().join("information")).ok()?;
                info.lines().find_map(|l| l.strip_prefix("Model:")).map(|m| m.trim().to_string())
            })
            .collect();
        if let Some(b) = board.filter(|b| b.contains("Jetson")) {
            gpus.push(b);
        }
        Device {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            arch: std::env::consts::ARCH.into(),
            os: read_trimmed("/proc/sys/kernel/osrelease")
                .map_or_else(|| std::env::consts::OS.into(), |r| format!("Linux {r}")),
            gpus,
            cpu_features,
            onnxruntime: std::env::var_os("ORT_DYLIB_PATH").map(|p| p.to_string_lossy().into()),
        }
    }

    /// The key a backend choice is cached under: whatever would change which backend is
    /// fastest (the processor, its cores, the GPUs, the onnxruntime library, this build).
    pub fn fingerprint(&self) -> String {
        format!(
            "{} | {} cores | {} | {} | gpu: {} | ort: {} | edgeid {}",
            self.cpu,
            self.cores,
            self.arch,
            self.cpu_features.join(","),
            self.gpus.join(", "),
            self.onnxruntime.as_deref().unwrap_or("-"),
            env!("CARGO_PKG_VERSION"),
        )
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_machine() {
        let d = Device::probe();
        assert!(d.cores >= 1);
        assert_eq!(d.arch, std::env::consts::ARCH);
        assert!(!d.cpu.is_empty());
        // The fingerprint changes with what changes speed.
        let mut other = d.clone();
        other.cores += 1;
        assert_ne!(d.fingerprint(), other.fingerprint());
    }
}
