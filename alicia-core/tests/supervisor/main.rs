//! Supervisor behavior against real ractor actors, with tokio's clock paused so that backoff
//! and shutdown budgets pass without real waiting.

mod backoff;
mod common;
mod dynamic;
mod handles;
mod intensity;
mod lifecycle;
mod restart_types;
mod snapshot;
mod strategies;
