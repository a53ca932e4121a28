//! Config-driven training runs for Arbitor models on Burn's `Learner`, and the
//! `arbitor` command line.

pub mod config;
pub mod data;
pub mod generate;
pub mod lm;
pub mod plot;
pub mod progress;
pub mod quickstart;
pub mod recorder;
pub mod run;
