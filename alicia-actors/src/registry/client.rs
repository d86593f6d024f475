//! The typed client of the device registry.

use std::time::Duration;

use alicia_core::DeviceId;
use alicia_core::supervisor::{CallError, ChildHandle};
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;

use super::actor::{RegistryActor, RegistryArgs, RegistryMessage, RegistryStats, Reply};
use super::error::RegistryError;
use super::model::{
    Availability, DevicePage, DeviceQuery, DeviceRecord, DeviceSpec, DeviceStatus, DeviceUpdate,
    DeviceView, Group, GroupId, GroupView, Registration, Tombstone,
};

/// How long a call waits for the registry by default. A registration waits for a durable commit,
/// which a slow disk under load can stretch to seconds.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A cheap, cloneable handle for calling the device registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    /// The registry actor's current incarnation, found through its supervisor when it has one.
    actor: ChildHandle<RegistryMessage>,
    timeout: Duration,
}

impl RegistryClient {
    /// Starts a registry actor and returns its client and the actor's join handle.
    ///
    /// The actor loads every device and group from the store before this returns.
    pub async fn spawn(args: RegistryArgs) -> Result<(Self, JoinHandle<()>), RegistryError> {
        let (actor, handle) = Actor::spawn(None, RegistryActor, args)
            .await
            .map_err(|error| RegistryError::Unavailable {
                reason: format!("the registry failed to start: {error}"),
            })?;
        Ok((Self::new(actor), handle))
    }

    /// Wraps a running registry actor that no supervisor restarts.
    pub fn new(actor: ActorRef<RegistryMessage>) -> Self {
        Self::supervised(ChildHandle::unsupervised(actor))
    }

