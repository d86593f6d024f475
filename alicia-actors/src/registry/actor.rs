//! The registry actor: its message enum, configuration, state and handlers.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::Duration;

use alicia_core::{DeviceId, SharedClock, Store, Timestamp};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::availability::{DefaultTimeouts, LiveDevice};
use super::error::RegistryError;
use super::events::RegistryEvent;
use super::model::{
    Availability, AvailabilityReason, DevicePage, DeviceQuery, DeviceRecord, DeviceSpec,
    DeviceStatus, DeviceUpdate, DeviceView, Group, GroupId, GroupView, RegisterOutcome,
    Registration, Tombstone,
};
use super::tables::{self, DEVICES, GROUPS, LAST_SEEN, TOMBSTONES};
use super::validate::{validate_group_name, validate_spec};
use super::{groups, query};

/// The reply port of a registry request.
pub type Reply<T> = RpcReplyPort<Result<T, RegistryError>>;

/// Settings of the device registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Maximum number of registered devices; registrations of new devices beyond it fail.
    pub max_devices: usize,
    /// Heartbeat timeouts of devices that do not set their own.
    pub timeouts: DefaultTimeouts,
    /// How often the sweep looks for devices that have been silent too long. A device is marked
    /// offline at most this long after its timeout passes.
    pub sweep_interval: Duration,
    /// How often last-seen times are written to the store in one durable commit. A crash loses
    /// the last-seen times of at most this long before it.
    pub last_seen_flush_interval: Duration,
    /// Maximum number of registrations committed together in one durable commit.
    pub max_registration_batch: usize,
    /// Maximum page size of a query.
    pub max_page_size: usize,
    /// Minimum time between two log lines about rejected input.
    pub bad_input_log_interval: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_devices: 100_000,
            timeouts: DefaultTimeouts::default(),
            sweep_interval: Duration::from_secs(5),
            last_seen_flush_interval: Duration::from_secs(5),
            max_registration_batch: 1024,
            max_page_size: 1000,
            bad_input_log_interval: Duration::from_secs(10),
        }
    }
}

/// The registry actor's start arguments.
#[derive(Debug)]
pub struct RegistryArgs {
    /// The node's store, in which the registry owns the tables named `registry.*`.
    pub store: Store,
    /// The clock all availability decisions read.
    pub clock: SharedClock,
    /// Settings.
    pub config: RegistryConfig,
    /// Where committed changes are sent, in commit order. The actor waits when the channel is
    /// full, so a slow consumer slows the registry down rather than losing events.
    pub events: Option<mpsc::Sender<RegistryEvent>>,
}

/// Counters of the registry, for health reporting and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Registered devices.
    pub devices: usize,
    /// Groups.
    pub groups: usize,
    /// Registrations, updates and deregistrations rejected for bad input, conflicts or limits.
    pub rejected_requests: u64,
    /// Heartbeats from registered devices, through MQTT and the typed API.
    pub heartbeats: u64,
    /// Heartbeats from devices that are not registered.
    pub rejected_heartbeats: u64,
    /// Durable commits of registration batches.
    pub registration_commits: u64,
    /// Registrations acknowledged after a durable commit.
    pub registrations_committed: u64,
    /// Durable commits of last-seen times.
    pub last_seen_flushes: u64,
    /// Stored entries that failed to decode at start and were skipped.
    pub unreadable_entries: u64,
}

/// Devices per step of the start-up status announcement: small enough that a request waits
/// little behind a step, large enough that the steps cost little.
const START_ANNOUNCEMENT_STEP: usize = 512;

