//! Client-side rate limiting, as client-go's: a token bucket of `qps` tokens a second holding
//! at most `burst`, and every request (a watch's start included) waits for its token before
//! it is sent. It is what kube-controller-manager's, kube-scheduler's and the kubelet's
//! `--kube-api-qps` and `--kube-api-burst` set: a controller with thousands of writes to make
//! sends them at a pace the apiserver and the store can take, instead of queueing them all at
//! once in front of everyone else's (node heartbeats, status updates).

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

/// A token bucket handing out reservations: the delay until the caller's token is available.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub(crate) fn new(qps: f64, burst: u32) -> Self {
        TokenBucket {
            qps,
            burst: burst as f64,
            tokens: burst as f64,
            last: None,
        }
    }

    /// Takes the next token: how long the caller must wait for it (zero while the bucket
    /// holds tokens). A bucket of no rate never makes anyone wait.
    pub(crate) fn reserve(&mut self, now: Instant) -> Duration {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 || self.qps <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

/// The limits of one client: `qps` requests a second on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    pub qps: f32,
    pub burst: u32,
}

impl Throttle {
    /// The limits a component's `--kube-api-qps` and `--kube-api-burst` give: none when the
    /// rate is zero or negative (client-go disables its limiter for a negative QPS).
    pub fn from_flags(qps: f32, burst: u32) -> Option<Throttle> {
        (qps > 0.0).then_some(Throttle {
            qps,
            burst: burst.max(1),
        })
    }
}

/// The tower layer that holds requests to a [`Throttle`]; its services share one bucket.
#[derive(Clone)]
pub struct ThrottleLayer {
    bucket: Arc<Mutex<TokenBucket>>,
}

impl ThrottleLayer {
    pub fn new(t: Throttle) -> Self {
        ThrottleLayer {
            bucket: Arc::new(Mutex::new(TokenBucket::new(t.qps as f64, t.burst))),
        }
    }
}

impl<S> tower::Layer<S> for ThrottleLayer {
    type Service = Throttled<S>;

    fn layer(&self, inner: S) -> Throttled<S> {
        Throttled {
            inner,
            bucket: self.bucket.clone(),
        }
    }
}

/// A service whose calls wait for a token of the shared bucket.
#[derive(Clone)]
pub struct Throttled<S> {
    inner: S,
    bucket: Arc<Mutex<TokenBucket>>,
}

impl<S, R> tower::Service<R> for Throttled<S>
where
    S: tower::Service<R> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is the inner service's, checked when the token is in hand.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        let wait = match self.bucket.lock() {
            Ok(mut b) => b.reserve(Instant::now()),
            // A panic while holding the bucket left its count as it was: keep going unlimited
            // rather than stop every request.
            Err(poisoned) => poisoned.into_inner().reserve(Instant::now()),
        };
        let inner = self.inner.clone();
        Box::pin(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let mut inner = inner;
            tower::ServiceExt::ready(&mut inner).await?.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = TokenBucket::new(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.reserve(t0), Duration::ZERO);
        }
        // The 4th and 5th wait one and two tenths of a second.
        assert_eq!(b.reserve(t0), Duration::from_millis(100));
        let d = b.reserve(t0);
        assert!((d.as_secs_f64() - 0.2).abs() < 1e-9, "{d:?}");
        // After a second the bucket is full again (3 tokens, not 10).
        let t1 = t0 + Duration::from_secs(2);
        for _ in 0..3 {
            assert_eq!(b.reserve(t1), Duration::ZERO);
        }
        assert!(!b.reserve(t1).is_zero());
    }

    #[test]
    fn no_rate_no_limit() {
        assert_eq!(Throttle::from_flags(0.0, 10), None);
        assert_eq!(Throttle::from_flags(-1.0, 10), None);
        assert_eq!(
            Throttle::from_flags(20.0, 0),
            Some(Throttle {
                qps: 20.0,
                burst: 1
            })
        );
    }

    #[tokio::test]
    async fn requests_wait_for_their_token() {
        use tower::{Service, ServiceExt};
        let layer = ThrottleLayer::new(Throttle {
            qps: 20.0,
            burst: 1,
        });
        let mut svc = tower::Layer::layer(
            &layer,
            tower::service_fn(|_: ()| async { Ok::<_, std::convert::Infallible>(Instant::now()) }),
        );
        let start = Instant::now();
        let mut offsets = Vec::new();
        for _ in 0..3 {
            let at = svc.ready().await.unwrap().call(()).await.unwrap();
            offsets.push((at - start).as_millis());
        }
        // The first at once, then one every 50 ms.
        assert!(offsets[0] < 40, "{offsets:?}");
        assert!(offsets[1] >= 45, "{offsets:?}");
        assert!(offsets[2] >= 95, "{offsets:?}");
    }
}
