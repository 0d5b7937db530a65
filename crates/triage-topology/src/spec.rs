//! The catalog entry for one service, and what can be wrong with a catalog.

use std::fmt;

/// One service of the catalog, as validated configuration hands it over.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ServiceSpec {
    /// Unique name; alerts name it through a service label.
    pub name: String,
    /// Other names alerts may use for this service (a `job` or `container`
    /// value that differs from the catalog name).
    pub aliases: Vec<String>,
    /// Services this one calls.
    pub depends_on: Vec<String>,
    /// Criticality, 1 (most critical) upwards.
    pub tier: u8,
    /// Whether users reach this service directly.
    pub user_facing: bool,
    /// Owning team, named as a responder.
    pub owner: Option<String>,
    /// Runbook address.
    pub runbook: Option<String>,
}

/// A defect in the catalog. `index` is the service's position in the
/// `services` list, so messages can point at `services[index]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyError {
    /// A service has an empty name.
    EmptyName {
        /// Position in the list.
        index: usize,
    },
    /// Two services (or a service and an alias) share a name.
    DuplicateName {
        /// Position of the later entry.
        index: usize,
        /// The repeated name.
        name: String,
        /// Position of the entry that had it first.
        first: usize,
    },
    /// `depends_on` names a service that is not in the catalog.
    UnknownDependency {
        /// Position of the depending service.
        index: usize,
        /// Its name.
        service: String,
        /// Position within its `depends_on`.
        position: usize,
        /// The unknown name.
        dependency: String,
    },
    /// A service lists itself in `depends_on`.
    SelfDependency {
        /// Position in the list.
        index: usize,
        /// Its name.
        service: String,
    },
}

impl TopologyError {
    /// The configuration path the error is about, e.g.
    /// `services[3].depends_on[1]`.
    pub fn path(&self) -> String {
        match self {
            TopologyError::EmptyName { index } => format!("services[{index}].name"),
            TopologyError::DuplicateName { index, .. } => format!("services[{index}]"),
            TopologyError::UnknownDependency { index, position, .. } => {
                format!("services[{index}].depends_on[{position}]")
            }
            TopologyError::SelfDependency { index, .. } => format!("services[{index}].depends_on"),
        }
    }
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::EmptyName { .. } => write!(f, "service name is empty"),
            TopologyError::DuplicateName { name, first, .. } => {
                write!(f, "name {name:?} is already used by services[{first}]")
            }
            TopologyError::UnknownDependency { service, dependency, .. } => {
                write!(f, "{service:?} depends on {dependency:?}, which is not in the catalog")
            }
            TopologyError::SelfDependency { service, .. } => {
                write!(f, "{service:?} depends on itself")
            }
        }
    }
}

impl std::error::Error for TopologyError {}