/// A message to the registry actor. Use [`RegistryClient`](super::RegistryClient) rather than
/// building these.
#[derive(Debug)]
pub enum RegistryMessage {
    /// Registers or re-registers a device.
    Register(DeviceSpec, Reply<Registration>),
    /// Deregisters a device and writes its tombstone.
    Deregister(DeviceId, Reply<Tombstone>),
    /// Changes a registered device.
    Update(DeviceId, DeviceUpdate, Reply<DeviceRecord>),
    /// Records a heartbeat; the reply is optional so MQTT heartbeats need none.
    Heartbeat(DeviceId, Option<Reply<Availability>>),
    /// Records that the broker published a device's last will.
    LastWill(DeviceId),
    /// Reads one device.
    Get(DeviceId, Reply<DeviceView>),
    /// Reads a page of devices.
    Query(DeviceQuery, Reply<DevicePage>),
    /// Creates an empty group.
    CreateGroup(GroupId, String, Reply<Group>),
    /// Renames a group.
    RenameGroup(GroupId, String, Reply<Group>),
    /// Deletes a group; its devices stay registered.
    DeleteGroup(GroupId, Reply<Group>),
    /// Adds a registered device to a group.
    AddMember(GroupId, DeviceId, Reply<Group>),
    /// Removes a device from a group.
    RemoveMember(GroupId, DeviceId, Reply<Group>),
    /// Reads one group with its availability.
    GetGroup(GroupId, Reply<GroupView>),
    /// Reads every group with its availability.
    ListGroups(Reply<Vec<GroupView>>),
    /// Reads the counters.
    Stats(RpcReplyPort<RegistryStats>),
    /// Marks silent devices offline; sent by the sweep timer, and by tests with a reply.
    Sweep(Option<RpcReplyPort<Vec<DeviceStatus>>>),
    /// Writes last-seen times durably; sent by the flush timer, and by tests with a reply.
    FlushLastSeen(Option<Reply<usize>>),
    /// Commits the registrations staged so far; the actor sends it to itself.
    CommitRegistrations,
    /// Publishes the next step of the statuses announced at start; the actor sends it to itself.
    AnnounceStart,
}

/// The device registry actor.
///
/// The actor is the only writer of the `registry.*` tables. Every request that changes a record
/// is committed durably before its reply is sent. Registrations are group-committed: each one is
/// validated and staged, and the batch is committed by a `CommitRegistrations` message that the
/// actor sends itself when the first registration is staged. Registrations already in the
/// mailbox are handled before that message, so a burst shares one fsync. Every other request
/// commits the staged batch first, so it reads every acknowledged registration.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryActor;

/// The registry actor's state.
///
/// Owned by the actor task alone, so it needs no locks. The store holds every record; memory
/// holds only what heartbeats and sweeps touch at high rate (availability and last seen per
/// device) and the groups, which are few. What lives only in memory (staged registrations
/// before their commit, last-seen times before their flush) is listed with each field.
pub struct RegistryState {
    store: Store,
    clock: SharedClock,
    config: RegistryConfig,
    /// `None` when no consumer was given or the consumer has gone away.
    events: Option<mpsc::Sender<RegistryEvent>>,
    /// Availability of every registered device, in id order for paged queries.
    pub(super) live: BTreeMap<DeviceId, LiveDevice>,
    /// Every group; a copy of the `registry.groups` table.
    pub(super) groups: BTreeMap<GroupId, Group>,
    /// Registrations validated but not yet committed, hence not yet acknowledged.
    pending: PendingBatch,
    /// Last-seen times not yet written to the store. A crash loses them; see
    /// [`RegistryConfig::last_seen_flush_interval`].
    dirty_last_seen: HashMap<DeviceId, Timestamp>,
    stats: RegistryStats,
    bad_input: BadInputLog,
    /// The sweep and flush timers, stopped when the actor stops.
    timers: Vec<JoinHandle<()>>,
    /// The position, in id order, of the next step of the start-up status announcement; `None`
    /// when the announcement is done.
    start_announcement: Option<Bound<DeviceId>>,
}

impl std::fmt::Debug for RegistryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryState")
            .field("devices", &self.live.len())
            .field("groups", &self.groups.len())
            .field("pending", &self.pending.staged.len())
            .finish_non_exhaustive()
    }
}

/// Registrations staged for the next durable commit.
#[derive(Default)]
struct PendingBatch {
    staged: Vec<Staged>,
    /// Ids of the staged devices; each appears at most once in a batch.
    devices: HashMap<DeviceId, usize>,
    /// Hardware identifier index keys claimed by staged devices.
    identifiers: HashMap<String, DeviceId>,
    /// Staged devices that are not yet registered.
    new_devices: usize,
    /// Whether a `CommitRegistrations` message is on its way.
    commit_scheduled: bool,
}

