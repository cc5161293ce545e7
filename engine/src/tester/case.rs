//! The test-case file format (`tests/*.yaml` in a bundle).
//!
//! ```yaml
//! policy: no-latest-tag            # default policy of the cases below (optional)
//! cases:
//!   - name: latest tag is denied
//!     object: { apiVersion: v1, kind: Pod, ... }   # or object_file: objects/pod.yaml
//!     operation: UPDATE            # optional: absent means scan mode
//!     old_object: {...}            # or old_object_file
//!     namespace: {...}             # the Namespace object (or namespace_file)
//!     inventory: [ {...} ]         # other objects (or inventory_files)
//!     parameters: { ... }          # overrides of the policy's parameters
//!     user_info: { username: alice, groups: [dev] }
//!     expect:
//!       allowed: false             # the named policy denies (or, without policy, the bundle)
//!       violations: 1              # number of findings of the policy
//!       message: ":latest"         # a regex some finding's message must match
//!       warnings: 0
//!       error: "time budget"       # the policy must fail to evaluate with a matching message
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A test file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Policy the cases are about, unless a case names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The cases.
    pub cases: Vec<Case>,
}

/// One case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows (unique within the file).
    pub name: String,
    /// Policy id (overrides the file's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The object, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
    /// The object, from a file relative to the test file (`document` picks one of several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_file: Option<String>,
    /// Which document of `object_file` (1-based) when it holds several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// Admission operation; absent means scan mode (as `palisade scan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The previous object (UPDATE, DELETE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_object: Option<Value>,
    /// The previous object, from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_object_file: Option<String>,
    /// The Namespace the object lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Value>,
    /// The Namespace, from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_file: Option<String>,
    /// Other objects (`data.inventory`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<Value>,
    /// Other objects, from files (every document of each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory_files: Vec<String>,
    /// Parameter overrides for the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// `userInfo` of the admission request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<Value>,
    /// What must hold.
    pub expect: Expect,
}

/// Expectations; every one that is set must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Whether the object is allowed (by the case's policy, or by the bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    /// Exact number of findings (deny, audit and warn) of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violations: Option<usize>,
    /// Regex some finding's message must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Exact number of warnings of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<usize>,
    /// Regex the policy's evaluation error must match (the policy must fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Exact number of the policy's findings that exceptions waived (`palisade test
    /// --exceptions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waived: Option<usize>,
}

impl Expect {
    /// A case that expects the policy to find something (a "failing" case).
    pub fn expects_findings(&self) -> bool {
        self.allowed == Some(false)
            || self.violations.is_some_and(|n| n > 0)
            || self.warnings.is_some_and(|n| n > 0)
            || self.message.is_some()
    }

    /// A case that expects the policy to find nothing (a "passing" case).
    pub fn expects_clean(&self) -> bool {
        self.error.is_none() && !self.expects_findings() && (self.allowed == Some(true) || self.violations == Some(0))
    }
}
