//! The flow tables across a restart: each worker's [`FlowTable`] lives in a
//! file under the runtime directory (`[flow] persist_dir`, by default
//! `flows/` beside the control socket), mapped shared, so what the table
//! holds is in the file at every moment, also when lbfwd is killed with
//! SIGKILL. A restarted lbfwd maps the file again and every running flow
//! keeps its target.
//!
//! # Files
//!
//! - `worker-N.flows`: worker N's table. The first page is a header (magic,
//!   format, entry layout, capacity, worker index and count, backend, the
//!   table's hash seed, the boot id, the run whose slot numbers the entries
//!   hold, and the time of the last sweep pass); the bucket metadata and
//!   the entries follow, page-aligned, as [`FlowTable::map_file`] lays them
//!   out. The blocks are reserved (`fallocate`) when the file is made, so a
//!   full tmpfs can never fault a worker.
//! - `slots.json`: the slot directory, what each target slot number means
//!   (load balancer, target name and uid), written before every table
//!   publication. Slot numbers are given out per process; the directory
//!   lets a restarted lbfwd turn each entry's old slot into its own slot of
//!   the same target ([`Persisted::restore`]), or drop the entry when that
//!   target is gone. Every restored entry is marked not current, so its
//!   first packet re-validates it against the tables in use.
//! - `lock`: held (`flock`) while an lbfwd uses the directory; a second
//!   lbfwd does not touch the files.
//!
//! # When a file is discarded
//!
//! A worker re-attaches its file only when all of this holds; otherwise it
//! logs why and starts with an empty table (in a new file): the file has
//! this format and the same entry layout (an lbfwd built with another
//! entry layout discards it), the same `[flow] capacity`, the same number
//! of workers and the same backend (flows would reach other workers), was
//! written in this boot (`/proc/sys/kernel/random/boot_id`; table times
//! are `CLOCK_MONOTONIC`, which restarts at boot), had a sweep pass within
//! the longest flow timeout ([`super::table::MAX_TIMEOUT`]), and its
//! entries hold the slot numbers of the run whose slot directory is on
//! disk.

use super::table::{FlowTable, FlowTableError, FlowTimeouts, HEADER_WORDS, MAX_TIMEOUT};
use super::FlowKey;
use crate::io::sys::{self, Plain};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a value of a persisted flow table must tell and do.
pub trait Persisted: Plain + Default {
    /// Its fields with their offsets and sizes, e.g. `"slot@0+4 ..."`:
    /// part of the entry layout a file must match.
    fn layout() -> String;
    /// The target slot (of the run that wrote it) the flow goes to.
    fn target_slot(&self) -> u32;
    /// Makes it a value of this run: its target is now in slot `slot`, and
    /// it must be re-validated under the tables in use (not current).
    fn restore(&mut self, slot: u32);
}

/// Errors of the flow-table files.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// A file or the directory could not be read, made or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another lbfwd holds the directory.
    #[error("{path} is held by another lbfwd: its flow tables are left alone")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The table could not be mapped.
    #[error("{path}: {source}")]
    Table {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: FlowTableError,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Format of the files (bumped on any change of the header or directory).
pub const FORMAT: u64 = 1;
const MAGIC: u64 = u64::from_le_bytes(*b"lbfwdFT\0");
const HEADER_BYTES: usize = HEADER_WORDS * 8;

// Words of the header page.
const W_MAGIC: usize = 0;
const W_FORMAT: usize = 1;
const W_LAYOUT: usize = 2;
const W_CAPACITY: usize = 3;
const W_WORKER: usize = 4;
const W_WORKERS: usize = 5;
const W_BACKEND: usize = 6; // and 7: the name, 16 bytes at most
const W_SEED: usize = 8;
const W_BOOT: usize = 9; // and 10
const W_RUN: usize = 11;
/// The last word of the page: the time of the last sweep pass, written by
/// the table itself ([`FlowTable::map_file`]).
const W_HEARTBEAT: usize = HEADER_BYTES / 8 - 1;

/// The slot directory on disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct DirectoryFile {
    /// The run that gave out these slot numbers.
    run: u64,
    /// Slot, load balancer, target name, target uid.
    targets: Vec<(u32, String, String, String)>,
}

