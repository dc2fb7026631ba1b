"""The embedded default's broker: kombu's filesystem transport, with atomic writes.

kombu writes a message in place under its final name, and a consumer may take the file while
it is still empty or half-written; it rewrites an exchange's binding table in place too, and
a reader may find it empty. Either way the worker dies on a JSON error. Here every file is
written under a name nobody reads and renamed when complete (a rename within one folder is
atomic), so readers only ever see whole files.
"""

import fcntl
import os
import uuid
from collections.abc import Callable
from time import monotonic

from kombu.transport import filesystem, virtual
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

Bindings = list[filesystem.exchange_queue_t]


def _write_whole(path: str, data: bytes) -> None:
    partial = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.partial")
    # 0600 like everything in the data folder (chalkweb/datafolder.py), whatever the umask.
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
        file.write(data)
    os.rename(partial, path)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # kombu's name: time first, so consumers take messages in order.
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        _write_whole(os.path.join(self.data_folder_out, name), str_to_bytes(dumps(payload)))

    def _update_bindings(self, exchange, change: Callable[[Bindings], Bindings]) -> None:
        """Read, change and replace an exchange's bindings under a lock of their own (the
        table file itself is replaced, so it cannot carry the lock)."""
        table = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        with open(f"{table}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            before = self.get_table(exchange)
            after = change(list(before))
            if after != before:
                _write_whole(str(table), str_to_bytes(dumps(after)))

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_bindings(
            exchange, lambda queues: queues if binding in queues else [binding, *queues]
        )

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_bindings(exchange, lambda queues: [q for q in queues if q != binding])


class Transport(filesystem.Transport):
    Channel = Channel
