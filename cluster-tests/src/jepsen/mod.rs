//! A Jepsen-style fault-injection suite: hosts in Docker containers on a private network,
//! clients that record every operation, nemeses that kill, pause, partition and reconfigure
//! members on a schedule, and checkers that read the recorded histories afterwards.
//!
//! [`history`] holds the recorded operations, [`check`] the checkers (each tested on histories
//! with known anomalies), [`hosts`] and [`apihosts`] the containers, [`nemesis`] the faults,
//! [`workload`] the clients, [`runner`] one run and [`report`] what it writes. The command is
//! `src/bin/jepsen.rs`.

pub mod apihosts;
pub mod check;
pub mod docker;
pub mod history;
pub mod hosts;
mod image;
pub mod nemesis;
mod plot;
pub mod report;
pub mod runner;
pub mod workload;