/// A target as every run knows it: load balancer, target name and uid (the
/// key of the slot registry).
type TargetId = (String, String, String);

/// One target of the tables in use and its slot: what the slot directory
/// records (the tables list theirs, `Tables::target_slots`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSlot {
    /// The target's slot in this run.
    pub slot: u32,
    /// Its load balancer's name.
    pub lb: String,
    /// The target's name.
    pub name: String,
    /// The target's uid.
    pub uid: String,
}

/// The directory of the flow-table files of one lbfwd (module docs).
#[derive(Debug)]
pub struct FlowStore {
    dir: PathBuf,
    workers: usize,
    backend: [u64; 2],
    boot: Option<[u64; 2]>,
    run: u64,
    /// The slot directory the previous run left: its run and what each of
    /// its slots meant.
    previous: Option<(u64, BTreeMap<u32, TargetId>)>,
    _lock: File,
}

/// What [`FlowStore::attach`] did with a worker's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// The entries of the previous run were kept: how many, and how many
    /// were dropped because their target is gone.
    Reattached {
        /// Entries kept.
        kept: usize,
        /// Entries dropped.
        dropped: usize,
    },
    /// A new empty table; why the old file was not used (`None`: there was
    /// none).
    New(Option<String>),
}

impl FlowStore {
    /// Takes the directory `dir` (made if missing) for an lbfwd of
    /// `workers` workers on `backend`, and reads the slot directory the
    /// previous run left. Call it before the first tables are recorded.
    pub fn open(dir: &Path, workers: usize, backend: &str) -> Result<Self, PersistError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(PersistError::Locked { path: lock_path })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&lock_path)(e)),
        }
        remove_files_of_other_workers(dir, workers);
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let shmem = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
            .unwrap_or_default();
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        if let Some(mount) = tmpfs_without_huge_pages(&mounts, &shmem, &canonical) {
            log::warn!(
                "{}: on tmpfs {} without huge pages: the flow tables get 4 KiB pages \
                 (about 9 % slower at 1M flows, benches/README.md); mount it with \
                 huge=within_size, or set [flow] persist_dir to such a mount",
                dir.display(),
                mount.display()
            );
        }
        let previous = std::fs::read(dir.join("slots.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<DirectoryFile>(&b).ok())
            .map(|d| {
                let slots = d
                    .targets
                    .into_iter()
                    .map(|(slot, lb, name, uid)| (slot, (lb, name, uid)))
                    .collect();
                (d.run, slots)
            });
        let mut name = [0u8; 16];
        for (d, s) in name.iter_mut().zip(backend.bytes()) {
            *d = s;
        }
        let word = |i: usize| u64::from_le_bytes(name[i..i + 8].try_into().expect("8 bytes"));
        Ok(FlowStore {
            dir: dir.to_path_buf(),
            workers,
            backend: [word(0), word(8)],
            boot: boot_id(),
            run: random_nonzero(),
            previous,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Worker `worker`'s file.
    pub fn path(&self, worker: usize) -> PathBuf {
        self.dir.join(format!("worker-{worker}.flows"))
    }

    /// Writes the slot directory of the tables whose targets are `targets` (call it before they are
    /// published, so that it covers every slot an entry can hold). When it
    /// cannot be written, the old one is removed (a later run then discards
    /// the files instead of misreading their slots) and the error returned.
    pub fn record(&self, targets: &[TargetSlot]) -> Result<(), PersistError> {
        let file = DirectoryFile {
            run: self.run,
            targets: targets
                .iter()
                .map(|t| (t.slot, t.lb.clone(), t.name.clone(), t.uid.clone()))
                .collect(),
        };
        let path = self.dir.join("slots.json");
        let tmp = self.dir.join("slots.json.new");
        let bytes = serde_json::to_vec(&file).expect("a directory serializes");
        let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&path);
            io_error(&path)(e)
        })
    }

    /// [`FlowStore::attach`], and a log line that says what it did: on an
    /// error, a warning and `None` (the worker then keeps its table in
    /// memory only).
    pub fn attach_logged<V: Persisted>(
        &self,
        worker: usize,
        capacity: usize,
        timeouts: FlowTimeouts,
        targets: &[TargetSlot],
    ) -> Option<(FlowTable<V>, u64)> {
        let path = self.path(worker);
        match self.attach(worker, capacity, timeouts, targets) {
            Ok((table, seed, Attach::Reattached { kept, dropped })) => {
                log::info!(
                    "flow table of worker {worker} re-attached from {}: {kept} flow(s) kept, \
                     {dropped} dropped (their targets left the routing)",
                    path.display()
                );
                Some((table, seed))
            }
            Ok((table, seed, Attach::New(why))) => {
                match why {
                    Some(why) => log::info!(
                        "flow table of worker {worker}: {} discarded ({why}); starting empty",
                        path.display()
                    ),
                    None => log::info!("flow table of worker {worker} in {} (new)", path.display()),
                }
                Some((table, seed))
            }
            Err(e) => {
                log::warn!(
                    "flow table of worker {worker} kept in memory only (a restart loses it): {e}"
                );
                None
            }
        }
    }

    /// Worker `worker`'s table of `capacity` entries in its file, and the
    /// table's hash seed: the previous run's table when the file passes
    /// every check (module docs), its entries moved to the slots of
    /// the tables of `targets` (those whose target is gone dropped, the rest marked not
    /// current), else a new empty table with a new seed. Says what it did.
    pub fn attach<V: Persisted>(
        &self,
        worker: usize,
        capacity: usize,
        timeouts: FlowTimeouts,
        targets: &[TargetSlot],
    ) -> Result<(FlowTable<V>, u64, Attach), PersistError> {
        let path = self.path(worker);
        let parts = Parts::of::<V>(capacity);
        let expected = self.header::<V>(worker, capacity, 0);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path))?;
        let verdict = match read_header(&file) {
            None => Err(None),
            Some(found) => self
                .check(&found, &expected, &parts, &file)
                .map(|slots| (found[W_SEED], slots))
                .map_err(Some),
        };
        let table_err = |source| PersistError::Table {
            path: path.clone(),
            source,
        };
        match verdict {
            Ok((seed, old_slots)) => {
                let mut table = parts.map::<V>(&file, timeouts).map_err(table_err)?;
                let new_slots = slots_of(targets);
                let remap: BTreeMap<u32, u32> = old_slots
                    .iter()
                    .filter_map(|(old, id)| new_slots.get(id).map(|&new| (*old, new)))
                    .collect();
                let before = table.len();
                let dropped = table.retain(|_, v| match remap.get(&v.target_slot()) {
                    Some(&slot) => {
                        v.restore(slot);
                        true
                    }
                    None => false,
                });
                // The entries now hold this run's slots.
                write_word(&file, W_RUN, self.run).map_err(io_error(&path))?;
                write_word(&file, W_HEARTBEAT, sys::monotonic_ns()).map_err(io_error(&path))?;
                let kept = before - dropped;
                Ok((table, seed, Attach::Reattached { kept, dropped }))
            }
            Err(why) => {
                let seed = random_nonzero();
                // A new file: zeroes, blocks reserved, header last (a file
                // cut short by a crash has no magic and is discarded).
                file.set_len(0).map_err(io_error(&path))?;
                sys::allocate_file(&file, parts.total).map_err(io_error(&path))?;
                let mut header = self.header::<V>(worker, capacity, seed);
                header[W_HEARTBEAT] = sys::monotonic_ns();
                let mut bytes = Vec::with_capacity(HEADER_BYTES);
                for w in &header[1..] {
                    bytes.extend_from_slice(&w.to_le_bytes());
                }
                file.write_all_at(&bytes, 8).map_err(io_error(&path))?;
                write_word(&file, W_MAGIC, MAGIC).map_err(io_error(&path))?;
                let table = parts.map::<V>(&file, timeouts).map_err(table_err)?;
                Ok((table, seed, Attach::New(why)))
            }
        }
    }

    /// The header this run writes for `worker` (seed aside).
    fn header<V: Persisted>(&self, worker: usize, capacity: usize, seed: u64) -> Vec<u64> {
        let mut h = vec![0u64; HEADER_BYTES / 8];
        h[W_MAGIC] = MAGIC;
        h[W_FORMAT] = FORMAT;
        h[W_LAYOUT] = fnv1a(entry_layout::<V>().as_bytes());
        h[W_CAPACITY] = capacity as u64;
        h[W_WORKER] = worker as u64;
        h[W_WORKERS] = self.workers as u64;
        h[W_BACKEND] = self.backend[0];
        h[W_BACKEND + 1] = self.backend[1];
        h[W_SEED] = seed;
        let boot = self.boot.unwrap_or_default();
        h[W_BOOT] = boot[0];
        h[W_BOOT + 1] = boot[1];
        h[W_RUN] = self.run;
        h
    }

    /// Whether a file with header `found` may be re-attached (module
    /// docs): the previous run's slots, or why not.
    fn check<'a>(
        &'a self,
        found: &[u64],
        expected: &[u64],
        parts: &Parts,
        file: &File,
    ) -> Result<&'a BTreeMap<u32, TargetId>, String> {
        let name = |w: &[u64]| {
            let bytes: Vec<u8> = w.iter().flat_map(|w| w.to_le_bytes()).collect();
            String::from_utf8_lossy(&bytes)
                .trim_end_matches('\0')
                .to_string()
        };
        if found[W_MAGIC] != MAGIC {
            return Err("it is not a complete flow table file".into());
        }
        if found[W_FORMAT] != FORMAT {
            return Err(format!(
                "it has format {}, this lbfwd writes format {FORMAT}",
                found[W_FORMAT]
            ));
        }
        if found[W_LAYOUT] != expected[W_LAYOUT] {
            return Err("its entry layout differs (written by an lbfwd of another build)".into());
        }
        if found[W_CAPACITY] != expected[W_CAPACITY] {
            return Err(format!(
                "[flow] capacity changed from {} to {}",
                found[W_CAPACITY], expected[W_CAPACITY]
            ));
        }
        if found[W_WORKER] != expected[W_WORKER] || found[W_WORKERS] != expected[W_WORKERS] {
            return Err(format!(
                "it is worker {} of {}, this is worker {} of {}: flows would reach other workers",
                found[W_WORKER], found[W_WORKERS], expected[W_WORKER], expected[W_WORKERS]
            ));
        }
        let backend = W_BACKEND..W_BACKEND + 2;
        if found[backend.clone()] != expected[backend.clone()] {
            return Err(format!(
                "the backend changed from {} to {}: flows would reach other workers",
                name(&found[backend.clone()]),
                name(&expected[backend])
            ));
        }
        if self.boot.is_none() {
            return Err("the boot id cannot be read: the file may be of another boot".into());
        }
        if found[W_BOOT..W_BOOT + 2] != expected[W_BOOT..W_BOOT + 2] {
            return Err("it was written before the last reboot".into());
        }
        let idle = sys::monotonic_ns().wrapping_sub(found[W_HEARTBEAT]);
        if idle > MAX_TIMEOUT.as_nanos() as u64 {
            return Err(format!(
                "its last sweep was {} s ago, more than the longest flow timeout",
                idle / 1_000_000_000
            ));
        }
        match file.metadata() {
            Ok(m) if m.len() >= parts.total => {}
            _ => return Err("it is shorter than its table".into()),
        }
        match &self.previous {
            Some((run, slots)) if *run == found[W_RUN] => Ok(slots),
            Some(_) => {
                Err("its entries hold the slots of another run than the slot directory's".into())
            }
            None => Err("the slot directory (slots.json) is missing or unreadable".into()),
        }
    }
}

