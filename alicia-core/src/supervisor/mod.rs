//! Supervision of ractor actors.
