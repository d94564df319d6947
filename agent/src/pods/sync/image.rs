//! A container's image by its pull policy: used when present, pulled when asked or missing
//! (with back-off after a failure), refused when `Never` and missing or invalid.

use super::*;

impl Run<'_> {
    /// The image reference to run, after the pull policy; None: the container waits.
    pub(super) async fn image(
        &self,
        c: &Container,
        st: &mut WorkerState,
        wake: &mut Option<Duration>,
    ) -> Result<Option<String>, RuntimeError> {
        let image = c.image.clone().unwrap_or_default();
        if let Err(p) = images::validate(&image) {
            self.ctx.events.emit(
                self.pod,
                Some(&c.name),
                Warning,
                "InspectFailed",
                p.message.clone(),
            );
            self.failed(c, p.reason, p.message, st);
            return Ok(None);
        }
        let policy = images::policy(&image, c.image_pull_policy.as_deref());
        let present = self.ctx.runtime.image_status(&image).await?;
        match images::decide(&image, &policy, present.is_some()) {
            images::Decision::Use => {
                self.ctx.events.emit(
                    self.pod,
                    Some(&c.name),
                    Normal,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
                Ok(present.map(|i| if i.id.is_empty() { image.clone() } else { i.id }))
            }
            images::Decision::NeverPull(p) => {
                self.ctx.events.emit(
                    self.pod,
                    Some(&c.name),
                    Warning,
                    "ErrImageNeverPull",
                    p.message.clone(),
                );
                self.failed(c, p.reason, p.message, st);
                earliest(wake, Duration::from_secs(10));
                Ok(None)
            }
            images::Decision::Pull => {
                let (_, _, uid) = sandbox::ids(self.pod);
                let key = format!("{uid}/{}/{image}", c.name);
                let now = Timestamp::now();
                let last_failure = st
                    .waiting
                    .get(&c.name)
                    .filter(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff");
                if last_failure.is_some() {
                    let left = {
                        let b = self.ctx.image_backoff.lock().await;
                        b.last(&key).and_then(|at| b.remaining(&key, at, now))
                    };
                    if let Some(left) = left {
                        let msg = format!("Back-off pulling image \"{image}\"");
                        self.ctx.events.emit(
                            self.pod,
                            Some(&c.name),
                            Normal,
                            "BackOff",
                            msg.clone(),
                        );
                        self.ctx.events.emit(
                            self.pod,
                            Some(&c.name),
                            Warning,
                            "Failed",
                            "Error: ImagePullBackOff".into(),
                        );
                        st.waiting
                            .insert(c.name.clone(), ("ImagePullBackOff".into(), msg));
                        earliest(wake, left);
                        return Ok(None);
                    }
                }
                self.ctx.events.emit(
                    self.pod,
                    Some(&c.name),
                    Normal,
                    "Pulling",
                    format!("Pulling image \"{image}\""),
                );
                let started = Instant::now();
                match self.ctx.runtime.pull_image(&image).await {
                    Ok(r) => {
                        self.ctx.events.emit(
                            self.pod,
                            Some(&c.name),
                            Normal,
                            "Pulled",
                            format!(
                                "Successfully pulled image \"{image}\" in {:?}",
                                started.elapsed()
                            ),
                        );
                        Ok(Some(r))
                    }
                    Err(e) => {
                        let msg = format!("Failed to pull image \"{image}\": {e}");
                        self.ctx.events.emit(
                            self.pod,
                            Some(&c.name),
                            Warning,
                            "Failed",
                            msg.clone(),
                        );
                        let mut b = self.ctx.image_backoff.lock().await;
                        b.next(&key, Timestamp::now());
                        let delay = b.delay(&key).unwrap_or(Duration::from_secs(10));
                        drop(b);
                        self.ctx.events.emit(
                            self.pod,
                            Some(&c.name),
                            Warning,
                            "Failed",
                            "Error: ErrImagePull".into(),
                        );
                        // The next sync shows ImagePullBackOff until the back-off ends.
                        st.waiting
                            .insert(c.name.clone(), ("ErrImagePull".into(), msg));
                        earliest(wake, delay.min(Duration::from_secs(1)));
                        Ok(None)
                    }
                }
            }
        }
    }
}
