"""Alert channels are no way into the server's own network (alerts/destinations.py): loopback,
private and metadata addresses are refused when a channel is made and again when an alert is
sent, unless CHALK_ALERT_ALLOWED_NETWORKS allows them; a delivery shows a fixed short reason,
never what the other end said; Apprise URLs are kept to plain services."""

import ipaddress
import socket
import threading

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from alerts import channels, destinations, services
from alerts.models import Channel, Delivery
from tests.personas import acting, make_token

pytestmark = pytest.mark.django_db

# What a NATS server says to whoever connects: it must never show on a page.
BANNER = b'INFO {"server_id":"NATS-SECRET-BANNER","version":"2.10"}\r\n'


class BannerServer:
    """A real TCP listener on 127.0.0.1 that greets every connection with BANNER, as NATS,
    MySQL or Redis would; `connections` counts who came."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.connections += 1
            with conn:
                conn.sendall(BANNER)
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def banner_server():
    server = BannerServer()
    yield server
    server.close()


@pytest.fixture
def no_allow_list(settings):
    settings.CHALK_ALERT_ALLOWED_NETWORKS = []


def create(name, url, kind="webhook"):
    return channels.channel_create(
        name=name, kind=kind, url=url, actor=acting("ada", "admin"), now=timezone.now()
    )


def send_test(channel, capture) -> Delivery:
    """A test alert sent now, through the deliver task (run eagerly here)."""
    with capture(execute=True):
        services.channel_test(channel=channel, actor=acting("olga", "operator"), now=timezone.now())
    return Delivery.objects.filter(channel=channel).latest("id")


def admin_api() -> APIClient:
    _, token = make_token("t", username="ada", role="admin", scopes=["read", "admin"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- at creation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, kind, named",
    [
        ("http://127.0.0.1:{port}/", "webhook", "127.0.0.1"),
        ("http://localhost:{port}/", "webhook", "localhost (127.0.0.1)"),
        ("http://[::ffff:127.0.0.1]:{port}/", "webhook", "::ffff:127.0.0.1 (127.0.0.1)"),
        ("http://2130706433:{port}/", "webhook", "2130706433 (127.0.0.1)"),  # as one number
        ("json://127.0.0.1:{port}/", "apprise", "127.0.0.1"),
        ("mailto://user:pw@example.com?smtp=127.0.0.1&to=a@example.com", "apprise", "127.0.0.1"),
    ],
)
def test_a_channel_to_a_loopback_listener_is_refused_at_creation(
    banner_server, no_allow_list, url, kind, named
):
    with pytest.raises(channels.AlertsError) as refused:
        create("nats", url.format(port=banner_server.port), kind)
    message = refused.value.message
    assert f"Alerts may not go to {named}: it is a loopback address" in message
    assert "adding 127.0.0.1/32 (or its network) to CHALK_ALERT_ALLOWED_NETWORKS" in message
    assert not Channel.objects.exists()
    assert banner_server.connections == 0  # checked, never connected to


def test_the_api_and_the_console_refuse_it_with_a_400(banner_server, no_allow_list, console):
    url = f"http://127.0.0.1:{banner_server.port}/"
    answer = admin_api().post(
        "/api/v1/channels", {"name": "nats", "kind": "webhook", "url": url}, format="json"
    )
    assert answer.status_code == 400
    assert "Alerts may not go to 127.0.0.1" in answer.json()["detail"]

    page = console.post("/channels", {"action": "create", "name": "nats", "kind": "webhook",
                                      "url": url})  # fmt: skip
    assert page.status_code == 400
    assert "CHALK_ALERT_ALLOWED_NETWORKS" in page.text
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    "address, kind",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "unique-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "private"),  # reserved: Python counts 240/4 as private
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ],
)
def test_every_kind_of_non_public_address_is_refused(no_allow_list, address, kind):
    with pytest.raises(destinations.Refused) as refused:
        destinations.check_address(address, address)
    assert refused.value.kind == kind
    assert refused.value.reason == f"refused: {kind} address"


def test_public_addresses_pass_and_the_allow_list_opens_only_its_networks(settings):
    settings.CHALK_ALERT_ALLOWED_NETWORKS = ["10.20.0.0/16", "169.254.0.0/16"]
    destinations.check_address("hooks.example.com", "93.184.216.34")
    destinations.check_address("hooks.example.com", "2606:2800:220:1:248:1893:25c8:1946")
    destinations.check_address("ci.internal", "10.20.3.4")
    with pytest.raises(destinations.Refused):
        destinations.check_address("db.internal", "10.21.0.1")
    destinations.check_address("device", "169.254.1.1")
    # A network that merely contains the metadata service does not open it...
    with pytest.raises(destinations.Refused, match="adding exactly 169.254.169.254/32"):
        destinations.check_address("169.254.169.254", "169.254.169.254")
    # ...only the address listed on its own does.
    settings.CHALK_ALERT_ALLOWED_NETWORKS = ["169.254.169.254/32"]
    destinations.check_address("169.254.169.254", "169.254.169.254")
    assert ipaddress.ip_address("169.254.169.254") in destinations.METADATA


# --- at send time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, kind",
    [
        ("http://127.0.0.1:{port}/hook", "webhook"),
        ("http://localhost:{port}/hook", "webhook"),  # a name that resolves to loopback
        ("json://127.0.0.1:{port}/hook", "apprise"),  # Apprise's connections are checked too
        ("json://localhost:{port}/hook", "apprise"),
    ],
)
def test_a_channel_allowed_when_made_is_refused_when_the_allow_list_no_longer_allows_it(
    banner_server, settings, eager_tasks, django_capture_on_commit_callbacks, url, kind
):
    settings.CHALK_ALERT_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    channel, _ = create("internal", url.format(port=banner_server.port), kind)
    settings.CHALK_ALERT_ALLOWED_NETWORKS = []  # an admin took the network off the list

    delivery = send_test(channel, django_capture_on_commit_callbacks)

    assert (delivery.status, delivery.answer) == ("failed", "refused: loopback address")
    assert delivery.tries == 1  # a refusal is not retried
    assert banner_server.connections == 0


def test_an_allow_listed_loopback_receiver_gets_alerts_and_shows_a_status_not_its_body(
    http_receiver, eager_tasks, django_capture_on_commit_callbacks, console
):
    channel, _ = create("local-hook", http_receiver.url + "/hook")
    apprise_channel, _ = create("local-json", http_receiver.url.replace("http", "json"), "apprise")

    delivery = send_test(channel, django_capture_on_commit_callbacks)
    by_apprise = send_test(apprise_channel, django_capture_on_commit_callbacks)

    webhook, by_json = http_receiver.requests
    assert webhook.json()["kind"] == "test" and by_json.json()["type"] == "info"
    assert (delivery.status, delivery.answer) == ("sent", "HTTP 200")
    assert (by_apprise.status, by_apprise.answer) == ("sent", "sent")
    page = console.get("/channels").text
    assert "HTTP 200" in page and "thanks" not in page  # the receiver's body stays out


def test_a_service_that_is_no_webhook_shows_a_short_reason_never_its_banner(
    banner_server, settings, eager_tasks, django_capture_on_commit_callbacks, console
):
    settings.CHALK_ALERT_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    channel, _ = create("nats", f"http://127.0.0.1:{banner_server.port}/")
    apprise_channel, _ = create("nats-json", f"json://127.0.0.1:{banner_server.port}/", "apprise")

    for chan in (channel, apprise_channel):
        send_test(chan, django_capture_on_commit_callbacks)

    assert banner_server.connections > 0  # allowed: it was reached
    for delivery in Delivery.objects.all():
        assert delivery.status == "failed"
        assert delivery.answer in ("connection failed", "not sent"), delivery.answer
    page = console.get("/channels").text
    assert "NATS-SECRET-BANNER" not in page and "server_id" not in page


def test_an_http_error_is_the_status_alone(
    http_receiver, eager_tasks, django_capture_on_commit_callbacks
):
    http_receiver.answers = [401]
    channel, _ = create("local-hook", http_receiver.url)
    delivery = send_test(channel, django_capture_on_commit_callbacks)
    assert (delivery.status, delivery.answer) == ("failed", "HTTP 401")


# --- Apprise ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, says",
    [
        ("file:///tmp/alerts.txt", "file:// are not allowed"),
        ("windows://", "windows:// are not allowed"),
        ("syslog://", "syslog:// are not allowed"),
        ("json://hooks.example.com/?+Metadata-Flavor=Google", "headers, query parameters"),
        ("json://hooks.example.com/?%2BMetadata-Flavor=Google", "headers, query parameters"),
        ("json://hooks.example.com/?-secret=1", "headers, query parameters"),
        ("json://hooks.example.com/?:title=x", "headers, query parameters"),
        ("json://hooks.example.com/?method=PUT", "parameter method is not allowed"),
        ("xml://hooks.example.com/?redirect=yes", "parameter redirect is not allowed"),
        (
            "mailto://u:p@example.com?to=a@example.com&pgppub=/etc/passwd",
            "parameter pgppub is not allowed",
        ),
        ("json://hooks.example.com/?keyfile=/etc/shadow", "parameter keyfile is not allowed"),
    ],
)
def test_apprise_urls_are_kept_to_plain_services(url, says):
    answer = admin_api().post(
        "/api/v1/channels", {"name": "x", "kind": "apprise", "url": url}, format="json"
    )
    assert answer.status_code == 400
    assert says in answer.json()["detail"]
    assert not Channel.objects.exists()


def test_plain_apprise_urls_are_accepted():
    for number, url in enumerate(
        [
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
            "json://hooks.example.com/alerts?format=text",
            "ntfy://ntfy.example.com/chalk-alerts",
            "mailto://user:pw@example.com?to=ops@example.com",
        ]
    ):
        create(f"c{number}", url, "apprise")
    assert Channel.objects.count() == 4
