//! The target search (the specification's 5.7): the delegations walked lazily, pre-order and
//! depth first in the order listed, only through the roles that cover the name, ending at a
//! terminating delegation and after `max_delegations` roles.

use std::collections::BTreeSet;

use super::{FoundTarget, Job, Output, Updater};
use crate::tuf::error::UpdateError;
use crate::tuf::paths;

/// A search under way: the name, the (role, delegator) pairs still to visit (the next on
/// top), and those visited.
#[derive(Debug, Clone)]
pub(super) struct Walk {
    pub(super) name: String,
    pub(super) stack: Vec<(String, String)>,
    pub(super) visited: BTreeSet<(String, String)>,
}

impl Updater {
    pub(super) fn start_walk(&mut self, name: String) {
        self.walk = Some(Walk {
            name,
            stack: vec![("targets".into(), "root".into())],
            visited: BTreeSet::new(),
        });
        self.walk_on();
    }

    /// Goes on with the search until it needs a role loaded or concludes.
    pub(super) fn walk_on(&mut self) {
        loop {
            let Some(walk) = &mut self.walk else {
                return;
            };
            let next = if walk.visited.len() > self.config.max_delegations {
                None
            } else {
                walk.stack.pop()
            };
            let Some((role, parent)) = next else {
                let name = walk.name.clone();
                self.fail(UpdateError::TargetNotFound { name });
                return;
            };
            if walk.visited.contains(&(role.clone(), parent.clone())) {
                continue;
            }
            if !self.targets.contains_key(&role) {
                self.load_role(role, parent);
                return;
            }
            if !self.examine(&role, &parent) {
                return;
            }
        }
    }

    /// Looks for the target in a trusted role; pushes the roles to visit next. Returns
    /// whether the search goes on.
    pub(super) fn examine(&mut self, role: &str, parent: &str) -> bool {
        let (Some(walk), Some(held)) = (&mut self.walk, self.targets.get(role)) else {
            return false;
        };
        if let Some(target) = held.meta.targets.get(&walk.name) {
            let hash = self
                .root
                .meta
                .consistent_snapshot
                .then(|| target.hashes.for_url())
                .flatten();
            let found = FoundTarget {
                url_path: paths::target_url_path(&target.name, hash),
                target: target.clone(),
                role: role.into(),
            };
            self.walk = None;
            self.job = Job::None;
            self.out.push_back(Output::Found(found));
            return false;
        }
        walk.visited.insert((role.into(), parent.into()));
        if let Some(d) = &held.meta.delegations {
            let mut children = Vec::new();
            for (child, terminating) in d.roles_for(&walk.name) {
                children.push((child, role.to_string()));
                if terminating {
                    walk.stack.clear();
                    break;
                }
            }
            children.reverse();
            walk.stack.extend(children);
        }
        true
    }
}
