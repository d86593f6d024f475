//! Alicia core infrastructure services.

pub mod health;
