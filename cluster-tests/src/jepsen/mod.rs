//! A Jepsen-style fault-injection suite: hosts in Docker containers on a private network,
//! clients that record every operation, nemeses that kill, pause, partition and reconfigure
//! members on a schedule, and checkers that read the recorded histories afterwards.
//!
//! [`history`] holds the recorded operations, [`check`] the checkers (each tested on histories
//! with known anomalies).

pub mod check;
pub mod history;
