//! What each alert event does to one server's state, as pure functions over
//! the state read in [`super::store::in_server_tx`]: the new state of every
//! subject that changed and, when the owner should hear of it, one message.

use std::collections::BTreeMap;

use super::eval::{self, Notice, Sample, Subject, Track, Transition};
use super::message::compose;
use super::rules::{Hysteresis, Metric};
use super::store::{Plan, ServerCtx};

/// Collects changed subjects and notices while a plan is made.
struct Changes<'a> {
    ctx: &'a ServerCtx,
    tracks: BTreeMap<Subject, Track>,
    changed: Vec<(Subject, Track)>,
    notices: Vec<Notice>,
    now: i64,
}

impl<'a> Changes<'a> {
    fn new(ctx: &'a ServerCtx, tracks: BTreeMap<Subject, Track>, now: i64) -> Self {
        Self {
            ctx,
            tracks,
            changed: Vec::new(),
            notices: Vec::new(),
            now,
        }
    }

    /// Applies `step` to the subject's state (a fresh one if none is
    /// stored), settles what the owner hears, and records the change.
    fn update(
        &mut self,
        subject: Subject,
        value: Option<f64>,
        step: impl FnOnce(&mut Track) -> Transition,
    ) {
        let before = self.tracks.get(&subject);
        let mut track = before.cloned().unwrap_or_default();
        let transition = step(&mut track);
        let window = self
            .ctx
            .rules
            .effective(subject.metric)
            .map_or(0, |r| r.for_secs);
        if let Some(notice) = eval::settle(
            &subject,
            &mut track,
            transition,
            value,
            window,
            self.ctx.quiet,
            self.now,
        ) {
            self.notices.push(notice);
        }
        if before != Some(&track) && !(before.is_none() && track.is_idle()) {
            self.changed.push((subject, track));
        }
    }

    /// Applies `tell` to every stored subject (reminders, catching up).
    fn tell_each(&mut self, tell: impl Fn(&Subject, &mut Track) -> Option<Notice>) {
        for (subject, before) in &self.tracks {
            let mut track = before.clone();
            if let Some(notice) = tell(subject, &mut track) {
                self.notices.push(notice);
            }
            if &track != before {
                self.changed.push((subject.clone(), track));
            }
        }
    }

    fn finish<T>(self, sample: Option<&Sample>, value: T) -> Plan<T> {
        let message =
            (!self.notices.is_empty()).then(|| compose(&self.ctx.name, &self.notices, sample));
        Plan {
            changed: self.changed,
            message,
            value,
        }
    }
}

/// A report arrived at `now`; `true` when a message is queued. A stale one (`fresh` false, from a spool
/// flushed after an outage) only proves the server is alive.
pub(super) fn report(
    ctx: &ServerCtx,
    tracks: BTreeMap<Subject, Track>,
    sample: &Sample,
    fresh: bool,
    hysteresis: &Hysteresis,
    now: i64,
) -> Plan<bool> {
    let mut c = Changes::new(ctx, tracks, now);
    let offline = Subject::of(Metric::Offline);
    if c.tracks.contains_key(&offline) {
        if ctx.rules.effective(Metric::Offline).is_some() {
            c.update(offline, None, |t| eval::report_arrived(t, now));
        } else {
            c.update(offline, None, |t| eval::observe_silence(t, None, now, now));
        }
    }
    if fresh {
        let at = sample.collected_at;
        for metric in [Metric::Cpu, Metric::Mem, Metric::Swap, Metric::Load] {
            let value = sample.value(metric);
            observe(&mut c, Subject::of(metric), value, at, hysteresis);
        }
        let mut disks: BTreeMap<Subject, Option<f64>> = c
            .tracks
            .keys()
            .filter(|s| s.metric == Metric::Disk)
            .map(|s| (s.clone(), None))
            .collect();
        for (mount, percent) in &sample.disks {
            disks.insert(Subject::disk(mount), Some(*percent));
        }
        for (subject, value) in disks {
            observe(&mut c, subject, value, at, hysteresis);
        }
    }
    let queued = !c.notices.is_empty();
    c.finish(Some(sample), queued)
}

/// Feeds one value to a metric rule; subjects with no stored state and no
/// breach are skipped so a healthy server stores nothing per report.
fn observe(
    c: &mut Changes<'_>,
    subject: Subject,
    value: Option<f64>,
    at: i64,
    hysteresis: &Hysteresis,
) {
    let rule = c.ctx.rules.effective(subject.metric);
    let breaching = matches!((rule, value), (Some(r), Some(v)) if v >= r.threshold);
    if !breaching && !c.tracks.contains_key(&subject) {
        return;
    }
    let metric = subject.metric;
    c.update(subject, value, |t| {
        eval::observe(metric, t, rule, value, at, hysteresis)
    });
}

/// The scheduler found the server silent; `true` when offline fired.
pub(super) fn silence(ctx: &ServerCtx, tracks: BTreeMap<Subject, Track>, now: i64) -> Plan<bool> {
    let mut c = Changes::new(ctx, tracks, now);
    let mut fired = false;
    if let Some(last) = ctx.last_report_at {
        let rule = ctx.rules.effective(Metric::Offline);
        c.update(Subject::of(Metric::Offline), None, |t| {
            let transition = eval::observe_silence(t, rule, last, now);
            fired = transition == Transition::Fired;
            transition
        });
    }
    c.finish(None, fired)
}

/// Repeats still-firing alerts the owner last heard of `every_secs` ago.
pub(super) fn reminders(
    ctx: &ServerCtx,
    tracks: BTreeMap<Subject, Track>,
    every_secs: i64,
    now: i64,
) -> Plan<usize> {
    let mut c = Changes::new(ctx, tracks, now);
    if !ctx.quiet {
        c.tell_each(|s, t| eval::remind(s, t, every_secs, now));
    }
    let n = c.notices.len();
    c.finish(None, n)
}

/// Tells what changed while the owner could not hear (a mute, or before
/// they talked to the bot).
pub(super) fn catch_up(ctx: &ServerCtx, tracks: BTreeMap<Subject, Track>, now: i64) -> Plan<usize> {
    let mut c = Changes::new(ctx, tracks, now);
    if !ctx.quiet {
        c.tell_each(|s, t| eval::catch_up(s, t, now));
    }
    let n = c.notices.len();
    c.finish(None, n)
}
