"""Reads of what a function is, shared by the REST API, the console and the admin."""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.db.models import Prefetch, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from chalkcompute import words
from chalkcompute.names import function_name_from
from chalkcompute.schedule import Fire, parse
from chalkcompute.spec import FunctionSpec, InvalidSpecError
from scheduling.models import Function, FunctionVersion, VersionFile

ON_DEMAND = "on demand"


def parse_tag(text: str) -> tuple[str, str | None]:
    """A tag filter as people write it: "team:data" (that value) or "team" (any value);
    ValueError with the tags' rule's message when it cannot be a tag."""
    key, sep, value = text.partition(":")
    try:
        FunctionSpec.check_field("tags", {key: value})
    except InvalidSpecError as exc:
        raise ValueError(f"tag {text[:100]!r}: {exc.problems[0].sentence}") from None
    return key, value if sep else None


def function_list(*, tags: Iterable[tuple[str, str | None]] = ()) -> QuerySet[Function]:
    """Functions by name; with `tags`, those whose current version has each (key, value) tag
    (a value of None: any value)."""
    return with_tags(Function.objects.select_related("current_version__image"), tags).order_by(
        "name"
    )


def with_tags(
    functions: QuerySet[Function], tags: Iterable[tuple[str, str | None]]
) -> QuerySet[Function]:
    """`functions` whose current version has each (key, value) tag (None: any value)."""
    for number, (key, value) in enumerate(tags):
        if value is None:
            functions = functions.filter(current_version__tags__has_key=key)
        else:
            # A key transform, not a `tags__<key>` lookup: a key may hold "__".
            tag = f"tag_{number}"
            # Cast: compared as text on every database (SQLite would read `value` as JSON).
            text = Cast(KeyTextTransform(key, "current_version__tags"), TextField())
            functions = functions.alias(**{tag: text}).filter(**{tag: value})
    return functions


def with_files(functions: QuerySet[Function]) -> QuerySet[Function]:
    """`functions` with their current version's shipped files, without their content."""
    return functions.prefetch_related(
        Prefetch("current_version__files", queryset=VersionFile.objects.defer("content"))
    )


def function_get(*, name: str) -> Function | None:
    return function_list().filter(name=name).first()


def function_find(*, name: str) -> Function | None:
    """The function called `name`, else the one whose name Chalk's SDK makes of the Python
    name `name` (refresh_exchange_rates: refresh-exchange-rates), else the only function whose
    current entrypoint is `name`: users of Chalk know a function by its Python name."""
    function = function_get(name=name)
    derived = function_name_from(name)
    if function is None and derived and derived != name:
        function = function_get(name=derived)
    if function is None and name.isidentifier():
        matches = list(function_list().filter(current_version__entrypoint=name)[:2])
        function = matches[0] if len(matches) == 1 else None
    return function


def schedule_description(version: FunctionVersion | None) -> str:
    """The schedule in words, in its zone, e.g. "every hour, on the hour", or "on demand"."""
    if version is None or version.schedule is None:
        return ON_DEMAND
    return parse(version.schedule, version.timezone).describe()


def upcoming_fires(function: Function, count: int) -> list[Fire]:
    """The next `count` slots the scheduler will run, starting at next_fire_at (which a
    redeploy may have kept), each in UTC and in the schedule's zone, with a note where a
    change of clocks moves or merges one; none when the function is paused or on demand."""
    version = function.current_version
    first = function.next_fire_at
    if first is None or version is None or version.cron is None:
        return []
    schedule = version.fire_schedule
    fires = schedule.preview(first - timedelta(minutes=1), count)
    if fires[0].at != first:  # a slot kept from a schedule read differently before
        local = first.astimezone(fires[0].local.tzinfo)
        fires = [Fire(at=first, local=local, note=None), *fires[: count - 1]]
    return fires


# How far ahead the shortest gap between slots is looked for: a year has every weekday, month
# and change of clocks, and a schedule with more slots than this has gaps of minutes.
FIT_HORIZON = timedelta(days=366)
FIT_MAX_SLOTS = 10_000
MINUTE = timedelta(minutes=1)


def shortest_gap(version: FunctionVersion, now: datetime) -> timedelta | None:
    """The shortest time between two consecutive slots of the version's schedule within the
    next year (a change of clocks can make one gap shorter than the rest); None on demand.
    Every view of the function page asks, so it is worked out once a day per schedule."""
    if version.cron is None:
        return None
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return _shortest_gap(version.cron, version.timezone, day)


@lru_cache(maxsize=1024)
def _shortest_gap(cron: str, zone: str | None, start: datetime) -> timedelta | None:
    shortest, previous, end = None, None, start + FIT_HORIZON
    for count, slot in enumerate(parse(cron, zone).iter_after(start)):
        if slot > end or count >= FIT_MAX_SLOTS:
            break
        if previous is not None and (shortest is None or slot - previous < shortest):
            shortest = slot - previous
            if shortest == MINUTE:  # no two slots are closer: the rest cannot change it
                break
        previous = slot
    return shortest


def deploy_warnings(version: FunctionVersion, now: datetime) -> list[str]:
    """What a deploy says about a version that will run, but not as its author may expect."""
    warnings = []
    gap = shortest_gap(version, now)
    if gap is not None and version.timeout and version.timeout > gap.total_seconds():
        consequence = (
            'the slot after a run that long is skipped (overlap="skip")'
            if version.overlap == "skip"
            else 'runs that long overlap the next ones (overlap="allow")'
        )
        warnings.append(
            f"timeout={version.timeout:g} s is longer than the shortest time between two slots "
            f"({words.duration(gap.total_seconds())}): {consequence}"
        )
    return warnings
