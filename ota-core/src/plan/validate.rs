//! The rules a rollout request must keep, each fault at its field.

use super::{FailureKind, HaltAction, MAX_WAVES, RolloutSpec, Target};
use crate::json::{self, Fault, Validate, fault, field, index};

fn percent(faults: &mut Vec<Fault>, path: String, v: f64, zero_ok: bool) {
    let ok = v.is_finite() && v <= 100.0 && (v > 0.0 || (zero_ok && v == 0.0));
    if !ok {
        let range = if zero_ok {
            "0 to 100"
        } else {
            "more than 0, at most 100"
        };
        fault(faults, path, format!("a percentage is {range}, found {v}"));
    }
}

impl Validate for RolloutSpec {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        match (&self.target, &self.target_profile_id) {
            (None, None) => fault(
                faults,
                field(path, "target"),
                "a rollout needs a target (or target_profile_id)",
            ),
            (Some(_), Some(_)) => fault(
                faults,
                field(path, "target"),
                "give either target or target_profile_id, not both",
            ),
            _ => {}
        }
        if let Some(Target::Group { devices }) = &self.target {
            let p = field(&field(path, "target"), "devices");
            if devices.is_empty() {
                fault(faults, p.clone(), "a group needs at least one device");
            }
            json::duplicates(faults, &p, None, devices);
        }
        percent(
            faults,
            field(path, "canary_percent"),
            self.canary_percent,
            false,
        );
        percent(
            faults,
            field(path, "failure_threshold_percent"),
            self.failure_threshold_percent,
            true,
        );
        let mut last = self.canary_percent;
        for (i, w) in self.waves.iter().enumerate() {
            let p = index(&field(path, "waves"), i);
            percent(faults, field(&p, "percent"), w.percent, false);
            percent(
                faults,
                field(&p, "success_gate_percent"),
                w.success_gate_percent,
                true,
            );
            if w.percent <= last {
                fault(
                    faults,
                    field(&p, "percent"),
                    format!(
                        "waves widen: {} is not above the {} before it",
                        w.percent, last
                    ),
                );
            }
            if w.max_devices == Some(0) {
                fault(
                    faults,
                    field(&p, "max_devices"),
                    "must be at least 1 when given",
                );
            }
            last = w.percent;
        }
        if self.waves.len() + 2 > MAX_WAVES {
            fault(
                faults,
                field(path, "waves"),
                format!("at most {} waves after the canary", MAX_WAVES - 2),
            );
        }
        if !self.waves.is_empty() && last < 100.0 {
            fault(
                faults,
                field(path, "waves"),
                format!("the last wave must reach 100 percent, found {last}"),
            );
        }
        let h = field(path, "halt");
        if self.halt.min_terminal == 0 {
            fault(faults, field(&h, "min_terminal"), "must be at least 1");
        }
        json::duplicates(
            faults,
            &field(&h, "count_as_failure"),
            None,
            self.halt
                .count_as_failure
                .iter()
                .map(|k| KindName(*k))
                .collect::<Vec<_>>()
                .iter(),
        );
        if self.halt.action == HaltAction::Rollback && self.rollback_package_id.is_none() {
            fault(
                faults,
                field(&h, "action"),
                "a rollback halt action needs rollback_package_id",
            );
        }
        if self.rollback_package_id.as_ref() == Some(&self.package_id) {
            fault(
                faults,
                field(path, "rollback_package_id"),
                "the rollback package is the package itself",
            );
        }
        let t = field(path, "timeouts");
        for (name, v) in [
            ("ack_ms", self.timeouts.ack_ms),
            ("in_progress_ms", self.timeouts.in_progress_ms),
            ("offline_expiry_ms", self.timeouts.offline_expiry_ms),
        ] {
            if v == 0 {
                fault(faults, field(&t, name), "a timeout must be more than 0");
            }
        }
        let pc = field(path, "pacing");
        if self.pacing.max_in_flight == Some(0) {
            fault(
                faults,
                field(&pc, "max_in_flight"),
                "must be at least 1 when given",
            );
        }
        if self.pacing.per_minute == Some(0) {
            fault(
                faults,
                field(&pc, "per_minute"),
                "must be at least 1 when given",
            );
        }
        if let Some(r) = self.pacing.ramp {
            if self.pacing.per_minute.is_none() {
                fault(
                    faults,
                    field(&pc, "ramp"),
                    "a ramp needs per_minute to ramp up to",
                );
            }
            if r.initial_per_minute == 0 || r.double_every_ms == 0 {
                fault(
                    faults,
                    field(&pc, "ramp"),
                    "initial_per_minute and double_every_ms must be more than 0",
                );
            }
        }
        let w = field(path, "window");
        if let (Some(s), Some(e)) = (self.window.start_at, self.window.end_at)
            && e <= s
        {
            fault(
                faults,
                field(&w, "end_at"),
                format!("the window ends ({e}) before it starts ({s})"),
            );
        }
        for (i, m) in self.window.maintenance.iter().enumerate() {
            let p = index(&field(&w, "maintenance"), i);
            if m.days.is_empty() {
                fault(faults, field(&p, "days"), "at least one day is required");
            }
            if m.start_minute().is_none() {
                fault(
                    faults,
                    field(&p, "start"),
                    format!("{:?} is not HH:MM", m.start),
                );
            }
            if !(1..=10_080).contains(&m.duration_minutes) {
                fault(faults, field(&p, "duration_minutes"), "must be 1 to 10080");
            }
            if !(-840..=840).contains(&m.utc_offset_minutes) {
                fault(
                    faults,
                    field(&p, "utc_offset_minutes"),
                    "must be -840 to 840",
                );
            }
        }
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct KindName(FailureKind);

impl std::fmt::Display for KindName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(json::to_string(&self.0).trim_matches('"'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;

    #[test]
    fn faults_name_their_fields() {
        let e = RolloutSpec::from_json(
            br#"{"package_id":"pkg_2a0f","canary_percent":0,"waves":[{"percent":3},{"percent":50}],
                "halt":{"action":"rollback","min_terminal":0},"pacing":{"max_in_flight":0,"ramp":{"initial_per_minute":1,"double_every_ms":1}},
                "window":{"start_at":10,"end_at":5,"maintenance":[{"days":[],"start":"25:00","duration_minutes":0}]}}"#,
            &Limits::DEFAULT,
        )
        .unwrap_err();
        let paths: Vec<String> = e.faults().into_iter().map(|f| f.path).collect();
        for p in [
            "target",
            "canary_percent",
            "waves",
            "halt.min_terminal",
            "halt.action",
            "pacing.max_in_flight",
            "pacing.ramp",
            "window.end_at",
            "window.maintenance[0].days",
            "window.maintenance[0].start",
            "window.maintenance[0].duration_minutes",
        ] {
            assert!(paths.iter().any(|x| x == p), "no fault at {p}: {paths:?}");
        }
    }
}
