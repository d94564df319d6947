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

/// Decides from the Lease (None when it does not exist yet), the time and our identity.
pub fn decide(lease: Option<&Lease>, now: Timestamp, identity: &str) -> Decision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else { return Decision::Acquire };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Acquire;
    }
    let duration = spec.lease_duration_seconds.unwrap_or(15) as i64;
    let renewed = spec.renew_time.as_ref().map(|t| t.0).or(spec.acquire_time.as_ref().map(|t| t.0));
    match renewed {
        Some(t) if now.as_second() - t.as_second() < duration => Decision::Wait,
        _ => Decision::Acquire,
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
        loop {
            let leading = match try_once(&api, &cfg).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(lease = %cfg.name, error = %e, "leader election round failed");
                    false
                }
            };
            tx.send_replace(leading);
            tokio::time::sleep(cfg.retry_period).await;
        }
    });
    rx
}

async fn try_once(api: &Api<Lease>, cfg: &Config) -> Result<bool, kube::Error> {
    let current = api.get_opt(&cfg.name).await?;
    let now = Timestamp::now();
    let decision = decide(current.as_ref(), now, &cfg.identity);
    if decision == Decision::Wait {
        return Ok(false);
    }
    let transitions = current.as_ref().and_then(|l| l.spec.as_ref()).and_then(|s| s.lease_transitions).unwrap_or(0);
    let acquire_time = match (&decision, current.as_ref().and_then(|l| l.spec.as_ref()).and_then(|s| s.acquire_time.clone())) {
        (Decision::Renew, Some(t)) => t,
        _ => MicroTime(now),
    };
    let spec = LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.lease_duration.as_secs() as i32),
        acquire_time: Some(acquire_time),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if decision == Decision::Acquire && current.is_some() { transitions + 1 } else { transitions }),
        ..Default::default()
    };
    let result = match current {
        None => {
            let lease = Lease { metadata: ObjectMeta { name: Some(cfg.name.clone()), ..Default::default() }, spec: Some(spec) };
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
        let now: Timestamp = "2026-01-01T00:00:20Z".parse().unwrap();
        assert_eq!(decide(None, now, "a"), Decision::Acquire);
        assert_eq!(decide(Some(&lease("a", "2026-01-01T00:00:19Z", 15)), now, "a"), Decision::Renew);
        assert_eq!(decide(Some(&lease("b", "2026-01-01T00:00:10Z", 15)), now, "a"), Decision::Wait);
        assert_eq!(decide(Some(&lease("b", "2026-01-01T00:00:04Z", 15)), now, "a"), Decision::Acquire);
        assert_eq!(decide(Some(&lease("", "2026-01-01T00:00:19Z", 15)), now, "a"), Decision::Acquire);
    }
}
