"""The local executor's sandbox: each attempt's runner and function run in bubblewrap (`bwrap`).

Inside a run the filesystem is only: /usr (and the /bin, /lib… links to it), a few files of
/etc (name resolution, certificates, users, the loader's cache), the base interpreter's install
prefix (the server's choice, never read from the venv), the image's virtualenv and the runtime
copy, all read-only; HOME (the cwd) and /tmp, each a tmpfs the size of the run's memory limit,
gone when the attempt ends; a /proc of the
run's own processes (a new PID namespace) and a minimal /dev. The data folder, the server's
checkout and virtualenv, other runs' work folders and the operator's home are not there. The
network is the run's own (network.py): the outside world, not the worker's loopback nor the
cloud metadata address; the runner API through a unix socket. The attempt token comes on an
inherited pipe, read and closed by the runner before the function starts
(chalkcompute/runtime/runner.py).

A worker running as root starts bwrap as root, with no user namespace, and `setpriv` turns
the runner into CHALK_LOCAL_RUN_UID (nobody) with no capabilities before it starts: the uid
seen from outside the sandbox is that one, not 0. bwrap's own `--uid` would not do: in a user
namespace made by root, every uid inside is root outside. A worker that is not root runs bwrap
in a user namespace as its own uid.

Memory: RLIMIT_DATA on every process of the run (see `data_limit`). The runner kills the run
at its memory limit, summing every 0.1 s the RSS of every process of its PID namespace and what
HOME and /tmp hold (chalkcompute/runtime/usage.py), and past CHALK_RUN_MAX_PROCESSES.

CHALK_LOCAL_SANDBOX: `auto` uses bwrap when it works here, else runs unsandboxed and says so
(at `make run`'s start, on every such run's log, on the console's pages); `bwrap` fails every
attempt that cannot be sandboxed, with the reason; `off` runs unsandboxed, still warned.
CHALK_LOCAL_NETWORK does the same for the run's own network: `auto`, `isolated` (required),
`host` (the worker's network, warned).
"""

import compileall
import functools
import io
import os
import pwd
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from chalkcompute.runtime.parent import die_with_parent
from runs.executors.local import network
from sdk import runtime_bundle

HOME = "/home/run"  # the work folder's home, inside the sandbox
ETC = (  # what of /etc a run sees: resolving names, TLS, users, the loader, time, alternatives
    "resolv.conf", "hosts", "host.conf", "nsswitch.conf", "gai.conf", "services", "protocols",
    "ssl/certs", "ssl/openssl.cnf", "ca-certificates", "ca-certificates.conf", "pki",
    "crypto-policies", "passwd", "group", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "localtime", "timezone", "alternatives", "mime.types", "os-release",
)  # fmt: skip
USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
PIP_CONFIG = ("pip.conf", "xdg/pip")  # the machine's pip settings, for image builds
NAMESPACES = ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")


@dataclass(frozen=True)
class Isolation:
    """How this worker runs attempts: in bwrap (`bwrap` set), with a network of their own
    (`slirp4netns` set), each missing part said in `warning`; or not at all (`refusal`: a
    required sandbox or network cannot be had)."""

    bwrap: str | None = None
    slirp4netns: str | None = None
    warning: str | None = None
    refusal: str | None = None

    @property
    def description(self) -> str | None:
        """What the console and `make run` say when runs are not isolated, else None."""
        return self.warning or self.refusal


def isolation() -> Isolation:
    mode = settings.CHALK_LOCAL_SANDBOX
    if mode == "off":
        return Isolation(warning=_not_isolated("CHALK_LOCAL_SANDBOX=off"))
    bwrap, problem = _probe(settings.CHALK_LOCAL_BWRAP, os.geteuid(), *(run_ids() or ()))
    if problem is None:
        return _network_isolation(bwrap)
    if mode == "bwrap":
        return Isolation(
            refusal=f"runs are refused: CHALK_LOCAL_SANDBOX=bwrap, but {problem}. Install "
            "bubblewrap (apt install bubblewrap) or fix it; CHALK_LOCAL_SANDBOX=auto would run "
            "them unsandboxed"
        )
    return Isolation(warning=_not_isolated(problem))