    /// Wraps a supervised registry actor: calls reach its current incarnation, and during a
    /// restart they wait up to the handle's wait bound.
    pub fn supervised(actor: ChildHandle<RegistryMessage>) -> Self {
        Self {
            actor,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Returns a client whose calls wait at most `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Returns how long a call waits for its reply.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Returns the registry actor's current incarnation, if one is running.
    pub fn actor(&self) -> Option<ActorRef<RegistryMessage>> {
        self.actor.current()
    }

    async fn call<T: Send + 'static>(
        &self,
        build: impl FnOnce(Reply<T>) -> RegistryMessage,
    ) -> Result<T, RegistryError> {
        self.call_raw(build).await?
    }

    async fn call_raw<T: Send + 'static>(
        &self,
        build: impl FnOnce(ractor::RpcReplyPort<T>) -> RegistryMessage,
    ) -> Result<T, RegistryError> {
        self.actor
            .call(build, Some(self.timeout))
            .await
            .map_err(|error: CallError| RegistryError::Unavailable {
                reason: error.to_string(),
            })
    }

    /// Registers a device, or re-registers it.
    ///
    /// Returns after the record is durably committed. Registering the same content again
    /// changes nothing ([`RegisterOutcome::Unchanged`](super::RegisterOutcome::Unchanged)).
    pub async fn register(&self, spec: DeviceSpec) -> Result<Registration, RegistryError> {
        self.call(|reply| RegistryMessage::Register(spec, reply))
            .await
    }

    /// Sends a registration without waiting for it: the registry sends the outcome to `reply`
    /// after the durable commit, as for [`RegistryClient::register`].
    ///
    /// Waits only while the registry restarts, up to its handle's wait bound. The MQTT routes
    /// use this to keep many registrations in flight from one task.
    pub async fn register_with_reply(
        &self,
        spec: DeviceSpec,
        reply: Reply<Registration>,
    ) -> Result<(), RegistryError> {
        self.actor
            .cast(RegistryMessage::Register(spec, reply))
            .await
            .map_err(|error: CallError| RegistryError::Unavailable {
                reason: error.to_string(),
            })
    }

    /// Deregisters a device, writes its tombstone and clears its retained status.
    pub async fn deregister(&self, id: &DeviceId) -> Result<Tombstone, RegistryError> {
        let id = id.clone();
        self.call(|reply| RegistryMessage::Deregister(id, reply))
            .await
    }

    /// Changes the name, location, capabilities or metadata of a device.
    pub async fn update(
        &self,
        id: &DeviceId,
        update: DeviceUpdate,
    ) -> Result<DeviceRecord, RegistryError> {
        let id = id.clone();
        self.call(|reply| RegistryMessage::Update(id, update, reply))
            .await
    }

    /// Records a heartbeat and returns the device's availability.
    pub async fn heartbeat(&self, id: &DeviceId) -> Result<Availability, RegistryError> {
        let id = id.clone();
        self.call(|reply| RegistryMessage::Heartbeat(id, Some(reply)))
            .await
    }

    /// Passes a heartbeat to the registry without waiting, for the high-rate MQTT path.
    ///
    /// Fails at once, without waiting for a restart to finish, when no registry incarnation is
    /// running; the device's next heartbeat is the retry.
    pub fn heartbeat_nowait(&self, id: &DeviceId) -> Result<(), RegistryError> {
        let actor = self
            .actor
            .current()
            .ok_or_else(|| RegistryError::Unavailable {
                reason: "the registry is restarting".into(),
            })?;
        actor
            .cast(RegistryMessage::Heartbeat(id.clone(), None))
            .map_err(|error| RegistryError::Unavailable {
                reason: error.to_string(),
            })
    }

    /// Records that the broker published the device's last will.
    pub async fn report_last_will(&self, id: &DeviceId) -> Result<(), RegistryError> {
        self.actor
            .cast(RegistryMessage::LastWill(id.clone()))
            .await
            .map_err(|error| RegistryError::Unavailable {
                reason: error.to_string(),
            })
    }

    /// Reads one device with its availability.
    pub async fn get(&self, id: &DeviceId) -> Result<DeviceView, RegistryError> {
        let id = id.clone();
        self.call(|reply| RegistryMessage::Get(id, reply)).await
    }

    /// Reads one page of the devices that match `query`.
    pub async fn query(&self, query: DeviceQuery) -> Result<DevicePage, RegistryError> {
        self.call(|reply| RegistryMessage::Query(query, reply))
            .await
    }

    /// Creates an empty group.
    pub async fn create_group(
        &self,
        id: &GroupId,
        name: impl Into<String>,
    ) -> Result<Group, RegistryError> {
        let (id, name) = (id.clone(), name.into());
        self.call(|reply| RegistryMessage::CreateGroup(id, name, reply))
            .await
    }

    /// Renames a group.
    pub async fn rename_group(
        &self,
        id: &GroupId,
        name: impl Into<String>,
    ) -> Result<Group, RegistryError> {
        let (id, name) = (id.clone(), name.into());
        self.call(|reply| RegistryMessage::RenameGroup(id, name, reply))
            .await
    }

    /// Deletes a group and returns it; its devices stay registered.
    pub async fn delete_group(&self, id: &GroupId) -> Result<Group, RegistryError> {
        let id = id.clone();
        self.call(|reply| RegistryMessage::DeleteGroup(id, reply))
            .await
    }

    /// Adds a registered device to a group.
    pub async fn add_member(
        &self,
        group: &GroupId,
        device: &DeviceId,
    ) -> Result<Group, RegistryError> {
        let (group, device) = (group.clone(), device.clone());
        self.call(|reply| RegistryMessage::AddMember(group, device, reply))
            .await
    }

    /// Removes a device from a group; removing a device that is not a member changes nothing.
    pub async fn remove_member(
        &self,
        group: &GroupId,
        device: &DeviceId,
    ) -> Result<Group, RegistryError> {
        let (group, device) = (group.clone(), device.clone());
        self.call(|reply| RegistryMessage::RemoveMember(group, device, reply))
            .await
    }

    /// Reads one group with its availability.
    pub async fn get_group(&self, id: &GroupId) -> Result<GroupView, RegistryError> {
        let id = id.clone();
        self.call(|reply| RegistryMessage::GetGroup(id, reply))
            .await
    }

    /// Reads every group with its availability.
    pub async fn list_groups(&self) -> Result<Vec<GroupView>, RegistryError> {
        self.call(RegistryMessage::ListGroups).await
    }

    /// Reads the registry's counters.
    pub async fn stats(&self) -> Result<RegistryStats, RegistryError> {
        self.call_raw(RegistryMessage::Stats).await
    }

    /// Runs the availability sweep now and returns the statuses it changed. The sweep timer
    /// runs it every [`RegistryConfig::sweep_interval`](super::RegistryConfig::sweep_interval).
    pub async fn sweep(&self) -> Result<Vec<DeviceStatus>, RegistryError> {
        self.call_raw(|reply| RegistryMessage::Sweep(Some(reply)))
            .await
    }

    /// Writes the queued last-seen times durably now and returns how many there were.
    pub async fn flush_last_seen(&self) -> Result<usize, RegistryError> {
        self.call(|reply| RegistryMessage::FlushLastSeen(Some(reply)))
            .await
    }
}
