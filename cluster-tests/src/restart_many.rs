//! Restarting several members together.
//!
//! [`Cluster::restart`] waits until the member serves, but an etcd member restarted alone
//! after a whole-cluster outage does not serve until a quorum is back. This starts all of
//! them first and then waits.

use anyhow::{ensure, Result};

use crate::cluster::START_TIMEOUT;
use crate::member::State;
use crate::Cluster;

impl Cluster {
    /// Starts the killed or stopped `members` again on their data directories (with
    /// `--initial-cluster-state=existing`), all before waiting, then waits (up to 30 s) until
    /// each answers Status and knows a leader.
    pub async fn restart_members(&mut self, members: &[usize]) -> Result<()> {
        for &i in members {
            ensure!(
                self.members[i].state == State::Active,
                "member {} is not part of the cluster",
                self.members[i].name
            );
            self.spawn(i, "existing")?;
        }
        self.wait_ready(members, true, START_TIMEOUT).await
    }
}
