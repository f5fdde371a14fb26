//! Evaluation: the standard error rates of verification, identification, presentation-attack
//! and morph detection, computed from score lists.

pub mod dataset;
pub mod metrics;
