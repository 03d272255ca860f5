//! The alert state machine, free of I/O: what one report or one tick does
//! to the state of each watched subject, and what the owner should be told.
//!
//! Two facts are kept per subject: the truth (is the rule firing) and the
//! owner's belief (were they told it fires, `told`). Every message exists
//! to make the belief match the truth. While a server is muted the truth
//! moves on and the belief stays; when the mute ends, [`catch_up`] tells
//! the difference once.

use serversan_protocol::Report;

use super::rules::{Hysteresis, Metric, Rule, Setting};

/// A report's collected_at may precede the previous one in a breaching run
/// by at most this much (or the rule's window if longer) for the run to go
/// on: after a long silence a single report is not evidence of a window.
pub const MAX_RUN_GAP_SECS: i64 = 600;

/// Filesystems that are full by design (read-only images), never alerted.
const ALWAYS_FULL: &[&str] = &["squashfs", "iso9660", "udf", "cramfs", "erofs"];

/// Longest mount point kept as a subject (longer ones are cut).
pub const MAX_TARGET_CHARS: usize = 200;

/// One watched thing on a server: a metric and, for disk, the mount point.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    pub metric: Metric,
    /// The mount point for disk; empty for the others.
    pub target: String,
}

impl Subject {
    pub fn of(metric: Metric) -> Self {
        Self {
            metric,
            target: String::new(),
        }
    }

    pub fn disk(mount_point: &str) -> Self {
        Self {
            metric: Metric::Disk,
            target: mount_point.chars().take(MAX_TARGET_CHARS).collect(),
        }
    }
}

/// The stored state of one subject.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Track {
    /// collected_at of the first report of the current run of breaching
    /// reports.
    pub breach_since: Option<i64>,
    /// collected_at of the last report seen (offline: its arrival).
    pub last_at: Option<i64>,
    /// Start of the incident: when the breaching run (or the silence) began.
    pub firing_since: Option<i64>,
    /// When the incident ended while the owner still believes it fires.
    pub cleared_at: Option<i64>,
    /// Latest value (offline: minutes of silence when it fired).
    pub value: f64,
    /// The threshold in force when it fired.
    pub threshold: f64,
    /// The owner was told it fires (and not yet that it stopped).
    pub told: bool,
    /// When the owner was last told it fires (for reminders).
    pub notified_at: Option<i64>,
}

impl Track {
    /// Whether the rule is firing now.
    pub fn firing(&self) -> bool {
        self.firing_since.is_some() && self.cleared_at.is_none()
    }

    /// Nothing worth storing: no breaching run, no incident, nothing told.
    pub fn is_idle(&self) -> bool {
        self.breach_since.is_none() && self.firing_since.is_none() && !self.told
    }

    fn end_incident(&mut self) {
        self.firing_since = None;
        self.cleared_at = None;
        self.told = false;
        self.notified_at = None;
    }
}

/// What a report or a tick did to a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Fired,
    Cleared,
}

/// The kind of line a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The rule started firing.
    Fired,
    /// It is still firing (a reminder, or news held back by a mute).
    Firing,
    /// It stopped firing.
    Recovered,
}

/// One line of a message to the owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub subject: Subject,
    pub kind: NoticeKind,
    /// The latest value; `None` when it is no longer reported.
    pub value: Option<f64>,
    pub threshold: f64,
    /// The rule's window, for "for 5m".
    pub for_secs: i64,
    /// Start of the incident.
    pub since: i64,
    /// End of the incident (recoveries).
    pub until: Option<i64>,
}

impl Notice {
    fn new(
        subject: &Subject,
        kind: NoticeKind,
        track: &Track,
        value: Option<f64>,
        for_secs: i64,
    ) -> Self {
        Self {
            subject: subject.clone(),
            kind,
            value,
            threshold: track.threshold,
            for_secs,
            since: track.firing_since.unwrap_or_default(),
            until: track.cleared_at,
        }
    }
}

