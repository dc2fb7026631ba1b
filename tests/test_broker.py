"""The embedded default's filesystem broker hands out only whole messages."""

import threading

from kombu import Connection

from chalkweb.broker import Transport

MESSAGES = 500


def test_it_never_delivers_a_half_written_message(tmp_path):
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path),
               "control_folder": str(tmp_path / "control"), "polling_interval": 0.001}  # fmt: skip
    queue = "chalk-test"
    payload = {"padding": "x" * 200_000}  # large, so a write takes long enough to be caught
    received, errors = [], []

    def consume():
        with Connection(transport=Transport, transport_options=options) as connection:
            simple = connection.SimpleQueue(queue)
            while len(received) < MESSAGES and not errors:
                try:
                    message = simple.get(timeout=10)
                except Exception as exc:  # a torn message surfaces here as a JSON error
                    errors.append(exc)
                    return
                received.append(message.payload["n"])
                message.ack()

    with Connection(transport=Transport, transport_options=options) as connection:
        simple = connection.SimpleQueue(queue)  # declared and bound before anyone reads
        consumer = threading.Thread(target=consume)
        consumer.start()
        for n in range(MESSAGES):
            simple.put({**payload, "n": n})
    consumer.join(60)

    assert errors == []
    assert sorted(received) == list(range(MESSAGES))