/// Where a table's parts lie in its file.
struct Parts {
    capacity: usize,
    meta: u64,
    slots: u64,
    total: u64,
}

impl Parts {
    fn of<V: Persisted>(capacity: usize) -> Self {
        let sizes = FlowTable::<V>::array_bytes(capacity);
        let page = sys::page_size().max(HEADER_BYTES) as u64;
        let round = |n: u64| n.div_ceil(page) * page;
        let meta = page;
        let slots = meta + round(sizes.meta as u64);
        Parts {
            capacity,
            meta,
            slots,
            total: slots + round(sizes.slots as u64),
        }
    }

    fn map<V: Persisted>(
        &self,
        file: &File,
        timeouts: FlowTimeouts,
    ) -> Result<FlowTable<V>, FlowTableError> {
        FlowTable::map_file(file, self.capacity, timeouts, self.meta, self.slots)
    }
}

/// The mount point of `dir` when it is a tmpfs whose files get no huge
/// pages: no `huge=` option (or `huge=never`) in `mounts` (the text of
/// `/proc/self/mounts`), and `shmem` (the text of
/// `/sys/kernel/mm/transparent_hugepage/shmem_enabled`) does not force
/// them. A shared mapping of such a file is backed by 4 KiB pages whatever
/// `madvise` asks (the blocks are allocated by `fallocate`, before any
/// mapping), so a large flow table pays a TLB miss on most look-ups.
fn tmpfs_without_huge_pages(mounts: &str, shmem: &str, dir: &Path) -> Option<PathBuf> {
    // The mount holding `dir`: the longest mount point it lies under.
    let (point, fstype, options) = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, fstype, options) = (f.next()?, f.next()?, f.next()?, f.next()?);
            // Spaces in a mount point are written as \040.
            let point = PathBuf::from(point.replace("\\040", " "));
            dir.starts_with(&point).then_some((point, fstype, options))
        })
        .max_by_key(|(point, _, _)| point.components().count())?;
    let forced = shmem.contains("[force]");
    let huge = options
        .split(',')
        .any(|o| o.starts_with("huge=") && o != "huge=never");
    (fstype == "tmpfs" && !huge && !forced).then_some(point)
}

