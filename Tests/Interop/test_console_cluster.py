"""The console spanning a cluster: real mqnamesrv and two mqbroker processes; the console in
broker-a's process lists both brokers from the NameServer and shows broker-b's pages through
broker-b's Admin service, and no address a NameServer does not list."""
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import Process, binary


@pytest.fixture
def namesrv():
    ns = Process([binary("mqnamesrv"), "--port", "0"], "mqnamesrv")
    try:
        port = int(ns.wait_for(r"mqnamesrv listening on 127\.0\.0\.1:(\d+)").group(1))
        yield f"127.0.0.1:{port}"
    finally:
        ns.stop()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_console_shows_every_broker_of_the_cluster(broker_factory, namesrv):
    a = broker_factory({"flushMode": "async", "topics": [{"name": "only-on-a", "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]}]},
                       extra=["--namesrv", namesrv, "--broker-name", "broker-a", "--console-port", "0"])
    console = a.process.wait_for(r"console listening on (http://\S+/)").group(1).rstrip("/")
    b = broker_factory({"flushMode": "async", "topics": [{"name": "only-on-b", "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]}]},
                       extra=["--namesrv", namesrv, "--broker-name", "broker-b"])

    deadline = time.monotonic() + 20
    status, overview = get(console + "/")
    while b.endpoint not in overview and time.monotonic() < deadline:
        time.sleep(0.2)
        status, overview = get(console + "/")
    assert status == 200
    assert "<h2>Cluster</h2>" in overview
    assert "<td>broker-a</td>" in overview and "<td>broker-b</td>" in overview
    other = "broker=" + urllib.parse.quote(b.endpoint, safe="")
    assert f'href="/?{other}"' in overview

    status, page = get(f"{console}/topics?{other}")
    assert status == 200
    assert "only-on-b" in page and "only-on-a" not in page
    # Links on broker-b's pages stay on broker-b.
    assert f'href="/topics/only-on-b?{other}"' in page
    assert f'href="/groups?{other}"' in page
    status, topic = get(f"{console}/topics/only-on-b?{other}")
    assert status == 200 and "2 queues" in topic

    status, own = get(console + "/topics")
    assert status == 200 and "only-on-a" in own and "only-on-b" not in own

    # An address no NameServer lists is not called, and what a page was given comes back escaped.
    status, refused = get(console + "/topics?broker=" + urllib.parse.quote("127.0.0.1:1", safe=""))
    assert status == 404 and "127.0.0.1:1 is not a broker of this cluster" in refused
    hostile = '"><script>alert(1)</script>'
    status, refused = get(console + "/messages?broker=" + urllib.parse.quote(hostile, safe=""))
    assert status == 404 and "<script>" not in refused and "&lt;script&gt;" in refused