struct Staged {
    record: DeviceRecord,
    previous: Option<DeviceRecord>,
    reply: Reply<Registration>,
}

/// Counts rejected input and logs it at most once per interval.
#[derive(Debug, Default)]
struct BadInputLog {
    suppressed: u64,
    last_logged: Option<Duration>,
}

impl BadInputLog {
    /// Returns how many rejections since the last log line were not logged, when a line is due
    /// at `now`. Otherwise counts this one as not logged and returns `None`, as the bridge's
    /// `suppressed` count does.
    fn due(&mut self, now: Duration, interval: Duration) -> Option<u64> {
        let due = match self.last_logged {
            None => true,
            Some(last) => now.saturating_sub(last) >= interval,
        };
        if due {
            self.last_logged = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

impl Actor for RegistryActor {
    type Msg = RegistryMessage;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: RegistryArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = RegistryState {
            store: args.store,
            clock: args.clock,
            config: args.config,
            events: args.events,
            live: BTreeMap::new(),
            groups: BTreeMap::new(),
            pending: PendingBatch::default(),
            dirty_last_seen: HashMap::new(),
            stats: RegistryStats::default(),
            bad_input: BadInputLog::default(),
            timers: Vec::new(),
            start_announcement: None,
        };
        state.load()?;
        tracing::info!(
            service = "registry",
            devices = state.live.len(),
            groups = state.groups.len(),
            "device registry started"
        );
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The retained status from before the restart may claim online; replace it with unknown.
        // The announcement goes in steps, and requests are handled between them.
        state.start_announcement = Some(Bound::Unbounded);
        state.announce_start_step(&myself).await;

        let sweep =
            myself.send_interval(state.config.sweep_interval, || RegistryMessage::Sweep(None));
        let flush = myself.send_interval(state.config.last_seen_flush_interval, || {
            RegistryMessage::FlushLastSeen(None)
        });
        state.timers = vec![sweep, flush];
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for timer in state.timers.drain(..) {
            timer.abort();
        }
        state.commit_pending().await;
        if let Err(error) = state.flush_last_seen() {
            tracing::error!(service = "registry", %error, "failed to write last-seen times at stop");
        }
        tracing::info!(service = "registry", "device registry stopped");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Registrations and heartbeats decide for themselves whether the staged batch must be
        // committed first; every other request reads or changes committed state.
        if !matches!(
            message,
            RegistryMessage::Register(..)
                | RegistryMessage::Heartbeat(..)
                | RegistryMessage::Stats(..)
        ) {
            state.commit_pending().await;
        }

        match message {
            RegistryMessage::Register(spec, reply) => state.register(&myself, spec, reply).await,
            RegistryMessage::CommitRegistrations => {}
            RegistryMessage::AnnounceStart => state.announce_start_step(&myself).await,
            RegistryMessage::Deregister(id, reply) => {
                let result = state.deregister(&id).await;
                state.answer(reply, result, "deregister", &id);
            }
            RegistryMessage::Update(id, update, reply) => {
                let result = state.update(&id, update).await;
                state.answer(reply, result, "update", &id);
            }
            RegistryMessage::Heartbeat(id, reply) => {
                let result = state.heartbeat(&id).await;
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            RegistryMessage::LastWill(id) => state.last_will(&id).await,
            RegistryMessage::Get(id, reply) => {
                let _ = reply.send(state.get(&id));
            }
            RegistryMessage::Query(request, reply) => {
                let _ = reply.send(query::run(state, &request));
            }
            RegistryMessage::CreateGroup(id, name, reply) => {
                let _ = reply.send(state.create_group(id, name));
            }
            RegistryMessage::RenameGroup(id, name, reply) => {
                let _ = reply.send(state.rename_group(&id, name));
            }
            RegistryMessage::DeleteGroup(id, reply) => {
                let _ = reply.send(state.delete_group(&id));
            }
            RegistryMessage::AddMember(group, device, reply) => {
                let _ = reply.send(state.change_member(&group, device, true));
            }
            RegistryMessage::RemoveMember(group, device, reply) => {
                let _ = reply.send(state.change_member(&group, device, false));
            }
            RegistryMessage::GetGroup(id, reply) => {
                let _ = reply.send(state.get_group(&id));
            }
            RegistryMessage::ListGroups(reply) => {
                let views = state
                    .groups
                    .values()
                    .map(|group| groups::view(group, &state.live))
                    .collect();
                let _ = reply.send(Ok(views));
            }
            RegistryMessage::Stats(reply) => {
                let _ = reply.send(state.stats());
            }
            RegistryMessage::Sweep(reply) => {
                let changed = state.sweep().await;
                if let Some(reply) = reply {
                    let _ = reply.send(changed);
                }
            }
            RegistryMessage::FlushLastSeen(reply) => {
                let result = state.flush_last_seen();
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result);
                    }
                    None => {
                        if let Err(error) = result {
                            tracing::error!(service = "registry", %error, "failed to write last-seen times; retrying at the next flush");
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl RegistryState {
    /// Loads devices, last-seen times and groups from the store. Every device starts `unknown`.
    fn load(&mut self) -> Result<(), RegistryError> {
        let now = self.clock.now();
        let monotonic = self.clock.monotonic();
        let read = self.store.begin_read()?;

        let mut last_seen = HashMap::new();
        for entry in read.iter(&LAST_SEEN)? {
            match entry {
                Ok((id, time)) => {
                    last_seen.insert(id, time);
                }
                Err(error) => self.skip_unreadable(&error),
            }
        }

        // Collected in one step from the entries, which the table yields in id order, so that
        // `BTreeMap` fills its nodes. Inserting one by one in ascending order leaves them about
        // half full. With 100,000 devices, examples/registry_scale measured the registry's state
        // at 182 bytes of heap per device when inserted one by one, and 106 when collected.
        let mut devices = Vec::new();
        for entry in read.iter(&DEVICES)? {
            match entry {
                Ok((id, record)) => {
                    let timeout = self.config.timeouts.timeout_of(&record);
                    let seen = last_seen.get(&id).copied();
                    let live = LiveDevice::unknown(
                        AvailabilityReason::NotSeenSinceStart,
                        now,
                        monotonic,
                        timeout,
                        seen,
                    );
                    devices.push((id, live));
                }
                Err(error) => self.skip_unreadable(&error),
            }
        }
        self.live = devices.into_iter().collect();

        for entry in read.iter(&GROUPS)? {
            match entry {
                Ok((_, group)) => {
                    self.groups.insert(group.id.clone(), group);
                }
                Err(error) => self.skip_unreadable(&error),
            }
        }
        Ok(())
    }

    fn skip_unreadable(&mut self, error: &alicia_core::StoreError) {
        self.stats.unreadable_entries += 1;
        tracing::error!(service = "registry", %error, "skipped an unreadable registry entry");
    }

    fn stats(&self) -> RegistryStats {
        RegistryStats {
            devices: self.live.len(),
            groups: self.groups.len(),
            ..self.stats.clone()
        }
    }

    /// Sends a reply and counts and logs a rejection.
    fn answer<T>(
        &mut self,
        reply: Reply<T>,
        result: Result<T, RegistryError>,
        operation: &'static str,
        device_id: &DeviceId,
    ) {
        if let Err(error) = &result {
            self.reject(operation, device_id.as_str(), error);
        }
        let _ = reply.send(result);
    }

    /// Counts a rejected request and logs it, at most once per log interval.
    fn reject(&mut self, operation: &'static str, device_id: &str, error: &RegistryError) {
        if matches!(error, RegistryError::Store(_)) {
            tracing::error!(service = "registry", operation, device_id, %error, "registry storage failed");
            return;
        }
        self.stats.rejected_requests += 1;
        let interval = self.config.bad_input_log_interval;
        if let Some(suppressed) = self.bad_input.due(self.clock.monotonic(), interval) {
            tracing::warn!(
                service = "registry",
                operation,
                device_id,
                suppressed,
                %error,
                "rejected a registry request"
            );
        }
    }

    /// Sends `event` to the consumer, waiting while its channel is full.
    /// Publishes the start-up status of the next [`START_ANNOUNCEMENT_STEP`] devices, and sends
    /// the actor a message for the step after, so requests that arrived meanwhile go first.
    ///
    /// A device whose availability changed since the start has published its new status
    /// already, so it is skipped. Announcing `unknown` after that would overwrite the truth.
    async fn announce_start_step(&mut self, myself: &ActorRef<RegistryMessage>) {
        let Some(from) = self.start_announcement.take() else {
            return;
        };
        let mut statuses = Vec::new();
        let mut visited = 0;
        let mut last = None;
        for (id, live) in self
            .live
            .range::<DeviceId, _>((from.as_ref(), Bound::Unbounded))
            .take(START_ANNOUNCEMENT_STEP)
        {
            visited += 1;
            last = Some(id);
            if live.availability.reason == AvailabilityReason::NotSeenSinceStart {
                statuses.push(live.status(id));
            }
        }
        if visited == START_ANNOUNCEMENT_STEP
            && let Some(last) = last
        {
            self.start_announcement = Some(Bound::Excluded(last.clone()));
            if let Err(error) = myself.cast(RegistryMessage::AnnounceStart) {
                tracing::warn!(service = "registry", %error, "failed to continue the start-up status announcement");
            }
        }
        for status in statuses {
            self.emit(RegistryEvent::Status(status)).await;
        }
    }

    async fn emit(&mut self, event: RegistryEvent) {
        let Some(events) = &self.events else {
            return;
        };
        if events.send(event).await.is_err() {
            tracing::warn!(
                service = "registry",
                "the registry event consumer has gone away; later events are dropped"
            );
            self.events = None;
        }
    }

    // Registration, with group commit.

    async fn register(
        &mut self,
        myself: &ActorRef<RegistryMessage>,
        spec: DeviceSpec,
        reply: Reply<Registration>,
    ) {
        let record = match validate_spec(&spec, self.clock.now()) {
            Ok(record) => record,
            Err(error) => {
                self.reject("register", &spec.id, &error);
                let _ = reply.send(Err(error));
                return;
            }
        };

        // A device appears at most once per batch, so a second registration of a staged device
        // waits for the first to commit.
        if self.pending.devices.contains_key(&record.id) {
            self.commit_pending().await;
        }

        match self.prepare(record) {
            Ok(Prepared::Unchanged(record)) => {
                let _ = reply.send(Ok(Registration {
                    outcome: RegisterOutcome::Unchanged,
                    record,
                }));
            }
            Ok(Prepared::Write { record, previous }) => {
                let previous = previous.map(|previous| *previous);
                self.stage(myself, record, previous, reply);
                if self.pending.staged.len() >= self.config.max_registration_batch {
                    self.commit_pending().await;
                }
            }
            Err(error) => {
                self.reject("register", &spec.id, &error);
                let _ = reply.send(Err(error));
            }
        }
    }

    /// Checks a validated record against the stored one, the identifier owners and the device
    /// limit.
    fn prepare(&self, mut record: DeviceRecord) -> Result<Prepared, RegistryError> {
        let read = self.store.begin_read()?;
        let previous = read.get(&DEVICES, &record.id)?;
        if let Some(previous) = &previous {
            if previous.same_content(&record) {
                return Ok(Prepared::Unchanged(previous.clone()));
            }
            record.created_at = previous.created_at;
        }

        for identifier in &record.identifiers {
            let key = identifier.index_key();
            let owner = match self.pending.identifiers.get(&key) {
                Some(owner) => Some(owner.clone()),
                // A stored owner that is staged without this identifier is giving it up.
                None => tables::identifier_owner(&read, &key)?
                    .filter(|owner| !self.pending.devices.contains_key(owner)),
            };
            if let Some(owner) = owner
                && owner != record.id
            {
                return Err(RegistryError::IdentifierConflict {
                    device_id: record.id.clone(),
                    identifier: identifier.clone(),
                    owner,
                });
            }
        }

        let registered = self.live.len() + self.pending.new_devices;
        if previous.is_none() && registered >= self.config.max_devices {
            return Err(RegistryError::DeviceLimitReached {
                device_id: record.id.clone(),
                max: self.config.max_devices,
            });
        }

        Ok(Prepared::Write {
            record,
            previous: previous.map(Box::new),
        })
    }

    fn stage(
        &mut self,
        myself: &ActorRef<RegistryMessage>,
        record: DeviceRecord,
        previous: Option<DeviceRecord>,
        reply: Reply<Registration>,
    ) {
        let pending = &mut self.pending;
        if previous.is_none() {
            pending.new_devices += 1;
        }
        for identifier in &record.identifiers {
            pending
                .identifiers
                .insert(identifier.index_key(), record.id.clone());
        }
        pending
            .devices
            .insert(record.id.clone(), pending.staged.len());
        pending.staged.push(Staged {
            record,
            previous,
            reply,
        });

        if !pending.commit_scheduled {
            pending.commit_scheduled = myself.cast(RegistryMessage::CommitRegistrations).is_ok();
        }
    }

    /// Commits every staged registration in one durable transaction, then acknowledges them.
    ///
    /// If the commit fails, every staged registration gets the error as its reply and none is
    /// applied in memory.
    async fn commit_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if pending.staged.is_empty() {
            return;
        }

        // NOTE: the commit and its fsync run on the actor's runtime thread and block it for the
        // commit's duration. Moving store writes to a blocking thread would free it.
        let batch: Vec<(&DeviceRecord, Option<&DeviceRecord>)> = pending
            .staged
            .iter()
            .map(|staged| (&staged.record, staged.previous.as_ref()))
            .collect();
        let result = self.store.write(|transaction| {
            tables::put_devices(transaction, &batch)?;
            Ok::<(), RegistryError>(())
        });
        drop(batch);

        if let Err(error) = result {
            tracing::error!(
                service = "registry",
                registrations = pending.staged.len(),
                %error,
                "failed to commit registrations; none was acknowledged"
            );
            let message = error.to_string();
            for staged in pending.staged {
                let error = RegistryError::CommitFailed {
                    device_id: staged.record.id.clone(),
                    reason: message.clone(),
                };
                let _ = staged.reply.send(Err(error));
            }
            return;
        }

        self.stats.registration_commits += 1;
        self.stats.registrations_committed += pending.staged.len() as u64;
        for staged in pending.staged {
            self.apply_registration(staged).await;
        }
    }

    async fn apply_registration(&mut self, staged: Staged) {
        let Staged {
            record,
            previous,
            reply,
        } = staged;
        let timeout = self.config.timeouts.timeout_of(&record);
        let outcome = if previous.is_some() {
            RegisterOutcome::Updated
        } else {
            RegisterOutcome::Created
        };

        let new_status = match self.live.get_mut(&record.id) {
            Some(live) => {
                live.timeout = timeout;
                None
            }
            None => {
                let live = LiveDevice::unknown(
                    AvailabilityReason::NotSeenSinceRegistration,
                    self.clock.now(),
                    self.clock.monotonic(),
                    timeout,
                    None,
                );
                let status = live.status(&record.id);
                self.live.insert(record.id.clone(), live);
                Some(status)
            }
        };

        tracing::debug!(service = "registry", device_id = %record.id, ?outcome, "registered a device");
        let _ = reply.send(Ok(Registration {
            outcome,
            record: record.clone(),
        }));

        let event = match outcome {
            RegisterOutcome::Created => RegistryEvent::Registered(record),
            _ => RegistryEvent::Updated(record),
        };
        self.emit(event).await;
        if let Some(status) = new_status {
            self.emit(RegistryEvent::Status(status)).await;
        }
    }

    // Deregistration and update.

    async fn deregister(&mut self, id: &DeviceId) -> Result<Tombstone, RegistryError> {
        let record = self.read_device(id)?;
        let tombstone = Tombstone {
            device_id: id.clone(),
            deregistered_at: self.clock.now(),
        };
        let now = tombstone.deregistered_at;

        let mut changed_groups = Vec::new();
        for group in self.groups.values() {
            if group.members.contains(id) {
                let mut changed = group.clone();
                changed.members.remove(id);
                changed.updated_at = now;
                changed_groups.push(changed);
            }
        }

        self.store.write(|transaction| {
            tables::remove_device(transaction, &record, &tombstone)?;
            for group in &changed_groups {
                tables::put_group(transaction, group)?;
            }
            Ok::<(), RegistryError>(())
        })?;

        self.live.remove(id);
        self.dirty_last_seen.remove(id);
        for group in changed_groups {
            self.groups.insert(group.id.clone(), group);
        }
        tracing::info!(service = "registry", device_id = %id, "deregistered a device");

        self.emit(RegistryEvent::StatusCleared(id.clone())).await;
        self.emit(RegistryEvent::Deregistered(tombstone.clone()))
            .await;
        Ok(tombstone)
    }

    async fn update(
        &mut self,
        id: &DeviceId,
        update: DeviceUpdate,
    ) -> Result<DeviceRecord, RegistryError> {
        let previous = self.read_device(id)?;
        let mut spec = previous.to_spec();
        if let Some(name) = update.name {
            spec.name = name;
        }
        if let Some(location) = update.location {
            spec.location = location;
        }
        if let Some(capabilities) = update.capabilities {
            spec.capabilities = capabilities;
        }
        if let Some(metadata) = update.metadata {
            spec.metadata = metadata;
        }

        let mut record = validate_spec(&spec, self.clock.now())?;
        if record.same_content(&previous) {
            return Ok(previous);
        }
        record.created_at = previous.created_at;

        self.store.write(|transaction| {
            tables::put_device(transaction, &record, Some(&previous))?;
            Ok::<(), RegistryError>(())
        })?;
        tracing::debug!(service = "registry", device_id = %id, "updated a device");
        self.emit(RegistryEvent::Updated(record.clone())).await;
        Ok(record)
    }

    /// Reads a registered device, or explains with its tombstone why it is missing.
    fn read_device(&self, id: &DeviceId) -> Result<DeviceRecord, RegistryError> {
        let read = self.store.begin_read()?;
        match read.get(&DEVICES, id)? {
            Some(record) => Ok(record),
            None => Err(RegistryError::DeviceNotFound {
                device_id: id.clone(),
                deregistered_at: read
                    .get(&TOMBSTONES, id)?
                    .map(|tombstone| tombstone.deregistered_at),
            }),
        }
    }

    fn get(&self, id: &DeviceId) -> Result<DeviceView, RegistryError> {
        let record = self.read_device(id)?;
        Ok(self.view(record))
    }

    /// Joins a record with its availability.
    pub(super) fn view(&self, record: DeviceRecord) -> DeviceView {
        let (availability, last_seen) = match self.live.get(&record.id) {
            Some(live) => (live.availability, live.last_seen),
            // Only reachable for a record written by another process since the start.
            None => (
                Availability {
                    state: super::model::AvailabilityState::Unknown,
                    reason: AvailabilityReason::NotSeenSinceStart,
                    since: self.clock.now(),
                },
                None,
            ),
        };
        DeviceView {
            record,
            availability,
            last_seen,
        }
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn max_page_size(&self) -> usize {
        self.config.max_page_size
    }

    // Availability.

    async fn heartbeat(&mut self, id: &DeviceId) -> Result<Availability, RegistryError> {
        if self.pending.devices.contains_key(id) {
            self.commit_pending().await;
        }

        let now = self.clock.now();
        let monotonic = self.clock.monotonic();
        let Some(live) = self.live.get_mut(id) else {
            self.stats.rejected_heartbeats += 1;
            let error = match self.read_device(id) {
                Err(error) => error,
                Ok(_) => RegistryError::DeviceNotFound {
                    device_id: id.clone(),
                    deregistered_at: None,
                },
            };
            self.reject("heartbeat", id.as_str(), &error);
            return Err(error);
        };

        self.stats.heartbeats += 1;
        let changed = live.heartbeat(now, monotonic);
        let availability = live.availability;
        let status = live.status(id);
        self.dirty_last_seen.insert(id.clone(), now);
        if changed.is_some() {
            tracing::debug!(service = "registry", device_id = %id, "device is online");
            self.emit(RegistryEvent::Status(status)).await;
        }
        Ok(availability)
    }

    async fn last_will(&mut self, id: &DeviceId) {
        let now = self.clock.now();
        let Some(live) = self.live.get_mut(id) else {
            return;
        };
        if live.last_will(now).is_some() {
            let status = live.status(id);
            tracing::info!(service = "registry", device_id = %id, "device is offline: last will");
            self.emit(RegistryEvent::Status(status)).await;
        }
    }

    /// Marks every device silent longer than its timeout offline and returns their statuses.
    async fn sweep(&mut self) -> Vec<DeviceStatus> {
        let now = self.clock.now();
        let monotonic = self.clock.monotonic();
        let mut changed = Vec::new();
        for (id, live) in self.live.iter_mut() {
            if live.sweep(now, monotonic).is_some() {
                changed.push(live.status(id));
            }
        }
        for status in &changed {
            tracing::info!(service = "registry", device_id = %status.device_id, "device is offline: heartbeat timeout");
            self.emit(RegistryEvent::Status(status.clone())).await;
        }
        changed
    }

    /// Writes the last-seen times changed since the last flush in one durable commit and
    /// returns how many there were. On failure they stay queued for the next flush.
    fn flush_last_seen(&mut self) -> Result<usize, RegistryError> {
        if self.dirty_last_seen.is_empty() {
            return Ok(0);
        }
        let dirty = std::mem::take(&mut self.dirty_last_seen);
        let result = self.store.write(|transaction| {
            for (id, time) in &dirty {
                transaction.insert(&LAST_SEEN, id, time)?;
            }
            Ok::<(), RegistryError>(())
        });
        match result {
            Ok(()) => {
                self.stats.last_seen_flushes += 1;
                Ok(dirty.len())
            }
            Err(error) => {
                // Newer times recorded since the take win over the ones being put back.
                for (id, time) in dirty {
                    self.dirty_last_seen.entry(id).or_insert(time);
                }
                Err(error)
            }
        }
    }

    // Groups.

    fn create_group(&mut self, id: GroupId, name: String) -> Result<Group, RegistryError> {
        validate_group_name(&name)?;
        if self.groups.contains_key(&id) {
            return Err(RegistryError::GroupExists { group_id: id });
        }
        let now = self.clock.now();
        let group = Group {
            id,
            name,
            members: Default::default(),
            created_at: now,
            updated_at: now,
        };
        self.save_group(group)
    }

    fn rename_group(&mut self, id: &GroupId, name: String) -> Result<Group, RegistryError> {
        validate_group_name(&name)?;
        let mut group = self.group(id)?;
        group.name = name;
        group.updated_at = self.clock.now();
        self.save_group(group)
    }

    fn delete_group(&mut self, id: &GroupId) -> Result<Group, RegistryError> {
        let group = self.group(id)?;
        self.store.write(|transaction| {
            tables::remove_group(transaction, id)?;
            Ok::<(), RegistryError>(())
        })?;
        self.groups.remove(id);
        Ok(group)
    }

    fn change_member(
        &mut self,
        id: &GroupId,
        device: DeviceId,
        add: bool,
    ) -> Result<Group, RegistryError> {
        let mut group = self.group(id)?;
        if add && !self.live.contains_key(&device) {
            return Err(RegistryError::DeviceNotFound {
                device_id: device,
                deregistered_at: None,
            });
        }
        let changed = if add {
            group.members.insert(device)
        } else {
            group.members.remove(&device)
        };
        if !changed {
            return Ok(group);
        }
        group.updated_at = self.clock.now();
        self.save_group(group)
    }

    fn get_group(&self, id: &GroupId) -> Result<GroupView, RegistryError> {
        let group = self.group(id)?;
        Ok(groups::view(&group, &self.live))
    }

    fn group(&self, id: &GroupId) -> Result<Group, RegistryError> {
        self.groups
            .get(id)
            .cloned()
            .ok_or_else(|| RegistryError::GroupNotFound {
                group_id: id.clone(),
            })
    }

    /// Writes `group` durably, then replaces the copy in memory.
    fn save_group(&mut self, group: Group) -> Result<Group, RegistryError> {
        self.store.write(|transaction| {
            tables::put_group(transaction, &group)?;
            Ok::<(), RegistryError>(())
        })?;
        self.groups.insert(group.id.clone(), group.clone());
        Ok(group)
    }
}

/// What a registration would write.
enum Prepared {
    /// The stored record already has this content.
    Unchanged(DeviceRecord),
    /// The record is new or changed; the stored record it replaces is boxed to keep the
    /// variants of equal size.
    Write {
        record: DeviceRecord,
        previous: Option<Box<DeviceRecord>>,
    },
}
