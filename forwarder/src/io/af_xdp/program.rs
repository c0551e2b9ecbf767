//! [`XdpProgram`]: lbfwd's XDP program attached to one interface, its VIP
//! maps and its counters.
#![allow(unsafe_code)]

use super::ffi::{self, XDP_OBJECT};
use super::{os_err, AfXdpError, AttachMode, MAX_VIPS, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
use std::collections::HashSet;
use std::ffi::{c_int, c_void, CString};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex};

/// Counters of the XDP program, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// VIP frames redirected to a socket.
    pub redirected: u64,
    /// Other frames, passed to the kernel.
    pub passed: u64,
    /// VIP frames dropped because their queue had no socket.
    pub no_socket: u64,
}

/// lbfwd's XDP program attached to one interface, with its VIP maps.
///
/// Detached when dropped (and by the kernel if the process dies). Share it
/// with `Arc` between the control side ([`XdpProgram::set_vips`]) and the
/// queues opened on the interface ([`XskQueue::open`]).
pub struct XdpProgram {
    pub(super) interface: String,
    attach: AttachMode,
    /// The BPF link; dropping it (first) detaches the program.
    _link: OwnedFd,
    /// The program and its maps, whose fds the fields below borrow.
    _obj: BpfObj,
    vip4_fd: RawFd,
    vip6_fd: RawFd,
    xsks_fd: RawFd,
    stats_fd: RawFd,
    /// Serialises [`XdpProgram::set_vips`] calls.
    vip_lock: Mutex<()>,
}

// SAFETY: the bpf_object is only touched in Drop (close); every other use is
// of map fds through bpf(2), which the kernel serialises, and set_vips holds
// a mutex for its read-modify-write of the maps.
unsafe impl Send for XdpProgram {}
// SAFETY: as for Send: &self methods only make bpf(2) calls on map fds.
unsafe impl Sync for XdpProgram {}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("interface", &self.interface)
            .field("attach", &self.attach)
            .finish_non_exhaustive()
    }
}

/// The index of `interface` in the calling thread's network namespace.
pub(super) fn ifindex(interface: &str) -> Result<u32, AfXdpError> {
    let name = CString::new(interface).map_err(|_| AfXdpError::NoInterface {
        interface: interface.to_owned(),
    })?;
    // SAFETY: name is a valid NUL-terminated string for the call's duration.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(AfXdpError::NoInterface {
            interface: interface.to_owned(),
        });
    }
    Ok(index)
}

