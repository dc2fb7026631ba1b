"""`python manage.py after_restore`: run once after restoring a database dump, after `migrate`
and BEFORE beat and the workers start, so a restore never runs a slot twice by surprise.

It ends every run that was in flight at the backup as `lost` (it may have finished on the lost
database) and moves every unpaused function whose next slot has passed to its first slot after
now (the slots since the backup may have run already): runs.services.after_restore. A second
run finds nothing to do and says so.
"""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max
from django.utils import timezone

from runs.models import Heartbeat
from runs.services import after_restore

# The runs worker is not part of chalkweb.target: one left running reads the old database.
START_AGAIN = (
    " Start beat and the workers, the runs worker too (systemctl start chalkweb.target "
    "chalkweb-runs-worker); a runs worker still running from before the restore reads the old "
    "DATABASE_URL: restart it."
)

# A worker records itself every 10 s and the tick every second (health/state.py); a process
# seen this recently may still be running and would race the fence.
ALIVE = dt.timedelta(seconds=30)
PROCESSES = ("beat", "runs-worker", "control-worker")


def _at(moment: dt.datetime | None) -> str:
    return "none" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


class Command(BaseCommand):
    help = (
        "After restoring a database dump (and migrate), before starting beat and the workers: "
        "ends the runs that were in flight at the backup as lost, never run again, and moves "
        "every function past the slots it missed to its first slot after now. Idempotent."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="run even though a worker or beat was seen in the last 30 s",
        )

    def handle(self, *args, force: bool, **options) -> None:
        now = timezone.now()
        alive = Heartbeat.objects.filter(component__in=PROCESSES, seen_at__gt=now - ALIVE)
        if alive.exists() and not force:
            seen = ", ".join(
                f"{row.component} {row.name}".strip()
                + f" ({int((now - row.seen_at).total_seconds())} s ago)"
                for row in alive.order_by("component", "name")
            )
            raise CommandError(
                f"beat or a worker is alive: {seen}. Stop beat and the workers first "
                "(systemctl stop chalkweb.target), then run this again: while they run they "
                "may start the restored runs again and catch up missed slots. If these are the "
                "backup's own heartbeats, taken under 30 s ago, wait or pass --force."
            )
        newest = Heartbeat.objects.aggregate(at=Max("seen_at"))["at"]
        fenced, moved = after_restore(now=now)
        self.stdout.write(
            f"The newest heartbeat in this database is from {_at(newest)}: the backup was taken "
            "about then, and what happened after it is not in this database."
        )
        if not fenced and not moved:
            self.stdout.write(
                "Nothing to do: no run is in flight and no function's next slot has passed "
                f"(after_restore already ran on this database?).{START_AGAIN}"
            )
            return
        self.stdout.write(
            f"Ended {sum(fenced.values())} run(s) in flight at the backup as lost, not run "
            f"again, of {len(fenced)} function(s){':' if fenced else '.'}"
        )
        for name, count in sorted(fenced.items()):
            self.stdout.write(f"  {name}: {count}")
        self.stdout.write(
            f"Moved {len(moved)} function(s) past the slots missed since the backup to their "
            f"first slot after now, so none runs late{':' if moved else '.'}"
        )
        for name, before, after in moved:
            self.stdout.write(f"  {name}: {_at(before)} -> {_at(after)}")
        self.stdout.write(f"Recorded in the audit trail (restore).{START_AGAIN}")
