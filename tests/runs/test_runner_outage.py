"""A runner whose web goes away (a restart, an upgrade) and comes back loses nothing: its lines
wait for the web, and its last lines and outcome are retried until the web answers again (a
real runner and its child against runner_harness's runner API, stopped and started again on
the same port)."""

import threading
import time

import pytest

from tests.runs.runner_harness import RunnerApiServer, RunnerResult, attempt_spec, run_runner

LINES = 30


def lines_every(seconds: float) -> str:
    return f"""
    for number in range({LINES}):
        print(f"line {{number:02d}}", flush=True)
        time.sleep({seconds})
    return "done"
    """


def run_with_an_outage(body: str, *, down_at_line: int, down_for: float) -> RunnerResult:
    """Runs `body`; the web stops once `down_at_line` lines are stored and starts again
    `down_for` seconds later."""
    spec = attempt_spec(body)
    result: list[RunnerResult] = []
    with RunnerApiServer(spec) as server:
        runner = threading.Thread(target=lambda: result.append(run_runner(spec, server=server)))
        runner.start()
        deadline = time.monotonic() + 60
        while len(server.lines) < down_at_line:
            assert time.monotonic() < deadline, "the runner's first lines did not come"
            time.sleep(0.05)
        server.stop()
        stored_before = len(server.lines)
        time.sleep(down_for)
        server.start()
        runner.join(timeout=120)
    assert not runner.is_alive(), "the runner did not end once the web was back"
    assert stored_before < LINES, "the web came back only after every line: nothing was tested"
    return result[0]


def assert_nothing_lost(result: RunnerResult) -> None:
    assert result.returncode == 0, result.stderr
    assert result.outcome["status"] == "succeeded", result.outcome
    assert result.outcome["return_value"] == "done"
    assert [text for stream, _, text in result.log if stream == "stdout"] == [
        f"line {number:02d}" for number in range(LINES)
    ]


@pytest.mark.slow
def test_lines_printed_while_the_web_is_down_reach_it_once_it_is_back():
    # 30 lines over 6 s; the web is away for 3 s of it.
    result = run_with_an_outage(lines_every(0.2), down_at_line=5, down_for=3)

    assert_nothing_lost(result)


@pytest.mark.slow
def test_a_function_that_ends_while_the_web_is_down_reports_its_last_lines_and_outcome():
    # 30 lines over 3 s; the web is away from the fifth line until well after the end, longer
    # than a heartbeat's own few seconds of retries.
    result = run_with_an_outage(lines_every(0.1), down_at_line=5, down_for=12)

    assert_nothing_lost(result)