def _network_isolation(bwrap: str) -> Isolation:
    mode = settings.CHALK_LOCAL_NETWORK
    if mode == "host":
        return Isolation(bwrap=bwrap, warning=_shared_network("CHALK_LOCAL_NETWORK=host"))
    slirp4netns, problem = _probe_network(
        bwrap, settings.CHALK_LOCAL_SLIRP4NETNS, os.geteuid(), *(run_ids() or ())
    )
    if problem is None:
        return Isolation(bwrap=bwrap, slirp4netns=slirp4netns)
    if mode == "isolated":
        return Isolation(
            refusal=f"runs are refused: CHALK_LOCAL_NETWORK=isolated, but {problem}. Install "
            "slirp4netns (apt install slirp4netns) or fix it; CHALK_LOCAL_NETWORK=auto would "
            "run them on this worker's network"
        )
    return Isolation(bwrap=bwrap, warning=_shared_network(problem))


def _shared_network(why: str) -> str:
    return (
        f"Runs share this worker's network ({why}): a run's function reaches every service "
        "listening on this machine's loopback (127.0.0.1 and ::1: databases, Redis, this "
        "server) and the cloud metadata address 169.254.169.254. Install slirp4netns (apt "
        "install slirp4netns) to give each run its own network; CHALK_LOCAL_NETWORK=isolated "
        "refuses runs without it."
    )


def _not_isolated(why: str) -> str:
    user = _user_name(os.geteuid())
    return (
        f"Runs are not isolated ({why}): each run's function runs as {user} with this "
        "worker's view of the machine, its data folder and keys, other runs and the server's "
        "code. Install bubblewrap (apt install bubblewrap) to sandbox runs; "
        "CHALK_LOCAL_SANDBOX=bwrap refuses unsandboxed runs."
    )


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def run_ids() -> tuple[int, int] | None:
    """The uid and gid runs get when the worker is root (None: the worker's own)."""
    if os.geteuid() != 0:
        return None
    return settings.CHALK_LOCAL_RUN_UID, settings.CHALK_LOCAL_RUN_GID


def describe() -> str:
    """One line for `make run`'s banner."""
    found = isolation()
    if found.bwrap:
        ids = run_ids()
        who = f"as uid {ids[0]}" if ids else f"as {_user_name(os.geteuid())} in a user namespace"
        if found.slirp4netns:
            return (
                f"sandboxed with bubblewrap ({found.bwrap}), {who}, each with its own network "
                f"({found.slirp4netns})"
            )
        return f"sandboxed with bubblewrap ({found.bwrap}), {who}; NETWORK NOT ISOLATED: " + (
            found.warning
        )
    return "NOT ISOLATED: " + found.description


@functools.lru_cache(maxsize=16)
def _probe(bwrap_setting: str, euid: int, uid: int | None = None, gid: int | None = None):
    """(bwrap's path, None) when a sandbox can be made here, else (path or "", why not).
    Once per process for a setting: it starts a sandbox that runs `true`."""
    bwrap = shutil.which(bwrap_setting)
    if not bwrap:
        return "", f"bubblewrap was not found ({bwrap_setting!r} is not an executable here)"
    true = shutil.which("true") or "/bin/true"
    # A sized tmpfs as runs get (bubblewrap 0.8 or later): an older one says so here, at start.
    command = [bwrap, *_namespace_args(euid), "--ro-bind", "/", "/", "--proc", "/proc",
               "--dev", "/dev", "--size", "1048576", "--tmpfs", "/tmp", "--",
               *_drop_args(uid, gid), true]  # fmt: skip
    if uid is not None and not _setpriv():
        return bwrap, "setpriv (util-linux) was not found, and a root worker needs it"
    try:
        result = subprocess.run(command, capture_output=True, timeout=30, env={})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return bwrap, f"{bwrap} cannot run: {exc}"
    if result.returncode != 0:
        said = result.stderr.decode("utf-8", "replace").strip()[-300:]
        return bwrap, f"{bwrap} cannot make a sandbox here (exit code {result.returncode}: {said})"
    return bwrap, None


@functools.lru_cache(maxsize=16)
def _probe_network(
    bwrap: str, slirp4netns_setting: str, euid: int, uid: int | None = None, gid: int | None = None
):
    """(slirp4netns's path, None) when a sandbox can have its own network here, else (path or
    "", why not). Once per process for a setting: it starts a networked sandbox that runs
    `true`, as attempts do."""
    slirp4netns = shutil.which(slirp4netns_setting)
    if not slirp4netns:
        return "", f"slirp4netns was not found ({slirp4netns_setting!r} is not an executable here)"
    true = shutil.which("true") or "/bin/true"
    command = [bwrap, "--die-with-parent", *_namespace_args(euid), "--unshare-net",
               "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--",
               *_drop_args(uid, gid), true]  # fmt: skip
    with tempfile.NamedTemporaryFile(prefix="chalk-slirp4netns-") as log:
        try:
            process, attached = network.spawn(
                command, slirp4netns=slirp4netns, log=Path(log.name), env={},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                preexec_fn=die_with_parent,
            )  # fmt: skip
        except (OSError, network.NetworkError) as exc:
            return slirp4netns, f"a sandbox's network cannot be made here: {exc}"
        _, errors = process.communicate(timeout=30)
        if attached:
            attached.close()
    if attached is None or process.returncode != 0:
        said = errors.decode("utf-8", "replace").strip()[-300:]
        return slirp4netns, (
            f"{bwrap} cannot make a sandbox with its own network here (exit code "
            f"{process.returncode}: {said})"
        )
    return slirp4netns, None


