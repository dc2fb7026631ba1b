"""Where alerts may go: the public internet, never this machine's or its network's own services
(loopback, private and link-local networks, cloud metadata…), unless an admin allow-lists
their network in CHALK_ALERT_ALLOWED_NETWORKS.

A channel's URL makes the control worker, which sits next to the database and the broker,
connect where it says; without this rule a channel to 127.0.0.1:4222 showed NATS's banner.
The rule is checked twice:

- when a channel is made (`check_host`), so a person reads why and how to allow it;
- on every connection while an alert is sent (`guarded`): a name may resolve elsewhere by then
  (DNS rebinding) and the allow-list may have changed. The check sits in socket.getaddrinfo,
  for the sending thread only: the addresses it checked are the very ones the HTTP or SMTP
  client then connects to (the name resolves once per connection, and nothing resolves it
  again behind the check), while the URL's host name still goes in the Host header, TLS SNI
  and the certificate check. It covers every connection a sender makes, Apprise's included,
  whatever host the Apprise service picks (mailto's SMTP server, a json:// endpoint…).
"""

import functools
import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SETTING = "CHALK_ALERT_ALLOWED_NETWORKS"

# Cloud metadata services hand out the machine's credentials. An allowed network that merely
# contains one of them does not allow it (allowing 169.254.0.0/16 for a link-local device must
# not open the metadata service): only the address listed on its own (/32, /128) does.
METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, Google Cloud, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.169.253",  # AWS DNS resolver
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::253",
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (older)
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv6 addresses that carry an IPv4 one
UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


def _unwrapped(address: Address) -> Address:
    """The IPv4 address an IPv6 one stands for (::ffff:127.0.0.1, NAT64, 6to4), else itself."""
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def kind_of(address: Address) -> str | None:
    """What makes an address off limits, in a word or two; None for a public address."""
    if address in METADATA:
        return "cloud metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.version == 6 and address in UNIQUE_LOCAL:
        return "unique-local"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:  # shared (100.64.0.0/10), benchmarking, documentation…
        return "non-public"
    return None


@functools.lru_cache(maxsize=8)
def _networks(listed: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in listed)


def _allow_listed(address: Address) -> bool:
    for network in _networks(tuple(settings.CHALK_ALERT_ALLOWED_NETWORKS)):
        if network.version != address.version or address not in network:
            continue
        if address in METADATA and network.num_addresses > 1:
            continue  # see METADATA
        return True
    return False


class Refused(Exception):
    """The destination is off limits; str() says which address and how to allow it."""

    def __init__(self, host: str, address: Address, kind: str) -> None:
        self.host, self.address, self.kind = host, address, kind
        exact = f"{address}/{address.max_prefixlen}"
        named = f"{host} ({address})" if host != str(address) else str(address)
        where = "exactly " + exact if kind == "cloud metadata" else f"{exact} (or its network)"
        super().__init__(
            f"Alerts may not go to {named}: it is a {kind} address, inside this server's "
            f"network. If it is meant to receive alerts, an admin can allow it by adding {where} "
            f"to {SETTING} on every server process (see README, Alerts)."
        )

    @property
    def reason(self) -> str:
        """The fixed short reason a delivery shows."""
        return f"refused: {self.kind} address"


def check_address(host: str, address_text: str) -> None:
    """Raises Refused unless the address is public or allow-listed."""
    address = ipaddress.ip_address(address_text.split("%", 1)[0])  # fe80::1%eth0
    address = _unwrapped(address)
    kind = kind_of(address)
    if kind is not None and not _allow_listed(address):
        raise Refused(host, address, kind)


def check_host(host: str, port: int | None) -> None:
    """At a channel's creation: resolves the host and raises Refused if any of its addresses is
    off limits. A name that does not resolve now passes: the send checks it again."""
    try:
        results = _real_getaddrinfo(host, port or 0, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return
    for *_, sockaddr in results:
        check_address(host, sockaddr[0])


# --- the send-time check ---------------------------------------------------------------------


@dataclass
class Guard:
    refused: Refused | None = None  # set when a connection was refused


_real_getaddrinfo = socket.getaddrinfo
_local = threading.local()


def _checked_getaddrinfo(host, port, *args, **kwargs):
    results = _real_getaddrinfo(host, port, *args, **kwargs)
    guard = getattr(_local, "guard", None)
    if guard is None:
        return results  # not sending an alert: every other caller is untouched
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        # Every address, not just the first: the client may fall back to any of them.
        for *_, sockaddr in results:
            check_address(name, sockaddr[0])
    except Refused as refused:
        guard.refused = refused
        # A resolution error: every client (urllib3, smtplib) gives up on this host cleanly.
        raise socket.gaierror(socket.EAI_FAIL, str(refused)) from None
    return results


socket.getaddrinfo = _checked_getaddrinfo  # socket.create_connection looks it up here too


@contextmanager
def guarded() -> Iterator[Guard]:
    """Within it, every connection this thread makes is checked (see the module's docstring).
    A sender must connect from this thread: Apprise is told to (senders.send_apprise)."""
    guard = Guard()
    _local.guard = guard
    try:
        yield guard
    finally:
        _local.guard = None
