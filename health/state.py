"""What state the platform is in, from the heartbeats its processes record (runs.heartbeats):
beat's last tick, each worker and beat seen and when, and which Chalkweb each runs. /readyz,
the console's banner and its Platform page all read it here, in one query."""

import datetime as dt
from dataclasses import dataclass, field

from django_celery_beat.models import PeriodicTask

from chalkcompute.words import spelled_duration
from runs.beat import PERIODIC_TASKS
from runs.models import Heartbeat
from runs.versions import BEAT_COMPONENT, beside_this_one

# /readyz: beat ticks every second and a worker records itself every 10 s.
READY_TICK_AGE = dt.timedelta(seconds=10)
READY_WORKER_AGE = dt.timedelta(seconds=30)
# The console's banner waits a little longer, so a restart does not flash it.
BANNER_TICK_AGE = dt.timedelta(seconds=30)
BANNER_WORKER_AGE = dt.timedelta(seconds=60)
WORKER_COMPONENTS = ("runs-worker", "control-worker")
OVERDUE = dt.timedelta(minutes=1)  # a function this far past its next run time has no run
# Beat saves when it last sent a task every few minutes (django-celery-beat's sync), not at
# each send: a periodic task is late once it is this much past twice its interval.
PERIODIC_TASK_GRACE = dt.timedelta(minutes=5)


@dataclass
class PlatformState:
    now: dt.datetime
    tick: Heartbeat | None = None
    reaper: Heartbeat | None = None
    workers: list[Heartbeat] = field(default_factory=list)
    beats: list[Heartbeat] = field(default_factory=list)  # beat processes, by host

    @classmethod
    def read(cls, *, now: dt.datetime) -> "PlatformState":
        state = cls(now=now)
        rows = Heartbeat.objects.filter(
            component__in=("beat", "reaper", BEAT_COMPONENT, *WORKER_COMPONENTS)
        )
        for row in rows.order_by("component", "name"):
            if row.component == "beat":
                state.tick = row
            elif row.component == "reaper":
                state.reaper = row
            elif row.component == BEAT_COMPONENT:
                state.beats.append(row)
            else:
                state.workers.append(row)
        return state

    def other_versions(self) -> list[str]:
        """Workers and beats seen lately whose Chalkweb is not this process's, in sentences
        ("runs@host-b runs Chalkweb 0.9.0 beside 1.0.0: upgrade or stop it"). There is no
        rolling upgrade: an older one stops by itself once the database is newer than it, and
        until then it is said here."""
        said = {}
        for row in [*self.workers, *self.beats]:
            if self.now - row.seen_at <= BANNER_WORKER_AGE and row.name not in said:
                said[row.name] = beside_this_one(row.name, row.detail or {})
        return [sentence for sentence in said.values() if sentence]

    def tick_age(self) -> dt.timedelta | None:
        return None if self.tick is None else self.now - self.tick.seen_at

    def last_runs_worker(self) -> dt.datetime | None:
        seen = [w.seen_at for w in self.workers if w.component == "runs-worker"]
        return max(seen, default=None)

    def runs_worker_age(self) -> dt.timedelta | None:
        last = self.last_runs_worker()
        return None if last is None else self.now - last

    def tick_fresh(self, within: dt.timedelta) -> bool:
        age = self.tick_age()
        return age is not None and age <= within

    def runs_worker_fresh(self, within: dt.timedelta) -> bool:
        age = self.runs_worker_age()
        return age is not None and age <= within

    def problems(self) -> list[str]:
        """The banner's sentences: empty while all is well."""
        problems = []
        if not self.tick_fresh(BANNER_TICK_AGE):
            problems.append(
                (
                    "no tick ever recorded"
                    if self.tick is None
                    else f"no tick for {spelled_duration(self.tick_age())}"
                )
                + ": scheduled runs are not being created (is beat running?)"
            )
        if not self.runs_worker_fresh(BANNER_WORKER_AGE):
            age = self.runs_worker_age()
            problems.append(
                (
                    "no runs worker ever seen"
                    if age is None
                    else f"no runs worker seen for {spelled_duration(age)}"
                )
                + ": runs are waiting"
            )
        return problems

    def why_overdue(self) -> str:
        """Why a function past its next run time may have no run, for its row."""
        if not self.tick_fresh(BANNER_TICK_AGE):
            return "no tick: is beat running?"
        if not self.runs_worker_fresh(BANNER_WORKER_AGE):
            return "no runs worker"
        return "the tick has not claimed it yet"


def periodic_task_problems(*, now: dt.datetime) -> list[str]:
    """The platform's periodic tasks (runs/beat.py) that are missing, disabled in the admin or
    not being sent, in sentences: without the alerts sweep, for one, no late, long-running or
    skipped-slot alert is ever sent, and nothing else would say so."""
    rows = {
        row.name: row
        for row in PeriodicTask.objects.filter(name__in=list(PERIODIC_TASKS)).select_related(
            "interval"
        )
    }
    problems = []
    for name, (task, every, _) in PERIODIC_TASKS.items():
        row = rows.get(name)
        if row is None:
            problems.append(
                f"periodic task {name!r} ({task}) is missing: start beat, or run "
                "`manage.py migrate`, and it is created"
            )
        elif not row.enabled:
            problems.append(
                f"periodic task {name!r} ({task}) is disabled: enable it in the admin's "
                "Periodic tasks"
            )
        else:
            interval = (
                row.interval.schedule.run_every if row.interval else dt.timedelta(seconds=every)
            )
            last = row.last_run_at  # None until beat first sends it: the beat check covers that
            if last and now - last > 2 * interval + PERIODIC_TASK_GRACE:
                problems.append(
                    f"periodic task {name!r} ({task}) was last sent "
                    f"{spelled_duration(now - last)} ago, "
                    f"though it runs every {spelled_duration(interval)}: is beat running?"
                )
    return problems
