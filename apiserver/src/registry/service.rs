//! Services: a cluster IP and node ports allocated on create (and on an update that adds
//! ports or changes the type), values the client left out of an update carried over, and the
//! reservations freed with the Service.

use std::collections::HashSet;

use futures::future::BoxFuture;
use serde_json::Value;

use super::{Strategy, StrategyError};
use crate::{
    services::{patch_allocated_values, Allocator, Plan},
    state::AppState,
    storage::Storage,
};

/// The strategy of `services`.
pub struct Service;

impl Strategy for Service {
    fn prepare_for_update(&self, sub: Option<&str>, new: &mut Value, old: &Value) {
        if sub.is_none() {
            patch_allocated_values(new, old);
        }
    }

    fn allocate<'a>(
        &'a self,
        state: &'a AppState,
        obj: &'a mut Value,
        old: Option<&'a Value>,
    ) -> BoxFuture<'a, Result<Plan, StrategyError>> {
        Box::pin(async move {
            let owner = owner_of(obj);
            let plan = match old {
                None => {
                    let (ips, ports) = taken(&state.storage, true).await?;
                    state.allocator.plan_create(obj, &owner, &ips, &ports)?
                }
                Some(old) => {
                    let (_, ports) = taken(&state.storage, false).await?;
                    state.allocator.plan_update(obj, old, &owner, &ports)?
                }
            };
            Ok(plan)
        })
    }

    fn released_on_delete(&self, obj: &Value) -> Vec<String> {
        Allocator::held_by(obj)
    }
}

/// The cluster IPs (when `with_ips`) and node ports reserved now.
async fn taken(
    storage: &Storage,
    with_ips: bool,
) -> Result<(HashSet<String>, HashSet<i64>), StrategyError> {
    let ips = if with_ips {
        storage
            .keys(Allocator::ip_prefix())
            .await?
            .iter()
            .filter_map(|k| k.strip_prefix(Allocator::ip_prefix()).map(str::to_string))
            .collect()
    } else {
        HashSet::new()
    };
    let ports = storage
        .keys(Allocator::port_prefix())
        .await?
        .iter()
        .filter_map(|k| {
            k.strip_prefix(Allocator::port_prefix())
                .and_then(|p| p.parse().ok())
        })
        .collect();
    Ok((ips, ports))
}

/// `namespace/name`: the owner a reservation records.
fn owner_of(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}
