//! Values of `enum oom_constraint`, for decoding an event's scope.

use super::btf::Btf;

/// Values of `enum oom_constraint`, for decoding the event's scope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConstraintValues {
    pub none: Option<i64>,
    pub cpuset: Option<i64>,
    pub memory_policy: Option<i64>,
    pub memcg: Option<i64>,
}

impl ConstraintValues {
    pub fn from_btf(btf: &Btf) -> Self {
        Self {
            none: btf.enum_value("CONSTRAINT_NONE"),
            cpuset: btf.enum_value("CONSTRAINT_CPUSET"),
            memory_policy: btf.enum_value("CONSTRAINT_MEMORY_POLICY"),
            memcg: btf.enum_value("CONSTRAINT_MEMCG"),
        }
    }

    /// The values every kernel since 5.0 uses, for when BTF is missing.
    pub fn historical() -> Self {
        Self { none: Some(0), cpuset: Some(1), memory_policy: Some(2), memcg: Some(3) }
    }
}
