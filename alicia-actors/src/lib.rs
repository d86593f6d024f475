//! Alicia core infrastructure services.
