#!/usr/bin/env python3
"""Floods both cluster ports of a 2-node keyed cluster with keyless connections, on loopback only.

Starts two servers from the built jar (a shared cluster key, -Xmx256m so that direct memory, which
defaults to the heap limit, is small), waits until they see each other, then opens against node 1's
membership port and data port each: IDLE connections that send nothing, and PARTIAL connections that
declare a 1 MiB frame (on the membership port under the real key id, as an attacker who saw the wire
would) and send all of it but the last byte. Connections come from SOURCES loopback addresses
(127.0.0.2, 127.0.0.3, ...), so both the per-address and the total caps are exercised. It samples
node 1's RSS, counts how many flood connections the node still holds after 2 s, 10 s and 45 s, and
checks after each that both nodes list each other and that a write on node 2 is read on node 1.
Prints one JSON report. Every loop is bounded; both servers are stopped at the end.

Usage (from the repository root, after building kvstore-examples/target/kvstore-server.jar):
    python3 docs/scripts/cluster-flood.py [--idle 500] [--partial 300] [--sources 50] [--seed 1] [--jar J]
"""
import argparse
import base64
import json
import random
import os
import resource
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

JAR = "kvstore-examples/target/kvstore-server.jar"
FRAME = 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def http(method, url, body=None, timeout=5):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def members(node):
    status, body = http("GET", node["url"] + "/v1/cluster")
    if status != 200:
        return []
    return sorted(m.get("id") for m in json.loads(body).get("members", []))


def whole(nodes, key):
    """Both nodes list both; a write on node 2 is read on node 1 within 10 s."""
    ids = sorted(n["id"] for n in nodes)
    seen = [members(n) for n in nodes]
    put, _ = http("PUT", nodes[1]["url"] + "/put", {"key": key, "value": "v"})
    replicated = False
    deadline = time.time() + 10
    while time.time() < deadline and put == 200:
        status, body = http("GET", nodes[0]["url"] + "/get?key=" + key)
        if status == 200 and '"value":"v"' in body:
            replicated = True
            break
        time.sleep(0.2)
    return {"members_seen": seen, "all_see_all": all(s == ids for s in seen),
            "write_replicated": replicated}


def start(i, key_file, logs, seed=None):
    node = {"id": f"flood-{i}", "http": free_port(), "cluster": free_port(), "data": free_port()}
    node["url"] = f"http://127.0.0.1:{node['http']}"
    args = ["java", "-Xmx256m", "-jar", JAR, "--node-id", node["id"], "--host", "127.0.0.1",
            "--http-port", str(node["http"]), "--cluster-port", str(node["cluster"]),
            "--data-port", str(node["data"]), "--cluster-name", "flood",
            "--cluster-secret-file", key_file]
    if seed:
        args += ["--join", f"127.0.0.1:{seed['cluster']}"]
    log = open(os.path.join(logs, node["id"] + ".log"), "w")
    node["proc"] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while time.time() < deadline:
        if http("GET", node["url"] + "/ready", timeout=2)[0] == 200:
            return node
        if node["proc"].poll() is not None:
            raise SystemExit(f"{node['id']} exited with {node['proc'].returncode}; see {log.name}")
        time.sleep(0.3)
    raise SystemExit(f"{node['id']} not ready within 90 s")


def connect(port, source):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def partial_frame(s, head):
    """Declares a 1 MiB frame and sends all of it but the last byte; stops when the node closes."""
    body = head + b"\0" * (FRAME - len(head) - 1)
    try:
        s.sendall(struct.pack(">I", FRAME) + body)
    except OSError:
        pass  # closed by the node


def still_open(socks):
    n = 0
    for s in socks:
        try:
            s.setblocking(False)
            if s.recv(1) == b"":
                continue
            n += 1
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def flood(port, head, args, sources, opened):
    """Idle and partial connections interleaved (seeded order), so both kinds get slots."""
    kinds = ["idle"] * args.idle + ["partial"] * args.partial
    random.Random(args.seed).shuffle(kinds)
    socks = []
    for i, kind in enumerate(kinds):
        try:
            s = connect(port, sources[i % len(sources)])
        except OSError:
            opened["connect_failed"] += 1
            continue
        socks.append(s)
        if kind == "partial":
            threading.Thread(target=partial_frame, args=(s, head), daemon=True).start()
    return socks


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--idle", type=int, default=500)
    p.add_argument("--partial", type=int, default=300)
    p.add_argument("--sources", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jar", default="kvstore-examples/target/kvstore-server.jar",
                   help="the server jar (default: %(default)s)")
    args = p.parse_args()
    global JAR
    JAR = args.jar
    if not os.path.exists(JAR):
        raise SystemExit(f"build {JAR} first: ./mvnw -B -pl kvstore-examples -am package -DskipTests")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    sources = [f"127.0.0.{2 + i}" for i in range(min(args.sources, 250))]
    work = tempfile.mkdtemp(prefix="kvstore-flood-")
    key_file = os.path.join(work, "cluster.key")
    with open(key_file, "w") as f:
        f.write("k1 " + base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    os.chmod(key_file, 0o600)
    nodes = []
    report = {"seed": args.seed, "idle_per_port": args.idle, "partial_per_port": args.partial,
              "source_addresses": len(sources), "logs": work}
    try:
        nodes.append(start(1, key_file, work))
        nodes.append(start(2, key_file, work, seed=nodes[0]))
        deadline = time.time() + 30
        while time.time() < deadline and not whole(nodes, "warmup")["all_see_all"]:
            time.sleep(0.5)
        target = nodes[0]
        pid = target["proc"].pid
        report["before"] = {"rss_mib": rss_mib(pid), **whole(nodes, "before")}
        peak = [report["before"]["rss_mib"]]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                r = rss_mib(pid)
                if r:
                    peak[0] = max(peak[0], r)
                stop.wait(0.5)

        threading.Thread(target=sample, daemon=True).start()
        envelope = struct.pack(">IB", 0x4B564D31, 2) + b"k1"  # "KVM1", the real key id
        hello = bytes([0x01])  # a data-plane HELLO
        opened = {"connect_failed": 0}
        t0 = time.time()
        held = {"membership": flood(target["cluster"], envelope, args, sources, opened),
                "data": flood(target["data"], hello, args, sources, opened)}
        report["open_seconds"] = round(time.time() - t0, 1)
        report["connect_failed"] = opened["connect_failed"]
        for at in (2, 10, 45):
            time.sleep(max(0, t0 + at - time.time()))
            report[f"after_{at}s"] = {
                "still_open": {k: still_open(v) for k, v in held.items()},
                "rss_mib": rss_mib(pid), **whole(nodes, f"after-{at}")}
        stop.set()
        report["peak_rss_mib"] = peak[0]
        for v in held.values():
            for s in v:
                s.close()
        status, metrics = http("GET", target["url"] + "/metrics")
        report["metrics"] = {line.split()[0]: line.split()[1] for line in metrics.splitlines()
                             if line.startswith("kvstore_replication_")
                             and any(w in line for w in ("refused", "timedout", "authentication",
                                                         "malformed", "handshake"))}
        with open(os.path.join(work, "flood-1.log")) as f:
            text = f.read()
        report["node1_log"] = {"lines": text.count("\n"), "OutOfMemoryError": "OutOfMemoryError" in text,
                               "stack_trace_lines": text.count("\tat ")}
    finally:
        for n in nodes:
            n["proc"].terminate()
        for n in nodes:
            try:
                n["proc"].wait(30)
            except subprocess.TimeoutExpired:
                n["proc"].kill()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