/// Removes the files of workers `workers..` (a run with more workers left
/// them; they would hold memory for nothing).
fn remove_files_of_other_workers(dir: &Path, workers: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let index = name
            .to_str()
            .and_then(|n| n.strip_prefix("worker-"))
            .and_then(|n| n.strip_suffix(".flows"))
            .and_then(|n| n.parse::<usize>().ok());
        if index.is_some_and(|i| i >= workers) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => log::info!(
                    "{} removed: this lbfwd has {workers} worker(s)",
                    entry.path().display()
                ),
                Err(e) => log::warn!("{}: {e}", entry.path().display()),
            }
        }
    }
}

/// The header words of `file`, if it has a whole header.
fn read_header(file: &File) -> Option<Vec<u64>> {
    let mut bytes = vec![0u8; HEADER_BYTES];
    file.read_exact_at(&mut bytes, 0).ok()?;
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
    )
}

fn write_word(file: &File, word: usize, value: u64) -> std::io::Result<()> {
    file.write_all_at(&value.to_le_bytes(), (word * 8) as u64)
}

/// Every target of `targets` by its identity, with its slot.
fn slots_of(targets: &[TargetSlot]) -> BTreeMap<TargetId, u32> {
    targets
        .iter()
        .map(|t| ((t.lb.clone(), t.name.clone(), t.uid.clone()), t.slot))
        .collect()
}

/// The entry layout a file must match: bucket metadata and entry sizes,
/// the key's fields, the value's.
fn entry_layout<V: Persisted>() -> String {
    use std::mem::{offset_of, size_of};
    let sizes = FlowTable::<V>::array_bytes(super::table::MIN_CAPACITY);
    format!(
        "meta {} ways {} slot {} key src@{} dst@{} network@{} ports@{},{} proto@{} size {} value {} size {}",
        sizes.meta_size,
        super::table::WAYS,
        sizes.slot_size,
        offset_of!(FlowKey, src),
        offset_of!(FlowKey, dst),
        offset_of!(FlowKey, network),
        offset_of!(FlowKey, src_port),
        offset_of!(FlowKey, dst_port),
        offset_of!(FlowKey, proto),
        size_of::<FlowKey>(),
        V::layout(),
        size_of::<V>(),
    )
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`) as two words.
fn boot_id() -> Option<[u64; 2]> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    let v = u128::from_str_radix(&hex, 16).ok()?;
    Some([v as u64, (v >> 64) as u64])
}

/// A random non-zero word from the standard library's per-process keys.
fn random_nonzero() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(sys::monotonic_ns());
    h.finish().max(1)
}

#[cfg(test)]
mod tests;
