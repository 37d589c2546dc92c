#!/usr/bin/env python3
"""Cold start to READY=1 and idle RSS of the peercam daemon.

Starts the release binary with the demo's test source and embedded broker
under a real NOTIFY_SOCKET, as systemd would, and prints how long each run
took from exec to READY=1 (camera pipeline running, broker link online),
then its RSS after a few idle seconds. A benchmark: it prints, never asserts.

    cargo build --release && python3 bench/cold-start.py [--runs 10] [--bin PATH]
"""
import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(directory):
    path = os.path.join(directory, "peercam.toml")
    with open(path, "w") as f:
        f.write(f"""
[device]
id = "bench"
[mqtt]
broker = "embedded"
[mqtt.embedded]
listen = "127.0.0.1:{free_port()}"
ws_listen = "127.0.0.1:{free_port()}"
[video]
source = "test"
width = 1280
height = 720
fps = 30
bitrate_kbps = 2000
[http]
listen = "127.0.0.1:{free_port()}"
""")
    return path


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_once(binary, idle_seconds):
    with tempfile.TemporaryDirectory(prefix="peercam-bench-") as directory:
        notify_path = os.path.join(directory, "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path, RUST_LOG="warn")
        started = time.monotonic()
        proc = subprocess.Popen([binary, "run", "-c", config(directory)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                message = notify.recv(4096).decode()
                if "READY=1" in message.splitlines():
                    ready_ms = (time.monotonic() - started) * 1000
                    break
            time.sleep(idle_seconds)
            return ready_ms, rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            notify.close()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before reading RSS")
    parser.add_argument("--bin", default=os.path.join(here, "..", "target", "release", "peercam"))
    args = parser.parse_args()
    results = [run_once(args.bin, args.idle) for _ in range(args.runs)]
    ready = [r for r, _ in results]
    rss = [m for _, m in results]
    print(f"peercam {os.path.realpath(args.bin)}; test source 1280x720@30, embedded broker; {args.runs} runs")
    print(f"exec -> READY=1: median {statistics.median(ready):.0f} ms "
          f"(min {min(ready):.0f}, max {max(ready):.0f})")
    print(f"RSS after {args.idle:.0f} s idle (no viewers): median {statistics.median(rss):.1f} MiB "
          f"(min {min(rss):.1f}, max {max(rss):.1f})")


if __name__ == "__main__":
    main()