def _setpriv() -> str | None:
    return shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")


def _namespace_args(euid: int) -> list[str]:
    # Not root: a user namespace is what lets bwrap make the others. Root: none, so the uid
    # setpriv gives the runner is the one the rest of the machine sees.
    return [*NAMESPACES, *(["--unshare-user"] if euid != 0 else [])]


def _drop_args(uid: int | None, gid: int | None) -> list[str]:
    if uid is None:
        return []
    return [_setpriv() or "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={gid}",
            "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"]  # fmt: skip


def command(
    bwrap: str,
    argv: list[str],
    *,
    venv: Path,
    prefix: Path,
    runtime: Path | None,
    work: "WorkFolder",
    ids: tuple[int, int] | None,
    own_network: bool,
    scratch_bytes: int | None = None,
) -> list[str]:
    """The bwrap command line that runs `argv` (the runner) in the attempt's sandbox; with
    `own_network`, in a network namespace of its own, for network.spawn to attach. `prefix` is
    the base interpreter's install prefix, mounted read-only: the server's choice, never read
    from the venv (a build can rewrite its pyvenv.cfg). With `scratch_bytes`, HOME and /tmp are
    each a tmpfs of that size rather than the work folder's (a run: it can fill neither the
    data folder's disk nor, since the runner counts them as its memory, the machine's memory).
    Without a `runtime` it is an image build's sandbox: the same, but the venv is the one
    writable mount beside HOME and /tmp, and there is no runner to reach the runner API."""
    args = [bwrap, "--die-with-parent", "--new-session", *_namespace_args(os.geteuid())]
    if own_network:
        args += ["--unshare-net"]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in USR_LINKS:  # merged /usr: links; otherwise the folders, read-only
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--perms", "0755", "--dir", "/etc", "--perms", "0755", "--dir", "/etc/ssl"]
    for name in ETC:
        if own_network and name == "resolv.conf":  # the worker's may name a loopback resolver
            args += ["--ro-bind", str(work.resolv_conf), "/etc/resolv.conf"]
        else:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    read_only = [] if prefix.is_relative_to("/usr") else [prefix]
    # The folders leading to a mount bwrap would make 0700 (no way through for the run's uid):
    # 0711 instead, a way through that lists nothing. The work folder first, so that a data
    # folder in /tmp still has its venv and runtime mounted over the run's /tmp.
    made = {Path("/"), Path("/usr"), Path("/etc"), Path("/etc/ssl"), Path("/tmp")}
    if own_network and runtime:  # the runner API's socket (network.RunnerApiProxy), read-only
        args += ["--perms", "0755", "--dir", "/run"]
        args += ["--ro-bind", str(work.api), network.SOCKET_FOLDER]
        made.add(Path("/run"))

    def parents(path: Path) -> list[str]:
        folders = []
        for parent in reversed(path.parents):
            if parent not in made:
                made.add(parent)
                folders += ["--perms", "0711", "--dir", str(parent)]
        return folders

    if scratch_bytes:  # the run is its sandbox's only user: HOME may be writable to all
        size = str(scratch_bytes)
        args += [*parents(Path(HOME)), "--perms", "0777", "--size", size, "--tmpfs", HOME]
        args += ["--perms", "01777", "--size", size, "--tmpfs", "/tmp"]
    else:
        args += [*parents(Path(HOME)), "--bind", str(work.home), HOME]
        args += ["--bind", str(work.tmp), "/tmp"]
    for path in (*read_only, *([venv, runtime] if runtime else [])):
        args += [*parents(path), "--ro-bind", str(path), str(path)]
    if not runtime:  # building: the venv is written where runs will find it
        args += [*parents(venv), "--bind", str(venv), str(venv)]
        args += ["--perms", "0755", "--dir", "/etc/xdg"]
        for name in PIP_CONFIG:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--chdir", HOME, "--"]
    return [*args, *_drop_args(*(ids or (None, None))), *argv]