/// Feeds one report's value (`None`: the report does not carry it, such as
/// an unmounted filesystem) to a metric rule, at the report's collected_at.
pub fn observe(
    metric: Metric,
    track: &mut Track,
    rule: Setting,
    value: Option<f64>,
    at: i64,
    hysteresis: &Hysteresis,
) -> Transition {
    let Some(rule) = rule else {
        // Turned off: forget quietly; the owner chose not to hear of it.
        *track = Track::default();
        return Transition::None;
    };
    let breach = value.is_some_and(|v| v >= rule.threshold);
    if breach {
        let gap_limit = rule.for_secs.max(MAX_RUN_GAP_SECS);
        let run_broken = track.last_at.is_none_or(|last| at - last > gap_limit);
        if track.breach_since.is_none() || run_broken {
            track.breach_since = Some(at);
        }
    } else {
        track.breach_since = None;
    }
    track.last_at = Some(at);
    if let Some(v) = value {
        track.value = v;
    }
    if track.firing() {
        let clears = value.is_none_or(|v| v < hysteresis.clear_level(metric, rule.threshold));
        if clears {
            track.cleared_at = Some(at);
            return Transition::Cleared;
        }
    } else if let Some(start) = track.breach_since
        && at - start >= rule.for_secs
    {
        fire(track, start, rule);
        return Transition::Fired;
    }
    Transition::None
}

fn fire(track: &mut Track, since: i64, rule: Rule) {
    track.firing_since = Some(since);
    track.cleared_at = None;
    track.threshold = rule.threshold;
}

/// Checks the silence since the last report against the offline rule.
pub fn observe_silence(
    track: &mut Track,
    rule: Setting,
    last_report_at: i64,
    now: i64,
) -> Transition {
    let Some(rule) = rule else {
        *track = Track::default();
        return Transition::None;
    };
    let silent_secs = now - last_report_at;
    if !track.firing() && silent_secs as f64 >= rule.threshold * 60.0 {
        track.value = silent_secs as f64 / 60.0;
        track.last_at = Some(last_report_at);
        fire(track, last_report_at, rule);
        return Transition::Fired;
    }
    Transition::None
}

/// A report arrived at `now`: a firing offline rule clears.
pub fn report_arrived(track: &mut Track, now: i64) -> Transition {
    track.last_at = Some(now);
    if track.firing() {
        track.cleared_at = Some(now);
        return Transition::Cleared;
    }
    Transition::None
}

/// Decides what the owner hears of a transition, and updates the belief.
/// `value` is what the report said (`None`: nothing about this subject).
pub fn settle(
    subject: &Subject,
    track: &mut Track,
    transition: Transition,
    value: Option<f64>,
    rule_window: i64,
    muted: bool,
    now: i64,
) -> Option<Notice> {
    match transition {
        Transition::None => None,
        Transition::Fired if muted || track.told => None,
        Transition::Fired => {
            track.told = true;
            track.notified_at = Some(now);
            Some(Notice::new(
                subject,
                NoticeKind::Fired,
                track,
                value,
                rule_window,
            ))
        }
        // Held back until the mute ends.
        Transition::Cleared if muted && track.told => None,
        Transition::Cleared => {
            let notice = track
                .told
                .then(|| Notice::new(subject, NoticeKind::Recovered, track, value, rule_window));
            track.end_incident();
            notice
        }
    }
}

/// When a mute ends: what changed while it lasted, told once.
pub fn catch_up(subject: &Subject, track: &mut Track, now: i64) -> Option<Notice> {
    if track.firing() && !track.told {
        track.told = true;
        track.notified_at = Some(now);
        Some(Notice::new(
            subject,
            NoticeKind::Firing,
            track,
            Some(track.value),
            0,
        ))
    } else if !track.firing() && track.told {
        let notice = Notice::new(subject, NoticeKind::Recovered, track, Some(track.value), 0);
        track.end_incident();
        Some(notice)
    } else {
        None
    }
}

/// A reminder is due when the rule fires, the owner knows, and the last
/// word was `every_secs` ago (0 turns reminders off).
pub fn remind(subject: &Subject, track: &mut Track, every_secs: i64, now: i64) -> Option<Notice> {
    let due = every_secs > 0
        && track.firing()
        && track.told
        && track.notified_at.is_none_or(|t| now - t >= every_secs);
    if !due {
        return None;
    }
    track.notified_at = Some(now);
    Some(Notice::new(
        subject,
        NoticeKind::Firing,
        track,
        Some(track.value),
        0,
    ))
}

/// A process named in a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub name: String,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
}

