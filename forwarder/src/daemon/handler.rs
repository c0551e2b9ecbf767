//! The control handler: answers every `lbctl` request for a running
//! daemon (status, stats, lists, changes, reload, announce, health),
//! validating a change as a whole before it is published and saved.

use super::*;
use lbfwd_config::ResolvedLoadBalancer;
use std::collections::{HashMap, HashSet};

/// Answers control requests for a running daemon.
pub(super) struct ControlHandler {
    pub(super) daemon: Arc<Daemon>,
    pub(super) dataplane: Arc<Dataplane>,
    pub(super) layout: Layout,
    pub(super) last_sample: Mutex<Option<(Sample, Instant)>>,
}

impl Handler for ControlHandler {
    fn handle(&self, request: Request) -> Result<Payload, ApiError> {
        self.dataplane.reclaim();
        match request {
            Request::Status => Ok(Payload::Status(self.status())),
            Request::Stats => Ok(Payload::Stats(self.stats())),
            Request::List(l) => Ok(Payload::Objects(self.list(l.kind))),
            Request::Get(r) => self
                .list(r.kind)
                .into_iter()
                .find(|o| o.name == r.name)
                .map(Payload::Object)
                .ok_or_else(|| ApiError::not_found(&r)),
            Request::Export => {
                let config = self.daemon.config();
                Ok(Payload::Exported(proto::Export {
                    toml: config.to_toml(),
                }))
            }
            Request::Reload => self.reload(),
            Request::Health => Ok(Payload::Health(self.daemon.health.list())),
            Request::Announce => Ok(Payload::Announce(self.announcer()?.status())),
            Request::AnnounceSet(s) => self
                .announcer()?
                .set_enabled(s.on)
                .map(Payload::Announce)
                .map_err(|e| api(ErrorCode::Internal, e)),
            other => match changes_for(&other) {
                Some(changes) => self.change(&other, &changes?),
                None => Err(api(
                    ErrorCode::Internal,
                    "this request changes nothing and has no handler".to_string(),
                )),
            },
        }
    }
}

impl ControlHandler {
    fn announcer(&self) -> Result<&crate::announce::Announcer, ApiError> {
        self.daemon.announcer.get().map(|a| &**a).ok_or_else(|| {
            api(
                ErrorCode::Internal,
                "this lbfwd has no announcer (it is not `lbfwd run`)",
            )
        })
    }

    /// Applies changes all or nothing: validate against the whole resulting
    /// model, publish the new tables, save the state, then answer.
    ///
    /// The current state's resolution is the one the daemon holds (it is
    /// not resolved again); the changed state is resolved once.
    fn change(&self, request: &Request, changes: &[Change]) -> Result<Payload, ApiError> {
        let mut state = self.daemon.lock();
        let mut next_state = state.config.state.clone();
        let mut summary = next_state
            .apply_in_place(
                changes,
                &state.config.settings.underlay,
                Some(&state.resolved),
            )
            .map_err(|e| ApiError::from_config_errors(request, &e))?;
        let resolved = summary
            .resolution
            .take()
            .map(|r| r.resolved)
            .ok_or_else(|| api(ErrorCode::Internal, "the change produced no resolution"))?;
        refuse_taken_addresses(&summary)?;
        let next = Config {
            settings: state.config.settings.clone(),
            settings_input: state.config.settings_input.clone(),
            state: next_state,
            path: state.config.path.clone(),
        };
        self.commit(&mut state, next, resolved, Some(&summary))
    }

