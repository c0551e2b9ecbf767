//! EAL: its arguments' environment, start-up (once per process), its runtime
//! directory, virtual devices and the registration of worker threads.
#![allow(unsafe_code)]

use super::{cstring, eal_args, ffi, DpdkError, DpdkOptions};
use std::ffi::{c_char, c_int, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// `-rc` (a negative errno value) in words, with its number.
pub(super) fn strerror(rc: c_int) -> String {
    let err = rc.saturating_abs();
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string, valid until the next call on this thread; we
    // copy it at once.
    let msg = unsafe { CStr::from_ptr(ffi::lbfwd_strerror(err)) };
    format!("{} (errno {err})", msg.to_string_lossy())
}

/// The CPUs the calling thread may run on, as `a,b,c`.
pub(super) fn cpu_list() -> Result<String, DpdkError> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity(0, ...) writes at most `size_of` bytes into
    // the set we own.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(DpdkError::Option {
            field: "lcores",
            reason: format!(
                "cannot read this thread's CPU affinity: {}",
                std::io::Error::last_os_error()
            ),
        });
    }
    let cpus: Vec<String> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads bit `cpu` (< CPU_SETSIZE) of the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .map(|cpu| cpu.to_string())
        .collect();
    Ok(cpus.join(","))
}

/// What [`init_eal`] did, remembered for the process.
pub(super) struct EalState {
    /// The arguments, `--lcores` left out (the calling thread's affinity may
    /// differ between calls).
    pub(super) key: Vec<String>,
    pub(super) args: Vec<String>,
    pub(super) failed: Option<String>,
}

pub(super) static EAL: Mutex<Option<EalState>> = Mutex::new(None);

/// Serialises device attach and removal (EAL's hotplug is not meant to run
/// from several threads at once).
pub(super) static HOTPLUG: Mutex<()> = Mutex::new(());

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn eal_ready() -> Result<(), DpdkError> {
    match &*lock(&EAL) {
        Some(state) if state.failed.is_none() => Ok(()),
        Some(state) => Err(DpdkError::EalFailedEarlier(
            state.failed.clone().unwrap_or_default(),
        )),
        None => Err(DpdkError::EalNotInitialised),
    }
}

/// Initialises DPDK's EAL from `opts`, once per process. A later call with
/// the same options is a no-op; with other options it is an error (EAL
/// cannot be re-initialised), and after a failure every call fails.
pub fn init_eal(opts: &DpdkOptions) -> Result<(), DpdkError> {
    let args = eal_args(opts)?;
    let key: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with("--lcores="))
        .cloned()
        .collect();
    let mut eal = lock(&EAL);
    if let Some(state) = &*eal {
        if let Some(failed) = &state.failed {
            return Err(DpdkError::EalFailedEarlier(failed.clone()));
        }
        if state.key != key {
            return Err(DpdkError::EalReinit {
                current: state.args[1..].join(" "),
                requested: args[1..].join(" "),
            });
        }
        return Ok(());
    }
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| cstring("extra_eal_args", a))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*mut c_char> = cargs.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    argv.push(ptr::null_mut());
    let mut log = vec![0u8; 2048];
    // SAFETY: argv holds `args.len()` pointers to NUL-terminated strings
    // that live (in `cargs`) until after the call, then a NULL; EAL may
    // permute the pointer array (getopt) but does not write the strings.
    // `log` is a writable buffer of the length passed.
    let rc = unsafe {
        ffi::lbfwd_eal_init(
            args.len() as c_int,
            argv.as_mut_ptr(),
            log.as_mut_ptr().cast(),
            log.len(),
        )
    };
    // Made early in rte_eal_init: also after a failure.
    remove_runtime_dir_at_exit();
    if rc < 0 {
        let log = CStr::from_bytes_until_nul(&log)
            .map(|s| s.to_string_lossy().trim().to_string())
            .unwrap_or_default();
        let reason = strerror(rc);
        *eal = Some(EalState {
            key,
            args: args.clone(),
            failed: Some(reason.clone()),
        });
        return Err(DpdkError::EalInit {
            reason,
            args: args[1..].join(" "),
            log: if log.is_empty() {
                String::new()
            } else {
                format!("\nEAL said:\n{log}")
            },
        });
    }
    *eal = Some(EalState {
        key,
        args,
        failed: None,
    });
    Ok(())
}