/// The figures of one report that rules look at.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    pub collected_at: i64,
    pub cpu: f64,
    pub mem: Option<f64>,
    pub swap: Option<f64>,
    /// Load average (1 min) per logical core.
    pub load: Option<f64>,
    pub cores: u32,
    /// Usage percent of each filesystem, by mount point.
    pub disks: Vec<(String, f64)>,
    pub top_cpu: Vec<Process>,
    pub top_memory: Vec<Process>,
}

/// Most processes named per list in a message.
const TOP_PROCESSES: usize = 5;

impl Sample {
    /// The figures of a verified report.
    pub fn from_report(report: &Report) -> Self {
        let percent = |used: u64, total: u64| {
            (total > 0).then(|| (used as f64 / total as f64 * 100.0).min(100.0))
        };
        let cores = report.cpu.logical_cores.max(1);
        let disks = report
            .filesystems
            .iter()
            .filter(|f| f.total > 0 && !ALWAYS_FULL.contains(&f.fs_type.as_str()))
            .filter_map(|f| Some((f.mount_point.clone(), percent(f.used, f.total)?)))
            .collect();
        let processes = |list: &[serversan_protocol::report::ProcessInfo]| {
            list.iter()
                .take(TOP_PROCESSES)
                .map(|p| Process {
                    name: p.name.clone(),
                    cpu_percent: p.cpu_percent,
                    memory_bytes: p.memory_bytes,
                })
                .collect()
        };
        Self {
            collected_at: report.collected_at,
            cpu: report.cpu.usage_percent,
            mem: percent(report.memory.used, report.memory.total),
            swap: percent(report.swap.used, report.swap.total),
            load: report.load.as_ref().map(|l| l.one / f64::from(cores)),
            cores,
            disks,
            top_cpu: processes(&report.top_cpu),
            top_memory: processes(&report.top_memory),
        }
    }

