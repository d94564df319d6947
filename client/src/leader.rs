//! Lease-based leader election, as client-go's: a candidate takes the Lease when it is free or
//! expired, the holder renews it before it expires, and every write is a compare-and-swap on
//! the Lease's resourceVersion, so two candidates never both believe they lead.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{api::PostParams, Api};
use tokio::sync::watch;

/// What a candidate should do with the Lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it (or the holder let it expire): take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a live lease: wait.
    Wait,
}

/// Decides from the Lease (None when it does not exist yet), our identity, and how long the
/// Lease's record (holder and renew time) has been seen unchanged on our own clock. As in
/// client-go, expiry is judged by our clock only, never by comparing another machine's
/// timestamps with ours, so clock skew between candidates cannot make two of them lead.
pub fn decide(lease: Option<&Lease>, identity: &str, unchanged_for: Duration) -> Decision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return Decision::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Acquire;
    }
    let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
    if unchanged_for < duration {
        Decision::Wait
    } else {
        Decision::Acquire
    }
}

/// Election settings (client-go's defaults: 15 s lease, renew every 2 s).
#[derive(Debug, Clone)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub retry_period: Duration,
}

/// Runs the election forever, publishing on the returned channel whether we lead.
pub fn run(client: kube::Client, cfg: Config) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
        let mut observed = Observed::default();
        // A round that cannot finish within two thirds of the lease (client-go's renew
        // deadline against its lease duration) counts as lost: the leader steps down before
        // another candidate may take over.
        let deadline = cfg.lease_duration * 2 / 3;
        loop {
            let leading = match tokio::time::timeout(deadline, try_once(&api, &cfg, &mut observed))
                .await
            {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => {
                    tracing::warn!(lease = %cfg.name, error = %e, "leader election round failed");
                    false
                }
                Err(_) => {
                    tracing::warn!(lease = %cfg.name, "leader election round timed out");
                    false
                }
            };
            tx.send_replace(leading);
            tokio::time::sleep(cfg.retry_period).await;
        }
    });
    rx
}

/// The Lease record last seen and when (on our clock) it was first seen so.
#[derive(Default)]
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    since: Option<std::time::Instant>,
}

impl Observed {
    /// Notes the record just read; returns how long it has been unchanged.
    fn see(&mut self, lease: Option<&Lease>) -> Duration {
        let record = lease
            .and_then(|l| l.spec.as_ref())
            .map(|s| (s.holder_identity.clone(), s.renew_time.clone()));
        if record != self.record || self.since.is_none() {
            self.record = record;
            self.since = Some(std::time::Instant::now());
        }
        self.since.map(|t| t.elapsed()).unwrap_or_default()
    }
}

async fn try_once(
    api: &Api<Lease>,
    cfg: &Config,
    observed: &mut Observed,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(&cfg.name).await?;
    let now = Timestamp::now();
    let decision = decide(
        current.as_ref(),
        &cfg.identity,
        observed.see(current.as_ref()),
    );
    if decision == Decision::Wait {
        return Ok(false);
    }
    let transitions = current
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);
    let acquire_time = match (
        &decision,
        current
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.acquire_time.clone()),
    ) {
        (Decision::Renew, Some(t)) => t,
        _ => MicroTime(now),
    };
    let spec = LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.lease_duration.as_secs() as i32),
        acquire_time: Some(acquire_time),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if decision == Decision::Acquire && current.is_some() {
            transitions + 1
        } else {
            transitions
        }),
        ..Default::default()
    };
    let result = match current {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
        Some(mut lease) => {
            // The resourceVersion we read makes this a compare-and-swap.
            lease.spec = Some(spec);
            api.replace(&cfg.name, &PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: &str, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed.parse().unwrap())),
                lease_duration_seconds: Some(duration),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let s = Duration::from_secs;
        assert_eq!(decide(None, "a", s(0)), Decision::Acquire);
        assert_eq!(
            decide(Some(&lease("a", "2026-01-01T00:00:19Z", 15)), "a", s(0)),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease("b", "2026-01-01T00:00:10Z", 15)), "a", s(10)),
            Decision::Wait
        );
        assert_eq!(
            decide(Some(&lease("b", "2026-01-01T00:00:04Z", 15)), "a", s(16)),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&lease("", "2026-01-01T00:00:19Z", 15)), "a", s(0)),
            Decision::Acquire
        );
        // A renew time far in the past on another machine's clock does not matter: only how
        // long we have seen the record unchanged.
        assert_eq!(
            decide(Some(&lease("b", "2020-01-01T00:00:00Z", 15)), "a", s(1)),
            Decision::Wait
        );
    }

    #[test]
    fn observation_restarts_when_the_record_changes() {
        let mut o = Observed::default();
        let a = lease("b", "2026-01-01T00:00:10Z", 15);
        let first = o.see(Some(&a));
        assert!(first < Duration::from_secs(1));
        let since = o.since;
        o.see(Some(&a));
        assert_eq!(o.since, since);
        o.see(Some(&lease("b", "2026-01-01T00:00:12Z", 15)));
        assert!(o.since >= since);
        assert_ne!(
            o.record,
            Some((
                Some("b".into()),
                Some(MicroTime("2026-01-01T00:00:10Z".parse().unwrap()))
            ))
        );
    }
}
