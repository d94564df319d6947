//! Images by `imagePullPolicy`: ImageStatus first; a pull only for `Always` or a missing image
//! (`Never` and missing: ErrImageNeverPull); a failed pull is ErrImagePull, then
//! ImagePullBackOff until its back-off ends; a malformed name is InvalidImageName.

/// Why a container's image is not there (the container's waiting reason and message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProblem {
    pub reason: &'static str,
    pub message: String,
}

/// Checks an image reference's shape (`[host[:port]/]path[:tag][@digest]`, lower-case path).
pub fn validate(image: &str) -> Result<(), ImageProblem> {
    let invalid = || {
        ImageProblem {
        reason: "InvalidImageName",
        message: format!(
            "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
        ),
    }
    };
    if image.is_empty() || image.contains(char::is_whitespace) || image.ends_with([':', '/', '@']) {
        return Err(invalid());
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty() && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            return Err(invalid());
        }
    }
    // A tag follows the last ':' after the last '/'.
    let last = name.rsplit('/').next().unwrap_or(name);
    let (path_last, tag) = match last.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (last, None),
    };
    if let Some(t) = tag {
        if t.is_empty()
            || t.len() > 128
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(invalid());
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if let Some(l) = parts.last_mut() {
        *l = path_last;
    }
    // The first part may be a registry host (with a port or dots, or "localhost").
    let host_like = parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost");
    let path = if host_like { &parts[1..] } else { &parts[..] };
    let component_ok = |p: &&str| {
        !p.is_empty()
            && p.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
            && p.starts_with(|c: char| c.is_ascii_alphanumeric())
            && p.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if path.is_empty() || !path.iter().all(component_ok) {
        return Err(invalid());
    }
    Ok(())
}

/// The effective pull policy (the API defaults it; this covers objects that lack it).
pub fn policy(image: &str, spec_policy: Option<&str>) -> String {
    match spec_policy {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            let last = image.rsplit('/').next().unwrap_or(image);
            if image.contains('@') || last.split_once(':').is_some_and(|(_, t)| t != "latest") {
                "IfNotPresent".into()
            } else {
                "Always".into()
            }
        }
    }
}

/// What to do about an image given the policy and whether the runtime has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Use what is present.
    Use,
    /// Pull it.
    Pull,
    /// Missing, and never pulled.
    NeverPull(ImageProblem),
}

/// The decision for `policy` when the image is (or is not) `present`.
pub fn decide(image: &str, policy: &str, present: bool) -> Decision {
    match (policy, present) {
        ("Always", _) => Decision::Pull,
        (_, true) => Decision::Use,
        ("Never", false) => Decision::NeverPull(ImageProblem {
            reason: "ErrImageNeverPull",
            message: format!(
                "Container image \"{image}\" is not present with pull policy of Never"
            ),
        }),
        _ => Decision::Pull,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        for ok in [
            "busybox",
            "localhost/busybox:1.36",
            "registry.example.com:5000/team/app:v1.2-rc_3",
            "library/nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Busybox",
            "busy box",
            "app:",
            "app:b@d",
            "a//b",
            "app@sha256:xyz",
        ] {
            let e = validate(bad).unwrap_err();
            assert_eq!(e.reason, "InvalidImageName", "{bad}");
        }
    }

    #[test]
    fn policies() {
        assert_eq!(policy("busybox", None), "Always");
        assert_eq!(policy("busybox:latest", None), "Always");
        assert_eq!(policy("localhost:5000/busybox:1.36", None), "IfNotPresent");
        assert_eq!(policy("busybox", Some("Never")), "Never");
        assert_eq!(decide("x", "IfNotPresent", true), Decision::Use);
        assert_eq!(decide("x", "IfNotPresent", false), Decision::Pull);
        assert_eq!(decide("x", "Always", true), Decision::Pull);
        match decide("x", "Never", false) {
            Decision::NeverPull(p) => {
                assert_eq!(p.reason, "ErrImageNeverPull");
                assert_eq!(
                    p.message,
                    "Container image \"x\" is not present with pull policy of Never"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