    /// Publishes `resolved`, saves `next`, and makes them current.
    fn commit(
        &self,
        state: &mut State,
        next: Config,
        resolved: Resolved,
        summary: Option<&lbfwd_config::ChangeSummary>,
    ) -> Result<Payload, ApiError> {
        let mut out = derived_changes(&state.resolved, &resolved);
        if let Some(s) = summary {
            let refs = |v: &Vec<(String, String)>| -> Vec<proto::ObjectRef> {
                v.iter()
                    .filter_map(|(k, n)| {
                        Kind::from_toml_key(k).map(|kind| proto::ObjectRef {
                            kind,
                            name: n.clone(),
                        })
                    })
                    .collect()
            };
            out.created = refs(&s.created);
            out.updated = refs(&s.replaced);
            out.deleted = refs(&s.deleted);
            out.warnings = s.warnings.clone();
        }
        let changed = out.is_empty() && next.state == state.config.state;
        if changed {
            out.table_version = self.dataplane.current().version;
            return Ok(Payload::Changed(out));
        }
        save_state(&next).map_err(|e| {
            api(
                ErrorCode::Internal,
                format!(
                    "cannot save the state in {}: {e}; nothing was changed",
                    next.settings.control.state_dir.display()
                ),
            )
        })?;
        // Unhealthy destinations leave the tables (the health checks keep
        // their records across the change).
        let health = &self.daemon.health;
        health.sync(&health_checked(&next.state), &resolved);
        // Without any check the effective state is `resolved` itself: no
        // copy of 100,000 destinations to build from.
        let effective;
        let build_from = if health.book().lbs.is_empty() {
            &resolved
        } else {
            effective = health.effective(&resolved);
            &effective
        };
        let version = match self.dataplane.publish(build_from) {
            Ok(v) => v,
            Err(e) => {
                health.sync(&health_checked(&state.config.state), &state.resolved);
                // A VIP sink fails after the new tables went out: put the
                // current ones back, so that the dataplane keeps forwarding
                // what the (unchanged) state says.
                if matches!(e, crate::dataplane::DataplaneError::VipSink(_)) {
                    let _ = self.dataplane.publish(&health.effective(&state.resolved));
                }
                // Put the saved state back as it was.
                let _ = save_state(&state.config);
                return Err(api(ErrorCode::Internal, format!("cannot publish: {e}")));
            }
        };
        state.config = next;
        state.resolved = resolved;
        out.table_version = version;
        if let Some(a) = self.daemon.announcer.get() {
            let usable = health.without_unhealthy(&state.resolved);
            let unhealthy = health.unhealthy_counts(&state.resolved);
            if let Err(e) = a.update(&usable, &unhealthy, &state.config.state.pools) {
                out.warnings.push(e);
            }
        }
        Ok(Payload::Changed(out))
    }

    /// `lbctl reload` between `RELOADING=1` and `READY=1` (also when it
    /// fails: the running state is then unchanged and still serves).
    fn reload(&self) -> Result<Payload, ApiError> {
        let notifier = &self.daemon.notifier;
        notifier.send(&crate::notify::reloading_message());
        let result = self.reload_config();
        let status = match &result {
            Ok(Payload::Changed(c)) => format!("reloaded; table version {}", c.table_version),
            Ok(_) => "reloaded".to_string(),
            Err(e) => format!("reload refused ({}); running as before", e.message),
        };
        match &result {
            Ok(_) => log::info!("{status}"),
            Err(e) => log::warn!("reload refused: {}", e.message),
        }
        notifier.send(&crate::notify::ready_message(&status));
        result
    }

    fn reload_config(&self) -> Result<Payload, ApiError> {
        let mut state = self.daemon.lock();
        let mut fresh =
            Config::load(&self.daemon.config_path).map_err(|e| validation_failed(&e))?;
        if fresh.settings != state.config.settings {
            return Err(api(
                ErrorCode::ValidationFailed,
                format!(
                    "{}: the appliance settings ([dataplane], [underlay], [control], [flow], [bgp], [announce], [metrics], [log]) changed; \
                     they take effect on restart only, so nothing was reloaded",
                    self.daemon.config_path.display()
                ),
            ));
        }
        // Keep the addresses of load balancers that still exist.
        let lbs: Vec<String> = fresh
            .state
            .load_balancers
            .iter()
            .map(|l| l.name.clone())
            .collect();
        let mut allocations = state.config.state.allocations.clone();
        allocations.retain(|a| lbs.contains(&a.load_balancer));
        for a in &fresh.state.allocations {
            if !allocations.contains(a) {
                allocations.push(a.clone());
            }
        }
        fresh.state.allocations = allocations;
        let resolution = fresh.resolve().map_err(|e| validation_failed(&e))?;
        fresh.state.allocations = resolution.allocations.clone();
        let summary = lbfwd_config::ChangeSummary {
            warnings: resolution.warnings.iter().map(|w| w.to_string()).collect(),
            ..object_changes(&state.config.state, &fresh.state)
        };
        self.commit(&mut state, fresh, resolution.resolved, Some(&summary))
    }