    /// The value of a single-subject metric.
    pub fn value(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::Cpu => Some(self.cpu),
            Metric::Mem => self.mem,
            Metric::Swap => self.swap,
            Metric::Load => self.load,
            Metric::Disk | Metric::Offline => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Hysteresis = Hysteresis {
        percent_points: 5.0,
        load_fraction: 0.1,
    };

    fn rule(threshold: f64, minutes: i64) -> Setting {
        Some(Rule {
            threshold,
            for_secs: minutes * 60,
        })
    }

    /// Feeds values one minute apart from t=0; returns the transitions.
    fn feed(track: &mut Track, setting: Setting, values: &[f64]) -> Vec<Transition> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| observe(Metric::Cpu, track, setting, Some(*v), i as i64 * 60, &H))
            .collect()
    }

    #[test]
    fn fires_only_when_every_report_in_the_window_breaches() {
        let mut t = Track::default();
        let r = feed(
            &mut t,
            rule(90.0, 3),
            &[95.0, 95.0, 80.0, 95.0, 95.0, 95.0, 95.0],
        );
        use Transition::*;
        assert_eq!(r, vec![None, None, None, None, None, None, Fired]);
        assert_eq!(t.firing_since, Some(180));
    }

    #[test]
    fn zero_minutes_fires_on_the_first_breach() {
        let mut t = Track::default();
        assert_eq!(
            feed(&mut t, rule(90.0, 0), &[91.0]),
            vec![Transition::Fired]
        );
    }

    #[test]
    fn hysteresis_keeps_a_hovering_value_from_flapping() {
        let mut t = Track::default();
        let r = feed(
            &mut t,
            rule(90.0, 0),
            &[91.0, 89.0, 91.0, 86.0, 90.5, 84.9, 85.0],
        );
        use Transition::*;
        assert_eq!(r, vec![Fired, None, None, None, None, Cleared, None]);
    }

    #[test]
    fn a_long_gap_restarts_the_window() {
        let mut t = Track::default();
        let s = rule(90.0, 5);
        assert_eq!(
            observe(Metric::Cpu, &mut t, s, Some(95.0), 0, &H),
            Transition::None
        );
        // Silent for an hour: one breaching report is not five minutes.
        assert_eq!(
            observe(Metric::Cpu, &mut t, s, Some(95.0), 3600, &H),
            Transition::None
        );
        assert_eq!(t.breach_since, Some(3600));
        assert_eq!(
            observe(Metric::Cpu, &mut t, s, Some(95.0), 3900, &H),
            Transition::Fired
        );
    }

    #[test]
    fn a_vanished_subject_clears() {
        let mut t = Track::default();
        let s = rule(90.0, 0);
        assert_eq!(
            observe(Metric::Disk, &mut t, s, Some(99.0), 0, &H),
            Transition::Fired
        );
        assert_eq!(
            observe(Metric::Disk, &mut t, s, None, 60, &H),
            Transition::Cleared
        );
    }

    #[test]
    fn turning_a_rule_off_forgets_quietly() {
        let mut t = Track::default();
        observe(Metric::Cpu, &mut t, rule(90.0, 0), Some(99.0), 0, &H);
        assert_eq!(
            observe(Metric::Cpu, &mut t, None, Some(99.0), 60, &H),
            Transition::None
        );
        assert!(t.is_idle());
    }

    #[test]
    fn offline_fires_after_the_silence_and_clears_on_a_report() {
        let mut t = Track::default();
        let s = rule(3.0, 0);
        assert_eq!(
            observe_silence(&mut t, s, 1000, 1000 + 179),
            Transition::None
        );
        assert_eq!(
            observe_silence(&mut t, s, 1000, 1000 + 180),
            Transition::Fired
        );
        assert_eq!(t.firing_since, Some(1000));
        assert_eq!(
            observe_silence(&mut t, s, 1000, 1000 + 600),
            Transition::None
        );
        assert_eq!(report_arrived(&mut t, 2000), Transition::Cleared);
    }

    /// One report through the state machine and the notification rules.
    fn step(track: &mut Track, value: f64, at: i64, muted: bool) -> Option<Notice> {
        let subject = Subject::of(Metric::Cpu);
        let tr = observe(Metric::Cpu, track, rule(90.0, 0), Some(value), at, &H);
        settle(&subject, track, tr, Some(value), 0, muted, at)
    }

    #[test]
    fn owner_hears_fire_and_recovery_once_each() {
        let mut t = Track::default();
        let n = step(&mut t, 95.0, 0, false).expect("fire notice");
        assert_eq!(n.kind, NoticeKind::Fired);
        assert!(t.told);
        assert_eq!(step(&mut t, 96.0, 30, false), None);
        let n = step(&mut t, 10.0, 60, false).expect("recovery notice");
        assert_eq!(
            (n.kind, n.since, n.until),
            (NoticeKind::Recovered, 0, Some(60))
        );
        assert_eq!(n.value, Some(10.0));
        assert!(t.is_idle());
    }

    #[test]
    fn a_mute_holds_news_back_and_its_end_tells_the_difference() {
        let subject = Subject::of(Metric::Cpu);
        // Told it fires, then it recovers during the mute.
        let mut told = Track::default();
        assert!(step(&mut told, 95.0, 0, false).is_some());
        assert_eq!(step(&mut told, 5.0, 60, true), None);
        assert!(told.told && !told.firing());
        let n = catch_up(&subject, &mut told, 120).expect("recovered during the mute");
        assert_eq!(n.kind, NoticeKind::Recovered);
        assert!(told.is_idle());
        // Fires during the mute: told once when it ends, then silence.
        let mut untold = Track::default();
        assert_eq!(step(&mut untold, 95.0, 0, true), None);
        assert_eq!(
            catch_up(&subject, &mut untold, 60).map(|n| n.kind),
            Some(NoticeKind::Firing)
        );
        assert_eq!(catch_up(&subject, &mut untold, 61), None);
        // Fires and recovers within the mute: nothing to say.
        let mut quiet = Track::default();
        assert_eq!(step(&mut quiet, 95.0, 0, true), None);
        assert_eq!(step(&mut quiet, 5.0, 60, true), None);
        assert!(quiet.is_idle());
        assert_eq!(catch_up(&subject, &mut quiet, 120), None);
    }

    #[test]
    fn reminders_come_at_the_interval_and_never_when_off() {
        let subject = Subject::of(Metric::Cpu);
        let mut t = Track::default();
        assert!(step(&mut t, 95.0, 0, false).is_some());
        assert_eq!(remind(&subject, &mut t, 3600, 3599), None);
        assert!(remind(&subject, &mut t, 3600, 3600).is_some());
        assert_eq!(remind(&subject, &mut t, 3600, 3700), None);
        assert_eq!(remind(&subject, &mut t, 0, 999_999), None);
    }
}
