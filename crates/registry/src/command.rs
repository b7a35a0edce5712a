//! Typed registry commands: what a front end (the admin JSON API, the console) hands the
//! registry after parsing its own input. Every field is an already-validated value; the
//! registry checks only what needs the stored state (uniqueness, existence, rights).

use crate::types::{Description, Name};

/// Create a project.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// Unique name.
    pub name: Name,
    /// Free text.
    pub description: Description,
}

/// Change a project: each field given replaces the stored one (JSON Merge Patch semantics
/// at the edge).
#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    /// New name.
    pub name: Option<Name>,
    /// New description.
    pub description: Option<Description>,
}

impl ProjectPatch {
    /// The field names this patch changes, for the audit log.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.name.is_some() {
            out.push("name");
        }
        if self.description.is_some() {
            out.push("description");
        }
        out
    }
}