impl XdpProgram {
    /// Loads lbfwd's XDP program and attaches it to `interface` (in the
    /// calling thread's network namespace), with an empty VIP set: until
    /// [`XdpProgram::set_vips`], every frame goes to the kernel.
    pub fn attach(interface: &str, mode: AttachMode) -> Result<Arc<Self>, AfXdpError> {
        let index = ifindex(interface)?;
        let mut obj = ptr::null_mut();
        let mut fds: [c_int; 5] = [-1; 5];
        let bytes: &[u8] = &XDP_OBJECT.0;
        // SAFETY: bytes is a valid buffer for its length (libbpf copies what
        // it keeps); obj and fds are valid out-pointers, fds has the 5 slots
        // the shim writes.
        let rc = unsafe {
            ffi::lbx_prog_load(
                bytes.as_ptr().cast(),
                bytes.len(),
                &mut obj,
                fds.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(os_err("loading the XDP program", interface, rc));
        }
        // Closed on every path from here (the guard's Drop).
        let obj = BpfObj(NonNull::new(obj).expect("lbx_prog_load sets obj on success"));
        let (link, attach) = link(interface, fds[0], index, mode)?;
        Ok(Arc::new(XdpProgram {
            interface: interface.to_owned(),
            attach,
            _link: link,
            _obj: obj,
            vip4_fd: fds[1],
            vip6_fd: fds[2],
            xsks_fd: fds[3],
            stats_fd: fds[4],
            vip_lock: Mutex::new(()),
        }))
    }

    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The attach mode in effect (never [`AttachMode::Auto`]).
    pub fn attach_mode(&self) -> AttachMode {
        self.attach
    }

    /// Replaces the set of VIPs whose frames go to the sockets. New VIPs are
    /// added before stale ones are removed, so a VIP in both sets never
    /// misses a frame. Control side only: a few system calls per VIP.
    pub fn set_vips(&self, vips: &[IpAddr]) -> Result<(), AfXdpError> {
        let mut v4 = HashSet::new();
        let mut v6 = HashSet::new();
        for vip in vips {
            match vip {
                IpAddr::V4(a) => v4.insert(a.octets()),
                IpAddr::V6(a) => v6.insert(a.octets()),
            };
        }
        for (family, n) in [("IPv4", v4.len()), ("IPv6", v6.len())] {
            if n > MAX_VIPS {
                return Err(AfXdpError::Config {
                    what: "VIPs",
                    why: format!("{n} {family} VIPs, the XDP program holds at most {MAX_VIPS}"),
                });
            }
        }
        let _guard = self.vip_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sync_map(self.vip4_fd, &v4)?;
        self.sync_map(self.vip6_fd, &v6)?;
        Ok(())
    }

    /// Makes the hash map `fd` hold exactly the keys in `want`.
    fn sync_map<const N: usize>(
        &self,
        fd: RawFd,
        want: &HashSet<[u8; N]>,
    ) -> Result<(), AfXdpError> {
        let one: u8 = 1;
        for key in want {
            // SAFETY: key and value point at N and 1 bytes, the map's sizes.
            let rc = unsafe {
                ffi::bpf_map_update_elem(fd, key.as_ptr().cast(), ptr::from_ref(&one).cast(), 0)
            };
            if rc < 0 {
                return Err(os_err("adding a VIP to the XDP map", &self.interface, rc));
            }
        }
        for key in map_keys::<N>(fd) {
            if !want.contains(&key) {
                // SAFETY: key points at N bytes, the map's key size.
                let rc = unsafe { ffi::bpf_map_delete_elem(fd, key.as_ptr().cast()) };
                if rc < 0 && rc != -libc::ENOENT {
                    return Err(os_err(
                        "removing a VIP from the XDP map",
                        &self.interface,
                        rc,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The VIPs in the program's maps now.
    pub fn vips(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = map_keys::<4>(self.vip4_fd)
            .into_iter()
            .map(|k| IpAddr::V4(Ipv4Addr::from(k)))
            .collect();
        out.extend(
            map_keys::<16>(self.vip6_fd)
                .into_iter()
                .map(|k| IpAddr::V6(Ipv6Addr::from(k))),
        );
        out.sort();
        out
    }

    /// The program's counters, summed over CPUs.
    pub fn stats(&self) -> Result<XdpStats, AfXdpError> {
        // SAFETY: no arguments; returns a count or -errno.
        let cpus = unsafe { ffi::libbpf_num_possible_cpus() };
        if cpus <= 0 {
            return Err(os_err("counting possible CPUs", &self.interface, cpus));
        }
        let mut values = vec![0u64; cpus as usize];
        let mut sums = [0u64; 3];
        for (key, sum) in (0u32..).zip(sums.iter_mut()) {
            // SAFETY: a per-CPU array's value is one u64 per possible CPU;
            // values holds exactly that many.
            let rc = unsafe {
                ffi::bpf_map_lookup_elem(
                    self.stats_fd,
                    ptr::from_ref(&key).cast(),
                    values.as_mut_ptr().cast(),
                )
            };
            if rc < 0 {
                return Err(os_err("reading the XDP counters", &self.interface, rc));
            }
            *sum = values.iter().sum();
        }
        Ok(XdpStats {
            redirected: sums[0],
            passed: sums[1],
            no_socket: sums[2],
        })
    }

    /// Puts the socket `fd` in the XSKMAP at `queue`.
    pub(super) fn register(&self, queue: u32, fd: RawFd) -> Result<(), AfXdpError> {
        // SAFETY: key and value point at u32/i32, the XSKMAP's sizes.
        let rc = unsafe {
            ffi::bpf_map_update_elem(
                self.xsks_fd,
                ptr::from_ref(&queue).cast(),
                ptr::from_ref(&fd).cast(),
                0,
            )
        };
        if rc < 0 {
            return Err(os_err(
                "registering the AF_XDP socket in the XSKMAP",
                &self.interface,
                rc,
            ));
        }
        Ok(())
    }
}

/// Attaches `prog_fd` to `index` through a BPF link in `mode`, falling back
/// from native to generic for [`AttachMode::Auto`].
fn link(
    interface: &str,
    prog_fd: RawFd,
    index: u32,
    mode: AttachMode,
) -> Result<(OwnedFd, AttachMode), AfXdpError> {
    let try_mode = |flags: u32| -> Result<OwnedFd, AfXdpError> {
        // SAFETY: plain integers; the shim returns a new fd or -errno.
        let fd = unsafe { ffi::lbx_xdp_link(prog_fd, index as c_int, flags) };
        if fd < 0 {
            if matches!(-fd, libc::EBUSY | libc::EEXIST) {
                return Err(AfXdpError::Busy {
                    interface: interface.to_owned(),
                });
            }
            return Err(os_err("attaching the XDP program", interface, fd));
        }
        // SAFETY: fd is a new link fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    match mode {
        AttachMode::Native => Ok((try_mode(XDP_FLAGS_DRV_MODE)?, AttachMode::Native)),
        AttachMode::Generic => Ok((try_mode(XDP_FLAGS_SKB_MODE)?, AttachMode::Generic)),
        AttachMode::Auto => match try_mode(XDP_FLAGS_DRV_MODE) {
            Ok(fd) => Ok((fd, AttachMode::Native)),
            Err(e) if e.is_unsupported() => {
                eprintln!(
                    "lbfwd: af_xdp: {}: no native XDP on this driver ({e}); \
                     attaching in generic mode",
                    interface
                );
                Ok((try_mode(XDP_FLAGS_SKB_MODE)?, AttachMode::Generic))
            }
            Err(e) => Err(e),
        },
    }
}

/// A loaded libbpf object (the program and its maps), closed on drop.
struct BpfObj(NonNull<ffi::BpfObject>);

impl Drop for BpfObj {
    fn drop(&mut self) {
        // SAFETY: the object came from lbx_prog_load and is closed once.
        unsafe { ffi::bpf_object__close(self.0.as_ptr()) };
    }
}

/// Every key of the hash map `fd` (control side; allocates).
fn map_keys<const N: usize>(fd: RawFd) -> Vec<[u8; N]> {
    let mut keys = Vec::new();
    let mut prev: Option<[u8; N]> = None;
    loop {
        let mut next = [0u8; N];
        let prev_ptr = prev
            .as_ref()
            .map_or(ptr::null(), |k| k.as_ptr().cast::<c_void>());
        // SAFETY: prev_ptr is null (first key) or N bytes; next is N bytes.
        let rc = unsafe { ffi::bpf_map_get_next_key(fd, prev_ptr, next.as_mut_ptr().cast()) };
        if rc < 0 {
            return keys; // ENOENT: no more keys
        }
        keys.push(next);
        prev = Some(next);
    }
}
