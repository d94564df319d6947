//! The pods on a node and what they request of it, as `describe node` prints them:
//! `Non-terminated Pods` and `Allocated resources`, quantities summed and printed in
//! Kubernetes' canonical form (`500m`, `2`, `256Mi`).

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::text::{arr, s, since, strings, Text};

/// A sum of quantities of one resource: thousandths for CPU, units for the rest; `binary`
/// when the first quantity had a binary suffix (Go keeps the first operand's format).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sum {
    amount: i128,
    binary: Option<bool>,
}

impl Sum {
    fn add(&mut self, q: &str, cpu: bool) {
        let Ok(v) = api::quantity::parse(q) else {
            return;
        };
        self.amount += if cpu {
            v.milli()
        } else {
            v.value().ceil() as i128
        };
        self.binary.get_or_insert(q.trim_end().ends_with('i'));
    }

    fn max(self, other: Sum) -> Sum {
        if other.amount > self.amount {
            other
        } else {
            self
        }
    }

    fn text(&self, cpu: bool) -> String {
        let a = self.amount;
        if a == 0 {
            return "0".into();
        }
        if cpu {
            return if a % 1000 == 0 {
                (a / 1000).to_string()
            } else {
                format!("{a}m")
            };
        }
        let (base, suffixes): (i128, [&str; 6]) = if self.binary == Some(true) {
            (1024, ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
        } else {
            (1000, ["k", "M", "G", "T", "P", "E"])
        };
        let mut best = a.to_string();
        let mut unit = 1i128;
        for suffix in suffixes {
            unit *= base;
            if a % unit == 0 {
                best = format!("{}{suffix}", a / unit);
            } else {
                break;
            }
        }
        best
    }
}

/// What a pod requests and limits of `resource`: its containers' sum, at least any init
/// container's.
fn pod_total(pod: &Value, field: &str, resource: &str) -> Sum {
    let cpu = resource == "cpu";
    let of = |c: &Value| {
        let mut sum = Sum::default();
        if let Some(q) = strings(c.pointer(&format!("/resources/{field}"))).get(resource) {
            sum.add(q, cpu);
        }
        sum
    };
    let mut total = Sum::default();
    for c in arr(pod.pointer("/spec/containers")) {
        let one = of(c);
        total.amount += one.amount;
        total.binary = total.binary.or(one.binary);
    }
    for c in arr(pod.pointer("/spec/initContainers")) {
        total = total.max(of(c));
    }
    total
}

fn percent(part: &Sum, whole: &str, cpu: bool) -> i64 {
    let whole = match api::quantity::parse(whole) {
        Ok(q) if cpu => q.milli() as f64,
        Ok(q) => q.value().ceil(),
        Err(_) => 0.0,
    };
    if whole == 0.0 {
        0
    } else {
        (part.amount as f64 / whole * 100.0) as i64
    }
}

/// `Non-terminated Pods` and `Allocated resources` of node `n` with `pods` on it.
pub fn node_pods(w: &mut Text, n: &Value, pods: &[Value], now: Timestamp) {
    let mut allocatable = strings(n.pointer("/status/allocatable"));
    if allocatable.is_empty() {
        allocatable = strings(n.pointer("/status/capacity"));
    }
    let alloc = |r: &str| allocatable.get(r).cloned().unwrap_or_default();
    w.w(
        0,
        &format!("Non-terminated Pods:\t({} in total)\n", pods.len()),
    );
    w.w(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    w.w(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let hugepages: Vec<&str> = allocatable
        .keys()
        .filter(|k| k.starts_with("hugepages-"))
        .map(String::as_str)
        .collect();
    let mut resources = vec!["cpu", "memory", "ephemeral-storage"];
    resources.extend(&hugepages);
    let mut totals = vec![(Sum::default(), Sum::default()); resources.len()];
    for p in pods {
        let mut cells = Vec::new();
        for (i, r) in resources.iter().enumerate() {
            let cpu = *r == "cpu";
            let (req, lim) = (pod_total(p, "requests", r), pod_total(p, "limits", r));
            let (total_req, total_lim) = &mut totals[i];
            for (total, one) in [(total_req, req), (total_lim, lim)] {
                total.amount += one.amount;
                total.binary = total.binary.or(one.binary);
            }
            if i < 2 {
                for q in [req, lim] {
                    cells.push(format!(
                        "{} ({}%)",
                        q.text(cpu),
                        percent(&q, &alloc(r), cpu)
                    ));
                }
            }
        }
        w.w(
            1,
            &format!(
                "{}\t{}\t\t{}\t{}\n",
                s(p, "/metadata/namespace"),
                s(p, "/metadata/name"),
                cells.join("\t"),
                since(s(p, "/metadata/creationTimestamp"), now)
            ),
        );
    }
    w.w(
        0,
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    w.w(1, "Resource\tRequests\tLimits\n");
    w.w(1, "--------\t--------\t------\n");
    for (r, (req, lim)) in resources.iter().zip(&totals) {
        let cpu = *r == "cpu";
        w.w(
            1,
            &format!(
                "{r}\t{} ({}%)\t{} ({}%)\n",
                req.text(cpu),
                percent(req, &alloc(r), cpu),
                lim.text(cpu),
                percent(lim, &alloc(r), cpu)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_print_canonically() {
        let mut cpu = Sum::default();
        cpu.add("250m", true);
        cpu.add("0.75", true);
        assert_eq!(cpu.text(true), "1");
        let mut mem = Sum::default();
        mem.add("64Mi", false);
        mem.add("128Mi", false);
        assert_eq!(mem.text(false), "192Mi");
        let mut dec = Sum::default();
        dec.add("1500k", false);
        assert_eq!(dec.text(false), "1500k");
        assert_eq!(Sum::default().text(true), "0");
        assert_eq!(percent(&mem, "768Mi", false), 25);
    }
}