/// EAL's runtime directory of this process, once [`init_eal`] made it.
pub(super) static RUNTIME_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Has EAL's runtime directory of this process (`/var/run/dpdk/lbfwd-PID`
/// for root) removed when the process exits. EAL makes it in
/// `rte_eal_init` and never removes it; with lbfwd's per-process
/// `--file-prefix` no other process can use it, and an appliance that
/// restarts lbfwd would otherwise keep one directory per run. A directory
/// not named after this process (an operator's own `--file-prefix` cannot
/// get there: it is reserved) is left alone.
pub(super) fn remove_runtime_dir_at_exit() {
    // SAFETY: rte_eal_get_runtime_dir returns EAL's static, NUL-terminated
    // buffer (empty before EAL wrote the directory's name); read at once.
    let dir = unsafe { CStr::from_ptr(ffi::lbfwd_runtime_dir()) };
    let dir = PathBuf::from(OsStr::from_bytes(dir.to_bytes()));
    let ours = format!("lbfwd-{}", std::process::id());
    if dir.file_name() != Some(OsStr::new(&ours)) {
        return;
    }
    if RUNTIME_DIR.set(dir).is_ok() {
        // SAFETY: registers a function of no arguments that reads only
        // RUNTIME_DIR (set above) and removes files; it never unwinds.
        unsafe { libc::atexit(remove_runtime_dir) };
    }
}

/// The `atexit` handler of [`remove_runtime_dir_at_exit`].
extern "C" fn remove_runtime_dir() {
    if let Some(dir) = RUNTIME_DIR.get() {
        // Nothing to report to at exit; a directory left is harmless.
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Attaches a (virtual) device after EAL start, e.g.
/// `net_af_packet1,iface=veth0` or `net_null3` (`rte_dev_probe`). Returns the
/// device name (the part before the first comma), which is also its port's
/// name. The device lives until [`detach_vdev`] or the end of the process.
pub fn attach_vdev(devargs: &str) -> Result<String, DpdkError> {
    eal_ready()?;
    let name = devargs.split(',').next().unwrap_or("").to_string();
    if name.is_empty() || devargs.contains(char::is_whitespace) {
        return Err(DpdkError::Attach {
            devargs: devargs.to_string(),
            reason: "not NAME[,key=value...] without spaces".to_string(),
        });
    }
    let c = cstring("vdevs", devargs)?;
    let _hotplug = lock(&HOTPLUG);
    // SAFETY: `c` is a NUL-terminated string alive for the call; hotplug
    // calls are serialised by HOTPLUG.
    let rc = unsafe { ffi::lbfwd_dev_probe(c.as_ptr()) };
    if rc < 0 {
        return Err(DpdkError::Attach {
            devargs: devargs.to_string(),
            reason: strerror(rc),
        });
    }
    Ok(name)
}

/// Removes a virtual device attached by [`attach_vdev`] (its port must be
/// closed).
pub fn detach_vdev(name: &str) -> Result<(), DpdkError> {
    eal_ready()?;
    let c = cstring("vdevs", name)?;
    let _hotplug = lock(&HOTPLUG);
    // SAFETY: `c` is a NUL-terminated string alive for the call; hotplug
    // calls are serialised by HOTPLUG.
    let rc = unsafe { ffi::lbfwd_vdev_remove(c.as_ptr()) };
    if rc < 0 {
        return Err(DpdkError::Attach {
            devargs: name.to_string(),
            reason: format!("removing it failed: {}", strerror(rc)),
        });
    }
    Ok(())
}

/// The names of the ports EAL knows.
pub fn port_names() -> Result<Vec<String>, DpdkError> {
    eal_ready()?;
    let mut names = Vec::new();
    for n in 0.. {
        let mut buf = [0 as c_char; ffi::PORT_NAME_LEN];
        // SAFETY: `buf` is writable for PORT_NAME_LEN (RTE_ETH_NAME_MAX_LEN)
        // bytes, the length passed; the shim NUL-terminates it.
        let rc = unsafe { ffi::lbfwd_port_nth_name(n, buf.as_mut_ptr(), buf.len()) };
        if rc < 0 {
            break;
        }
        names.push(c_chars_to_string(&buf));
    }
    Ok(names)
}

pub(super) fn c_chars_to_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

thread_local! {
    /// Set once this thread registered with EAL; unregisters at thread exit
    /// so that the lcore id can be reused.
    static REGISTERED: std::cell::RefCell<Option<ThreadRegistration>> =
        const { std::cell::RefCell::new(None) };
}

pub(super) struct ThreadRegistration;

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: this thread registered itself (REGISTERED is per thread)
        // and unregisters once, at thread exit.
        unsafe { ffi::lbfwd_thread_unregister() };
    }
}

/// Registers the calling thread with EAL (`rte_thread_register`) unless it
/// is an EAL thread already, and returns its lcore id. Worker threads get a
/// per-lcore mempool cache that way; [`DpdkQueue`] calls this on its first
/// poll. The registration ends when the thread exits.
pub fn register_current_thread() -> Result<u32, DpdkError> {
    eal_ready()?;
    // SAFETY: rte_lcore_id reads a thread-local variable.
    let id = unsafe { ffi::lbfwd_lcore_id() };
    if id != u32::MAX {
        return Ok(id);
    }
    // SAFETY: EAL is initialised (checked above); the call affects only the
    // calling thread.
    let rc = unsafe { ffi::lbfwd_thread_register() };
    if rc < 0 {
        return Err(DpdkError::ThreadRegister(strerror(rc)));
    }
    REGISTERED.with(|r| *r.borrow_mut() = Some(ThreadRegistration));
    Ok(rc as u32)
}
