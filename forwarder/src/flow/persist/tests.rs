//! The flow-table files: re-attach with the slots remapped, and every
//! discard rule.

use super::*;
use crate::encap::tests::underlay;
use crate::tables::{TableBuilder, Tables};
use lbfwd_config::model::*;

/// A test value: `[target slot, 1 while current]`.
impl Persisted for [u32; 2] {
    fn layout() -> String {
        "test [u32; 2]".into()
    }
    fn target_slot(&self) -> u32 {
        self[0]
    }
    fn restore(&mut self, slot: u32) {
        *self = [slot, 0];
    }
}

const CAPACITY: usize = 1024;

/// Load balancer `web` with the targets `names` (uid `uid-NAME`).
fn tables(builder: &mut TableBuilder, names: &[&str]) -> Tables {
    let lb = ResolvedLoadBalancer {
        name: "web".into(),
        lb_type: LoadBalancerType::Public,
        network: "n".into(),
        vni: 100,
        ips: vec![AssignedIp {
            addr: "203.0.113.5".parse().unwrap(),
            pool: None,
        }],
        ports: vec![PortRange {
            protocol: Protocol::Tcp,
            first: 80,
            last: 80,
        }],
        icmp_echo: IcmpEcho::Drop,
        maglev_table_size: 251,
        destinations: names
            .iter()
            .enumerate()
            .map(|(i, n)| Destination {
                name: n.to_string(),
                uid: format!("uid-{n}"),
                underlay: std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 3, i as u8)),
                mac: Some(MacAddr([2, 0, 0, 0, 3, i as u8])),
                weight: 1,
            })
            .collect(),
    };
    let resolved = Resolved {
        load_balancers: vec![lb],
    };
    let u = underlay(Encap::Vxlan { port: 4789 }, 1500);
    builder.build(&resolved, &u, 1).unwrap().0
}

fn slot_of(t: &Tables, name: &str) -> u32 {
    t.lbs[0]
        .targets
        .iter()
        .find(|x| x.name == name)
        .unwrap()
        .slot
}

fn key(port: u16) -> FlowKey {
    FlowKey {
        src: [1; 16],
        dst: [2; 16],
        network: 100,
        src_port: port,
        dst_port: 80,
        proto: crate::flow::IPPROTO_TCP,
    }
}

/// A scratch directory, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("lbfwd-persist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Table = FlowTable<[u32; 2]>;

/// One run: opens the store, records `names`' tables, attaches worker 0.
fn run(dir: &Path, workers: usize, names: &[&str]) -> (FlowStore, Tables, Table, u64, Attach) {
    let store = FlowStore::open(dir, workers, "af_packet").unwrap();
    let t = tables(&mut TableBuilder::new(), names);
    store.record(&t.target_slots()).unwrap();
    let (table, seed, how) = store
        .attach::<[u32; 2]>(0, CAPACITY, FlowTimeouts::default(), &t.target_slots())
        .unwrap();
    (store, t, table, seed, how)
}

/// A first run whose worker 0 holds one flow to each of `names`, at ports
/// 1000.., then killed (nothing written at exit): its file and directory.
fn first_run(dir: &Path, names: &[&str]) -> u64 {
    let (_store, t, mut table, seed, how) = run(dir, 1, names);
    assert_eq!(how, Attach::New(None));
    let now = sys::monotonic_ns();
    for (i, n) in names.iter().enumerate() {
        let k = key(1000 + i as u16);
        table.insert(k, k.table_hash(seed), [slot_of(&t, n), 1], now);
    }
    seed
}

fn discarded(how: Attach) -> String {
    match how {
        Attach::New(Some(why)) => why,
        other => panic!("not discarded: {other:?}"),
    }
}

#[test]
fn a_restart_keeps_the_flows_in_the_new_runs_slots_and_drops_those_whose_target_left() {
    let dir = Dir::new("remap");
    let seed = first_run(&dir.0, &["a", "b", "c"]);
    // The new run's registry starts afresh: without b, and with d, c gets
    // another slot number than it had.
    let (_store, t, mut table, seed2, how) = run(&dir.0, 1, &["a", "c", "d"]);
    assert_eq!(
        how,
        Attach::Reattached {
            kept: 2,
            dropped: 1
        }
    );
    assert_eq!(seed2, seed, "the table's hash seed is the file's");
    let now = sys::monotonic_ns();
    let a = *table
        .lookup(&key(1000), key(1000).table_hash(seed), now)
        .unwrap();
    assert_eq!(a, [slot_of(&t, "a"), 0], "a's flow: its slot, not current");
    assert!(table
        .lookup(&key(1001), key(1001).table_hash(seed), now)
        .is_none());
    let c = *table
        .lookup(&key(1002), key(1002).table_hash(seed), now)
        .unwrap();
    assert_eq!(c, [slot_of(&t, "c"), 0]);
    assert_eq!(table.len(), 2);
    assert!(table.is_file_backed());
}

