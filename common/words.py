"""Words for quantities that more than one part of Chalkweb shows."""


def duration_words(value: float | None) -> str:
    """A duration in seconds as people say it: "0.4 s", "3 min 12 s", "2 h 5 min"."""
    if value is None:
        return "—"
    value = float(value)
    if value < 10:
        return f"{value:.1f} s"
    if value < 60:
        return f"{value:.0f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
