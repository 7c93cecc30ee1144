//! Property-test strategies shared by the parsers' tests.

use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value up to `depth` levels, with object keys drawn from `key`; every string carries the
/// marker `Zq`, which no error text contains, so a test can prove values are never echoed.
pub(crate) fn json(
    depth: u32,
    size: u32,
    branch: u32,
    key: &'static str,
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(|s| Value::String(format!("Zq{s}"))),
    ];
    let width = branch as usize;
    leaf.prop_recursive(depth, size, branch, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..width).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..width)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
