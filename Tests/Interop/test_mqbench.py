"""mqbench against a real broker: its checker reports nothing lost, duplicated or out of order."""
import json
import subprocess

from conftest import binary


def run(args, timeout=120):
    out = subprocess.run([binary("mqbench")] + args + ["--json"], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_produce_then_consume_counts_every_message_once(broker_factory):
    broker = broker_factory({"autoCreate": True, "flushMode": "sync"})
    produced = run(["produce", "--endpoint", broker.endpoint, "--topic", "bench-a", "--count", "1500", "--concurrency", "8", "--mode", "async"])
    assert produced["count"] == 1500 and produced["errors"] == {}
    assert produced["p99_us"] >= produced["p50_us"] > 0
    consumed = run(["consume", "--endpoint", broker.endpoint, "--topic", "bench-a", "--count", "1500", "--concurrency", "4", "--idle-seconds", "3"])
    assert (consumed["unique"], consumed["lost"], consumed["duplicated"]) == (1500, 0, 0)


def test_e2e_keeps_fifo_order_per_message_group(broker_factory):
    broker = broker_factory({"autoCreate": True})
    result = run(["e2e", "--endpoint", broker.endpoint, "--topic", "bench-fifo", "--group", "bench-fifo-group",
                  "--count", "800", "--concurrency", "4", "--fifo-groups", "4"])
    assert (result["lost"], result["duplicated"], result["out_of_order"]) == (0, 0, 0)
    assert result["unique"] == 800