#[test]
fn another_worker_count_capacity_or_backend_discards_the_file() {
    let dir = Dir::new("workers");
    first_run(&dir.0, &["a"]);
    let (store, _, _, _, how) = run(&dir.0, 2, &["a"]);
    assert!(discarded(how).contains("worker 0 of 1"));
    std::fs::write(dir.0.join("worker-1.flows"), b"").unwrap();
    drop(store);
    let store = FlowStore::open(&dir.0, 1, "af_packet").unwrap();
    assert!(
        !dir.0.join("worker-1.flows").exists(),
        "a file of a worker this run does not have is removed"
    );
    let t = tables(&mut TableBuilder::new(), &["a"]);
    store.record(&t.target_slots()).unwrap();
    let (_, _, how) = store
        .attach::<[u32; 2]>(0, CAPACITY * 2, FlowTimeouts::default(), &t.target_slots())
        .unwrap();
    assert!(discarded(how).contains("capacity changed from 1024 to 2048"));
    drop(store);
    let store = FlowStore::open(&dir.0, 1, "af_xdp").unwrap();
    store.record(&t.target_slots()).unwrap();
    let (_, _, how) = store
        .attach::<[u32; 2]>(0, CAPACITY * 2, FlowTimeouts::default(), &t.target_slots())
        .unwrap();
    let why = discarded(how);
    assert!(why.contains("from af_packet to af_xdp"), "{why}");
}

/// Changes header word `word` of worker 0's file.
fn poke(dir: &Path, word: usize, value: u64) {
    let f = OpenOptions::new()
        .write(true)
        .open(dir.join("worker-0.flows"))
        .unwrap();
    write_word(&f, word, value).unwrap();
}

#[test]
fn another_layout_boot_or_an_old_file_is_discarded() {
    for (word, why) in [
        (W_LAYOUT, "entry layout differs"),
        (W_BOOT, "before the last reboot"),
        (W_FORMAT, "format"),
        (W_MAGIC, "not a complete flow table file"),
        (W_HEARTBEAT, "more than the longest flow timeout"),
    ] {
        let dir = Dir::new("rules");
        first_run(&dir.0, &["a"]);
        let value = match word {
            // 20 days before now (or before boot: as old).
            W_HEARTBEAT => sys::monotonic_ns().wrapping_sub(20 * 86_400 * 1_000_000_000),
            _ => 0x5eed,
        };
        poke(&dir.0, word, value);
        let (_, _, table, _, how) = run(&dir.0, 1, &["a"]);
        let got = discarded(how);
        assert!(got.contains(why), "word {word}: {got}");
        assert_eq!(table.len(), 0, "a discarded file starts empty");
    }
}

#[test]
fn a_run_that_died_before_attaching_leaves_slots_the_next_one_does_not_trust() {
    let dir = Dir::new("run");
    first_run(&dir.0, &["a", "b"]);
    // A second run records its slots, then dies before its workers attach:
    // the file still holds the first run's slot numbers.
    {
        let store = FlowStore::open(&dir.0, 1, "af_packet").unwrap();
        store
            .record(&tables(&mut TableBuilder::new(), &["b"]).target_slots())
            .unwrap();
    }
    let (_, _, table, _, how) = run(&dir.0, 1, &["a", "b"]);
    assert!(discarded(how).contains("another run"));
    assert_eq!(table.len(), 0);
    // Without a directory at all, the same.
    std::fs::remove_file(dir.0.join("slots.json")).unwrap();
    let store = FlowStore::open(&dir.0, 1, "af_packet").unwrap();
    let t = tables(&mut TableBuilder::new(), &["a"]);
    let (_, _, how) = store
        .attach::<[u32; 2]>(0, CAPACITY, FlowTimeouts::default(), &t.target_slots())
        .unwrap();
    assert!(discarded(how).contains("slots.json"));
}

#[test]
fn a_second_lbfwd_leaves_the_directory_alone() {
    let dir = Dir::new("lock");
    let _first = FlowStore::open(&dir.0, 1, "af_packet").unwrap();
    let err = FlowStore::open(&dir.0, 1, "af_packet").unwrap_err();
    assert!(matches!(err, PersistError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("held by another lbfwd"), "{err}");
}

#[test]
fn the_sweep_writes_the_heartbeat() {
    let dir = Dir::new("beat");
    let (_store, _, mut table, _, _) = run(&dir.0, 1, &["a"]);
    let now = sys::monotonic_ns() + 5;
    table.sweep(now, CAPACITY);
    let f = File::open(dir.0.join("worker-0.flows")).unwrap();
    assert_eq!(read_header(&f).unwrap()[W_HEARTBEAT], now);
}

#[test]
fn tmpfs_without_huge_pages_is_told() {
    let mounts = "/dev/vda / ext4 rw,relatime 0 0\n\
                  tmpfs /run tmpfs rw,nosuid,nodev,size=1G,mode=755 0 0\n\
                  none /run/lbfwd/huge tmpfs rw,relatime,huge=within_size 0 0\n\
                  none /run/never tmpfs rw,huge=never 0 0\n";
    let never = "always within_size advise [never] deny force";
    let forced = "always within_size advise never deny [force]";
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("/run/lbfwd/flows", never, Some("/run")),
        ("/run/lbfwd/huge/flows", never, None),
        ("/run/never/flows", never, Some("/run/never")),
        ("/var/lib/lbfwd", never, None),
        ("/run/lbfwd/flows", forced, None),
        // "/run/lbfwd/hugely" is not under "/run/lbfwd/huge".
        ("/run/lbfwd/hugely", never, Some("/run")),
    ];
    for (dir, shmem, want) in cases {
        let got = tmpfs_without_huge_pages(mounts, shmem, Path::new(dir));
        assert_eq!(got.as_deref(), want.map(Path::new), "{dir} with {shmem}");
    }
}