def data_limit(memory_limit_bytes: int) -> int:
    """RLIMIT_DATA for every process of a run whose memory request is `memory_limit_bytes`.

    RLIMIT_DATA counts a process's private writable memory as it is mapped, touched or not;
    unlike RLIMIT_AS it leaves out reservations without access (what Go, the JVM and
    allocators reserve up front), shared libraries and other file mappings. Mapped is more
    than resident (calloc'd buffers, 8 MiB thread stacks), so the ceiling is twice the request,
    at least 256 MiB above it: the runner kills the run at its request (RSS summed over its
    processes, every 0.1 s, with the reason), and the kernel refuses any one process memory
    past the ceiling, so no burst faster than that check can take the machine's memory."""
    return memory_limit_bytes + max(memory_limit_bytes, 256 * 2**20)


# The runtime copy.


def runtime_copy() -> Path:
    """This server's `chalkcompute` and `chalk` (runtime_bundle: the .py files only), extracted
    once per server version into DATA_DIR/runtime/<sha256>/, byte-compiled, read-only (files
    0444, folders 0555): what runs import, never a link into the checkout. It appears whole,
    under its final name, or not at all."""
    bundle = runtime_bundle.bundle()
    root = settings.DATA_DIR / "runtime"
    target = root / bundle.sha256
    if target.is_dir():
        return target
    root.mkdir(mode=0o700, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extracting-", dir=root))
    try:
        with tarfile.open(fileobj=io.BytesIO(bundle.archive), mode="r:gz") as archive:
            # The bundle is this server's own archive of .py files. The "data" filter, where
            # this Python has it (3.11.4 and later; Debian 12's 3.11 is 3.11.2), guards anyway.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(staging, **safe)
        compileall.compile_dir(staging, ddir=str(target), quiet=2, workers=1)
        for folder, _, files in os.walk(staging, topdown=False):
            for name in files:
                os.chmod(os.path.join(folder, name), 0o444)
            os.chmod(folder, 0o555)
        try:
            os.rename(staging, target)
        except OSError:  # another worker's copy is there first: the same bytes
            if not target.is_dir():
                raise
    finally:
        if staging.exists():
            remove_tree(staging)
    return target


# Work folders.


@dataclass(frozen=True)
class WorkFolder:
    """An attempt's own folder under DATA_DIR/work: its HOME (and cwd) and its /tmp; the
    folder of the runner API's socket and the resolv.conf of a run with its own network."""

    root: Path
    home: Path
    tmp: Path

    @property
    def api(self) -> Path:
        return self.root / "api"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "resolv.conf"


def work_folder(name: str, owner: tuple[int, int] | None) -> WorkFolder:
    """A new work folder `name-XXXXXXXX`: `attempt-ID` for a run, `build-HASH` for a build."""
    base = settings.DATA_DIR / "work"
    base.mkdir(mode=0o700, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))  # 0700
    folder = WorkFolder(root=root, home=root / "home", tmp=root / "tmp")
    for path in (folder.home, folder.tmp):
        path.mkdir(mode=0o700)
        if owner:
            os.chown(path, *owner)
    folder.api.mkdir()
    os.chmod(folder.api, 0o711)  # a way through to the socket for the run's uid
    folder.resolv_conf.write_text(network.resolv_conf())
    os.chmod(folder.resolv_conf, 0o644)
    return folder


def sweep_work_folders(active_attempt_ids) -> None:
    """Removes the work folders of attempts no longer active (a worker killed mid-run left
    them). `active_attempt_ids(ids)` returns those of `ids` still active."""
    base = settings.DATA_DIR / "work"
    if not base.is_dir():
        return
    folders = {}
    for path in base.iterdir():
        number = path.name.split("-")[1] if path.name.startswith("attempt-") else ""
        if number.isdigit():
            folders.setdefault(int(number), []).append(path)
    active = set(active_attempt_ids(list(folders))) if folders else set()
    for attempt_id, paths in folders.items():
        if attempt_id not in active:
            for path in paths:
                remove_tree(path)


def remove_tree(path: Path) -> None:
    """Removes `path` and all in it, what a run made unwritable too. Never follows a link.
    Only a worker that is not root needs to give itself permissions back (root needs none, and
    does not chmod what a run made)."""

    def retry(function, name, _exc_info) -> None:
        if os.geteuid() == 0:
            return
        try:
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
                shutil.rmtree(name, ignore_errors=True)
            else:
                function(name)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)
