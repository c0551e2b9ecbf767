//! The control side of the dataplane: turns a resolved model into a new
//! table version and publishes it (one pointer swap), resets the counters of
//! targets that left, and tells the I/O backends which addresses are VIPs
//! (the AF_XDP program redirects only those). Every change — the initial
//! load, a reload, an API call — goes through [`Dataplane::publish`].

use crate::counters::WorkerCounters;
use crate::tables::{Publisher, TableBuilder, Tables, UnderlayParams, LB_SLOT_FLAG};
use lbfwd_config::model::Resolved;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Something outside the tables that must know the current VIPs (an XDP
/// program's VIP map). Called on the control thread after each publication.
pub use crate::io::open::VipSink;

/// Errors of publishing a new version.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The tables could not be built (nothing was published).
    #[error(transparent)]
    Build(#[from] crate::tables::BuildError),
    /// The tables were published but a VIP sink could not be updated.
    #[error("tables published, but updating the VIP filter failed: {0}")]
    VipSink(String),
}

/// The publication path and the workers' counters.
pub struct Dataplane {
    publisher: Arc<Publisher>,
    builder: Mutex<TableBuilder>,
    underlay: UnderlayParams,
    counters: Vec<Arc<WorkerCounters>>,
    vip_sinks: Mutex<Vec<VipSink>>,
    /// Where the flow tables are kept across a restart: its slot directory
    /// is written before every publication.
    flow_store: std::sync::OnceLock<Arc<crate::flow::persist::FlowStore>>,
    /// The exception sync's shared state, once `[sync]` started it.
    sync: std::sync::OnceLock<Arc<crate::sync::SyncShared>>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("version", &self.publisher.current().version)
            .field("workers", &self.counters.len())
            .finish_non_exhaustive()
    }
}

impl Dataplane {
    /// Builds version 1 from `resolved` for `workers` workers.
    pub fn new(
        resolved: &Resolved,
        underlay: UnderlayParams,
        workers: usize,
    ) -> Result<Self, DataplaneError> {
        let mut builder = TableBuilder::new();
        let (tables, _) = builder.build(resolved, &underlay, 1)?;
        Ok(Dataplane {
            publisher: Publisher::new(tables, workers),
            builder: Mutex::new(builder),
            underlay,
            counters: (0..workers)
                .map(|_| Arc::new(WorkerCounters::new()))
                .collect(),
            vip_sinks: Mutex::new(Vec::new()),
            flow_store: std::sync::OnceLock::new(),
            sync: std::sync::OnceLock::new(),
        })
    }

    /// Builds and publishes a new version for `resolved`; returns its
    /// version number. On a build error nothing changes.
    pub fn publish(&self, resolved: &Resolved) -> Result<u64, DataplaneError> {
        let mut builder = self.builder.lock().unwrap_or_else(|e| e.into_inner());
        let version = self.publisher.current().version + 1;
        let (tables, released) = builder.build(resolved, &self.underlay, version)?;
        for slot in released {
            for c in &self.counters {
                if slot & LB_SLOT_FLAG != 0 {
                    c.lb_drops[(slot & !LB_SLOT_FLAG) as usize].reset();
                    c.lb_flows[(slot & !LB_SLOT_FLAG) as usize].reset();
                } else {
                    c.targets[slot as usize].packets.reset();
                    c.targets[slot as usize].bytes.reset();
                }
            }
        }
        let vips = vips_of(&tables);
        self.record_slots(&tables);
        self.publisher.publish(tables);
        drop(builder);
        self.update_vip_sinks(&vips)?;
        Ok(version)
    }

    /// Keeps the slot directory of `store` (flow tables across a restart)
    /// from now on: writes the current tables' at once, then each new
    /// version's before it is published.
    pub fn set_flow_store(&self, store: Arc<crate::flow::persist::FlowStore>) {
        let _builder = self.builder.lock().unwrap_or_else(|e| e.into_inner());
        if self.flow_store.set(store).is_ok() {
            self.record_slots(&self.publisher.current());
        }
    }

    fn record_slots(&self, tables: &Tables) {
        if let Some(store) = self.flow_store.get() {
            if let Err(e) = store.record(&tables.target_slots()) {
                log::warn!("slot directory of the flow tables: {e} (a restart discards them)");
            }
        }
    }

    /// Registers a VIP sink and gives it the current VIPs.
    pub fn add_vip_sink(&self, sink: VipSink) -> Result<(), DataplaneError> {
        let vips = vips_of(&self.publisher.current());
        sink(&vips).map_err(DataplaneError::VipSink)?;
        self.vip_sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
        Ok(())
    }

    fn update_vip_sinks(&self, vips: &[IpAddr]) -> Result<(), DataplaneError> {
        for sink in self
            .vip_sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            sink(vips).map_err(DataplaneError::VipSink)?;
        }
        Ok(())
    }

    /// The publisher (workers take their readers from it).
    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.publisher
    }

    /// The version in use now.
    pub fn current(&self) -> Arc<Tables> {
        self.publisher.current()
    }

    /// Worker `i`'s counters.
    pub fn counters(&self) -> &[Arc<WorkerCounters>] {
        &self.counters
    }

    /// Records the running exception sync (its counters go into `lbctl
    /// stats` and the metrics).
    pub fn set_sync(&self, sync: Arc<crate::sync::SyncShared>) {
        let _ = self.sync.set(sync);
    }

    /// The running exception sync, if `[sync]` is configured.
    pub fn sync(&self) -> Option<&Arc<crate::sync::SyncShared>> {
        self.sync.get()
    }

    /// Frees table versions every worker has moved past; call now and then.
    pub fn reclaim(&self) -> usize {
        self.publisher.reclaim()
    }
}

/// Every VIP of a table version.
pub fn vips_of(tables: &Tables) -> Vec<IpAddr> {
    tables.vip_list.clone()
}