    fn status(&self) -> StatusInfo {
        let config = self.daemon.config();
        let tables = self.dataplane.current();
        StatusInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: proto::PROTOCOL_VERSION,
            pid: std::process::id(),
            uptime_secs: self.daemon.uptime_secs(),
            backend: config.settings.dataplane.backend.to_string(),
            workers: self
                .layout
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| WorkerInfo {
                    id: i,
                    core: w.core,
                    table_version: self.dataplane.publisher().seen(i),
                })
                .collect(),
            interfaces: config.settings.dataplane.interfaces.clone(),
            config_path: Some(self.daemon.config_path.clone()),
            state_path: Some(config.settings.control.state_dir.join(STATE_FILE)),
            table_version: tables.version,
            load_balancers: tables.lbs.len(),
            health: self.daemon.health.summary(),
        }
    }

    fn stats(&self) -> proto::StatsSnapshot {
        let tables = self.dataplane.current();
        let views: Vec<WorkerView<'_>> = self
            .dataplane
            .counters()
            .iter()
            .zip(self.layout.workers.iter())
            .map(|(c, p)| WorkerView {
                counters: c,
                core: p.core,
                flows: c.flows_live.get(),
            })
            .collect();
        let mut last = self.last_sample.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let previous = last
            .as_ref()
            .map(|(s, t)| (s, now.duration_since(*t).as_secs_f64()));
        let (mut snap, sample) = snapshot(&tables, &views, self.daemon.uptime_secs(), previous);
        *last = Some((sample, now));
        snap.health = self.daemon.health.list();
        snap.l2 = self.daemon.announcer.get().and_then(|a| a.l2_status());
        snap.flow_guard = Some(crate::report::flow_guard_stats(
            &self.daemon.config().settings.flow.guard,
            &views,
        ));
        snap.sync = self.dataplane.sync().map(|s| Box::new(s.stats()));
        snap
    }

    fn list(&self, kind: Kind) -> Vec<Object> {
        let state = self.daemon.lock();
        let mut out: Vec<Object> = state
            .config
            .state
            .objects()
            .into_iter()
            .filter(|o| o.kind() == ConfigKind::from(kind))
            .map(|o| {
                let name = o.name().to_string();
                let spec = match &o {
                    StateObject::Pool(s) => serde_json::to_value(s),
                    StateObject::Network(s) => serde_json::to_value(s),
                    StateObject::NetworkInterface(s) => serde_json::to_value(s),
                    StateObject::LoadBalancer(s) => serde_json::to_value(s),
                    StateObject::LoadBalancerRouting(s) => serde_json::to_value(s),
                    StateObject::Allocation(s) => serde_json::to_value(s),
                }
                .unwrap_or(serde_json::Value::Null);
                let status = match kind {
                    Kind::LoadBalancer => state
                        .resolved
                        .load_balancers
                        .iter()
                        .find(|l| l.name == name)
                        .map(|l| ObjectStatus::LoadBalancer(l.into())),
                    _ => derived_status(&state, &o),
                };
                Object {
                    kind,
                    name,
                    spec,
                    status,
                }
            })
            .collect();
        if kind == Kind::LoadBalancerRouting {
            // Routings derived from selectors are objects too.
            for lb in &state.resolved.load_balancers {
                if out.iter().any(|o| o.name == lb.name) {
                    continue;
                }
                out.push(Object {
                    kind,
                    name: lb.name.clone(),
                    spec: serde_json::Value::Null,
                    status: Some(ObjectStatus::Routing(proto::RoutingStatus {
                        load_balancer: lb.name.clone(),
                        source: proto::RoutingSource::Selector,
                        network: lb.network.clone(),
                        destinations: lb.destinations.iter().map(Into::into).collect(),
                    })),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        drop(state);
        for o in &mut out {
            let (lb, dests) = match &mut o.status {
                Some(ObjectStatus::LoadBalancer(s)) => (o.name.as_str(), &mut s.destinations),
                Some(ObjectStatus::Routing(r)) => (r.load_balancer.as_str(), &mut r.destinations),
                _ => continue,
            };
            for d in dests {
                d.health = self.daemon.health.destination_health(lb, &d.name, &d.uid);
            }
        }
        out
    }
}

/// [`ChangeSummary::derived_between`] `old` and `new`, computed on the load
/// balancers that differ only: an unchanged one adds nothing to it, and
/// at 10,000 load balancers comparing every one in full costs more than the
/// rest of a small change.
fn derived_changes(old: &Resolved, new: &Resolved) -> ChangeSummary {
    let by_name: HashMap<&str, &ResolvedLoadBalancer> = old
        .load_balancers
        .iter()
        .map(|l| (l.name.as_str(), l))
        .collect();
    let mut old_part = Resolved::default();
    let mut new_part = Resolved::default();
    let mut seen = 0;
    for lb in &new.load_balancers {
        let before = by_name.get(lb.name.as_str());
        seen += usize::from(before.is_some());
        if before != Some(&lb) {
            new_part.load_balancers.push(lb.clone());
            if let Some(b) = before {
                old_part.load_balancers.push((*b).clone());
            }
        }
    }
    if seen < old.load_balancers.len() {
        let names: HashSet<&str> = new.load_balancers.iter().map(|l| l.name.as_str()).collect();
        old_part.load_balancers.extend(
            old.load_balancers
                .iter()
                .filter(|l| !names.contains(l.name.as_str()))
                .cloned(),
        );
    }
    ChangeSummary::derived_between(&old_part, &new_part)
}
