#!/usr/bin/env python3
"""Side-by-side benchmark: maintenance-app, nginx (`return 503`, same body) and the reference Flask app.

Started by bench/run (which builds the binary and the Flask virtual environment); run
`bench/run --help` for the options. Python standard library only; the load generator is wrk.

Method, in short:
  * every server is pinned to one core (BENCH_SERVER_CPU, default 0), wrk to another
    (BENCH_CLIENT_CPU, default 1), and this driver runs on wrk's core;
  * four configurations: keep-alive and a new connection per request (`Connection: close`),
    each at 50 and 1000 connections; GET / on every server;
  * BENCH_RUNS runs (default 3) of BENCH_DURATION seconds (default 10) per server and
    configuration, interleaved server by server (A, B, C, A, B, C, ...), medians reported;
  * server CPU time per request = utime + stime of all the server's processes (from
    /proc/PID/stat) over the run, divided by the requests wrk completed;
  * idle RSS = VmRSS after start-up and one request; peak RSS = VmHWM after all runs (both summed
    over the server's processes: nginx's master and workers);
  * exec to first answer = from just before the server is spawned to the first HTTP answer on a
    socket polled in a tight loop, median of BENCH_STARTS (default 5) starts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
MESSAGE = "System currently down for maintenance"  # the reference manifest's MAINTENANCE_MESSAGE
CLK_TCK = os.sysconf("SC_CLK_TCK")  # what `getconf CLK_TCK` prints
MIB = 1024 * 1024

# Targets from issues 2 and 5.
RPS_VS_NGINX = 1.2
RPS_VS_FLASK = 50.0
IDLE_RSS_MIB = 4.0
PEAK_RSS_MIB = 16.0
FIRST_ANSWER_MS = 10.0
BINARY_BYTES = 3_000_000  # "3 MB", read as 3,000,000 bytes (stricter than 3 MiB)

# The reference app as REFERENCE-APP.md describes fabianlee/cf-python-maintenancepage's
# maintenance.py: Flask's development server, the message read per request, four routes.
FLASK_APP = '''\
import os
from flask import Flask, jsonify

app = Flask(__name__)
port = int(os.getenv("PORT"))


@app.route("/")
def index():
    return "INDEX: " + os.getenv("MAINTENANCE_MESSAGE")


@app.route("/503")
def error503():
    return "<h1>503 " + os.getenv("MAINTENANCE_MESSAGE") + "</h1>", 503


@app.route("/json")
def json():
    resp = jsonify(type="Exception", status=503, response=os.getenv("MAINTENANCE_MESSAGE"))
    resp.headers["StatusHeader"] = "Status: maintenance window"
    return resp


@app.route("/<path:path>")
def fallback(path):
    return "FALLBACK trying to reach /" + path + ": " + os.getenv("MAINTENANCE_MESSAGE")


if __name__ == "__main__":
    # The reference binds 0.0.0.0; the benchmark keeps all traffic on loopback.
    app.run(host="127.0.0.1", port=port)
'''


class BenchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_pinned(argv, cpu, **kw) -> subprocess.Popen:
    """Popen with the child's CPU affinity set to {cpu}, as `taskset -c cpu` would, without an
    extra exec: the driver switches its own affinity for the fork and back right after."""
    if cpu is None:
        return subprocess.Popen(argv, **kw)
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        return subprocess.Popen(argv, **kw)
    finally:
        os.sched_setaffinity(0, old)


def proc_children(pid: int) -> list[int]:
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
        return kids
    except OSError:
        pass
    for entry in os.listdir("/proc"):  # kernels without /proc/PID/task/TID/children
        if entry.isdigit():
            try:
                if stat_fields(int(entry))[1] == pid:
                    kids.append(int(entry))
            except OSError:
                pass
    return kids


def stat_fields(pid: int) -> tuple[int, int, int]:
    """(utime + stime in ticks, ppid, state) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    rest = data[data.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15, ppid field 4.
    return int(rest[11]) + int(rest[12]), int(rest[1]), rest[0]


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += stat_fields(pid)[0]
        except OSError:
            pass
    return total


def status_kib(pids: list[int], key: str) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def pss_kib(pids: list[int]) -> int | None:
    """Proportional set size: shared pages divided among the processes that map them."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            return None
    return total


def stop_process(p: subprocess.Popen, extra_pids: list[int] = ()) -> None:
    """SIGTERM the process we started, then SIGKILL it and the children we recorded for it."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for pid in extra_pids:
        try:
            if stat_fields(pid)[1] == p.pid:  # still the child of ours, not a recycled PID
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# HTTP probes


REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def raw_get(port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(REQUEST)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def wait_answer(port: int, p: subprocess.Popen, timeout: float, what: str, logfile: Path | None) -> float:
    """Polls the port in a tight loop until an HTTP answer arrives; returns perf_counter() then."""
    deadline = time.perf_counter() + timeout
    while True:
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(REQUEST)
            if s.recv(16).startswith(b"HTTP/1."):
                return time.perf_counter()
        except OSError:
            pass
        finally:
            s.close()
        if p.poll() is not None:
            tail = logfile.read_text(errors="replace")[-2000:] if logfile and logfile.exists() else ""
            raise BenchError(f"{what} exited with status {p.returncode} before answering\n{tail}")
        if time.perf_counter() > deadline:
            raise BenchError(f"{what} did not answer on port {port} within {timeout:.0f} s")


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    key: str
    label: str
    expected_status: int
    cpu: int | None
    tmp: Path
    processes: int = 1  # how many processes the server runs once it is up (nginx: master + workers)
    proc: subprocess.Popen | None = None
    port: int = 0
    version: str = ""
    response: bytes = b""
    idle_rss_kib: int = 0
    idle_pss_kib: int | None = None
    peak_rss_kib: int = 0
    first_answer_ms: list[float] = field(default_factory=list)

    def command(self, port: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def _spawn(self, port: int, name: str) -> tuple[subprocess.Popen, Path]:
        workdir = self.tmp / name
        workdir.mkdir(parents=True, exist_ok=True)
        argv, env = self.command(port, workdir)
        logfile = workdir / "server.log"
        with open(logfile, "wb") as out:
            p = spawn_pinned(argv, self.cpu, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        return p, logfile

    def start(self) -> None:
        self.port = free_port()
        self.proc, logfile = self._spawn(self.port, "bench")
        wait_answer(self.port, self.proc, 60, self.label, logfile)
        # nginx's master may still be forking its second worker when the first one answers.
        deadline = time.monotonic() + 10
        while len(self.pids()) < self.processes:
            if time.monotonic() > deadline:
                raise BenchError(f"{self.label} runs {len(self.pids())} processes, expected {self.processes}")
            time.sleep(0.01)
        self.response = raw_get(self.port)
        time.sleep(0.2)
        self.idle_rss_kib = status_kib(self.pids(), "VmRSS")
        self.idle_pss_kib = pss_kib(self.pids())

    def restart(self) -> None:
        """A fresh process on a fresh port, keeping the first start's idle figures and the peak so far.

        Each configuration starts from a fresh server so that no cell inherits another's state:
        musl's allocator, for one, sizes its groups by the load it has seen, and a server that had
        1000 connections before answers new connections with less work than a fresh one."""
        self.peak_rss_kib = max(self.peak_rss_kib, status_kib(self.pids(), "VmHWM"))
        idle = self.idle_rss_kib, self.idle_pss_kib
        self.stop()
        self.start()
        self.idle_rss_kib, self.idle_pss_kib = idle

    def pids(self) -> list[int]:
        """The server's process and its children, looked up afresh each time."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid] + proc_children(self.proc.pid)

    def measure_start(self, n: int) -> None:
        for i in range(n):
            port = free_port()
            # Everything the spawn needs is written first, so the clock starts just before exec.
            workdir = self.tmp / f"start{i}"
            workdir.mkdir(parents=True, exist_ok=True)
            argv, env = self.command(port, workdir)
            logfile = workdir / "server.log"
            with open(logfile, "wb") as out:
                t0 = time.perf_counter()
                p = spawn_pinned(argv, self.cpu, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            try:
                t1 = wait_answer(port, p, 60, self.label, logfile)
                self.first_answer_ms.append((t1 - t0) * 1000)
            finally:
                stop_process(p, proc_children(p.pid) if p.poll() is None else [])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, self.pids()[1:])
            self.proc = None

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


class MaintenanceApp(Server):
    def __init__(self, binary: Path, cpu, tmp):
        super().__init__("app", "maintenance-app", 503, cpu, tmp)
        self.binary = binary
        self.version = "dist build"

    def command(self, port, workdir):
        env = dict(os.environ)
        env.update(
            PORT=str(port),
            MAINTENANCE_MODE="html",
            MAINTENANCE_MESSAGE=MESSAGE,
            LOG_FORMAT="text",
            MAINTENANCE_STATS_INTERVAL="0",
            NO_COLOR="1",
        )
        return [str(self.binary)], env


class Nginx(Server):
    """Debian's nginx, 2 workers, `return 503` with maintenance-app's body byte for byte."""

    TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

    def __init__(self, body: bytes, headers: dict[str, str], cpu, tmp, backlog: int, max_connections: int):
        super().__init__("nginx", "nginx", 503, cpu, tmp, processes=3)
        self.worker_connections = max(1024, 1 << (max_connections + 64).bit_length())
        self.body = body
        self.headers = headers
        self.backlog = backlog
        v = subprocess.run(["nginx", "-V"], capture_output=True, text=True)
        self.build = v.stderr
        m = re.search(r"nginx/(\S+)", v.stderr)
        self.version = m.group(1) if m else "?"

    @staticmethod
    def quote(s: str) -> str:
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("$", "${dollar}") + "'"

    def config(self, port: int, workdir: Path) -> str:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        nofile = 65536 if nofile == resource.RLIM_INFINITY else nofile
        temp = "".join(
            f"    {name}_temp_path {workdir}/{name};\n"
            for name in self.TEMP_PATHS
            if name == "client_body" or f"--without-http_{name}_module" not in self.build
        )
        # Same answer as maintenance-app apart from Date/Server: its body, its Content-Type and
        # its other headers (`always`, since add_header skips error statuses otherwise).
        extra = "".join(
            f"        add_header {k} {self.quote(v)} always;\n"
            for k, v in self.headers.items()
            if k not in ("content-type", "content-length", "date", "server", "connection")
        )
        charset = ""
        ctype = self.headers.get("content-type", "text/html")
        if "charset=utf-8" in ctype.replace(" ", "").lower():
            charset = "        charset utf-8;\n"
        return f"""\
worker_processes 2;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
worker_rlimit_nofile {nofile};
events {{
    # Room for every benchmark connection in one worker, no more: nginx allocates all
    # worker_connections up front, so an oversized value would only inflate its RSS.
    worker_connections {self.worker_connections};
}}
http {{
    access_log off;
{temp}    # maintenance-app (hyper) never closes a keep-alive connection after N requests.
    keepalive_requests 1000000;
    geo $dollar {{ default "$"; }}
    server {{
        # Same listen backlog as maintenance-app (tokio's default, 1024).
        listen 127.0.0.1:{port} backlog={self.backlog};
        default_type {ctype.split(';')[0].strip()};
{charset}{extra}        location / {{
            return 503 {self.quote(self.body.decode('utf-8'))};
        }}
    }}
}}
"""

    def command(self, port, workdir):
        conf = workdir / "nginx.conf"
        conf.write_text(self.config(port, workdir), encoding="utf-8")
        return ["nginx", "-p", f"{workdir}/", "-e", f"{workdir}/error.log", "-c", str(conf)], dict(os.environ)

    def check_config(self) -> None:
        workdir = self.tmp / "check"
        workdir.mkdir(parents=True, exist_ok=True)
        argv, env = self.command(free_port(), workdir)
        r = subprocess.run(argv + ["-t", "-q"], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise BenchError(f"nginx rejects the generated configuration {workdir}/nginx.conf:\n{r.stderr}")


class FlaskApp(Server):
    def __init__(self, python: Path, cpu, tmp):
        super().__init__("flask", "Flask", 200, cpu, tmp)
        self.python = python
        r = subprocess.run(
            [str(python), "-c", "import sys, importlib.metadata as m; print(m.version('flask'), m.version('werkzeug'), sys.version.split()[0])"],
            capture_output=True,
            text=True,
            check=True,
        )
        flask, werkzeug, py = r.stdout.split()
        self.version = f"Flask {flask}, Werkzeug {werkzeug}, Python {py}"

    def command(self, port, workdir):
        (workdir / "maintenance.py").write_text(FLASK_APP)
        env = dict(os.environ)
        env.update(PORT=str(port), MAINTENANCE_MESSAGE=MESSAGE, PYTHONDONTWRITEBYTECODE="1")
        return [str(self.python), "maintenance.py"], env


# ---------------------------------------------------------------------------------------------
# wrk


@dataclass
class Config:
    key: str
    label: str
    connections: int
    close: bool


@dataclass
class Run:
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    non_2xx_3xx: int = 0
    cpu_us_per_req: float | None = None
    server_cpu_pct: float = 0.0
    wrk_cpu_pct: float = 0.0


UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise BenchError(f"cannot read wrk time {text!r}")
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def parse_wrk(out: str) -> Run:
    run = Run()
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out)
    if not m:
        raise BenchError(f"unexpected wrk output:\n{out}")
    run.requests = int(m.group(1))
    run.seconds = to_ms(m.group(2) + m.group(3)) / 1000
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    run.rps = float(m.group(1)) if m else run.requests / max(run.seconds, 1e-9)
    if run.requests:
        for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
            m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
            if m:
                setattr(run, attr, to_ms(m.group(1)))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        run.errors = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), m.groups()) if int(v)}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    run.non_2xx_3xx = int(m.group(1)) if m else 0
    return run


def settle(servers: list[Server], quiet_ticks: int = 1, timeout: float = 30.0) -> None:
    """Waits until no server burns CPU (e.g. Flask still draining 1000 connections), so one
    server's tail does not land in the next server's run."""
    pids = [p for s in servers for p in s.pids()]
    deadline = time.monotonic() + timeout
    prev = cpu_ticks(pids)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_ticks(pids)
        if now - prev <= quiet_ticks:
            return
        prev = now
    log(f"servers still busy after {timeout:.0f} s; going on")


def run_wrk(server: Server, cfg: Config, duration: int, args, all_servers: list[Server]) -> Run:
    argv = ["wrk", "-t", str(args.wrk_threads), "-c", str(cfg.connections), "-d", f"{duration}s", "--latency", "--timeout", f"{args.wrk_timeout:g}s"]
    if cfg.close:
        argv += ["-H", "Connection: close"]
    argv.append(server.url())
    if args.client_cpu is not None:
        argv = ["taskset", "-c", str(args.client_cpu)] + argv
    settle(all_servers)
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    pids0 = server.pids()
    ticks0 = cpu_ticks(pids0)
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise BenchError(f"wrk failed ({p.returncode}): {' '.join(argv)}\n{p.stdout}{p.stderr}")
    settle([server])  # the server's work for this run includes closing its connections
    pids1 = server.pids()
    if set(pids1) != set(pids0):
        raise BenchError(f"{server.label}'s processes changed during the run ({pids0} → {pids1}); CPU time would be wrong")
    ticks = cpu_ticks(pids1) - ticks0
    run = parse_wrk(p.stdout)
    server_s = ticks / CLK_TCK
    run.server_cpu_pct = 100 * server_s / max(run.seconds, 1e-9)
    wrk_s = (after_children.ru_utime + after_children.ru_stime) - (before_children.ru_utime + before_children.ru_stime)
    run.wrk_cpu_pct = 100 * wrk_s / max(wall, 1e-9)
    if run.requests:
        run.cpu_us_per_req = server_s * 1e6 / run.requests
    if server.proc is not None and server.proc.poll() is not None:
        raise BenchError(f"{server.label} exited during the run (status {server.proc.returncode})")
    return run


# ---------------------------------------------------------------------------------------------
# Report


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_num(v, digits=0, suffix=""):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}{suffix}"
    return f"{v:,.{digits}f}{suffix}"


def fmt_ms(v):
    if v is None:
        return "–"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:,.0f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r, digits=2):
    """Ratios near a target's bound (1, 1.2) get `digits` decimals, so 1.197 does not read as 1.20."""
    if r is None:
        return "–"
    return f"{r:.{digits}f}×" if r < 10 else f"{r:,.0f}×"


def verdict(ok: bool | None, detail: str = "") -> str:
    if ok is None:
        return "n/a" + (f" ({detail})" if detail else "")
    return "PASS" if ok else f"**FAIL**" + (f" ({detail})" if detail else "")


def binary_facts(path: Path) -> dict:
    """Size, and from the ELF headers whether it is static (no PT_INTERP) and stripped (no .symtab)."""
    data = path.read_bytes()
    facts = {"bytes": len(data), "static": None, "stripped": None}
    if data[:4] != b"\x7fELF" or data[4] != 2:  # only 64-bit little-endian ELF is inspected
        return facts
    import struct

    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    facts["static"] = all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))
    facts["stripped"] = all(struct.unpack_from("<I", data, shoff + i * shentsize + 4)[0] != 2 for i in range(shnum))
    return facts


def build_report(args, servers: dict[str, Server], configs: list[Config], results, meta) -> tuple[str, list[str]]:
    app, ngx, flask = servers.get("app"), servers.get("nginx"), servers.get("flask")
    order = [s for s in (app, ngx, flask) if s is not None]
    failures: list[str] = []
    lines = []
    w = lines.append

    w(f"# maintenance-app benchmark — {meta['date']}")
    w("")
    w(f"- machine: {meta['cpu']}, {meta['ncpu']} CPUs, Linux {platform.release()}; load average before: {meta['load_before']}, after: {meta['load_after']}")
    w(
        f"- method: servers pinned to CPU {args.server_cpu}, wrk ({args.wrk_threads} thread, --timeout {args.wrk_timeout:g}s) "
        f"pinned to CPU {args.client_cpu}; fresh server processes per configuration; {args.runs} run(s) × {args.duration:g} s per cell, interleaved, medians; GET / over 127.0.0.1"
    )
    b = meta["binary"]
    kind = ", ".join(x for x in ("static" if b["static"] else "dynamic" if b["static"] is False else "", "stripped" if b["stripped"] else "not stripped" if b["stripped"] is False else "") if x)
    w(f"- maintenance-app: `{args.binary}` ({kind}), MAINTENANCE_MODE=html, answers 503 with a {len(app.body_bytes):,}-byte page")
    if ngx:
        w(f"- nginx {ngx.version}: 2 workers, `return 503` with the same body bytes and the same headers (`add_header … always`), worker_connections {ngx.worker_connections}, access log off, keepalive_requests 1000000, backlog {ngx.backlog}")
    if flask:
        w(f"- Flask: reference `maintenance.py` on the development server ({flask.version}), GET / → 200 `INDEX: …`")
    else:
        w(f"- Flask: not measured ({meta.get('flask_skipped', 'left out')})")
    w("- response on the wire (headers + body): " + ", ".join(f"{s.label} {len(s.response):,} B" for s in order))
    w("")

    cols = ["configuration", "metric"] + [s.label for s in order]
    if ngx:
        cols.append("app/nginx")
    if flask:
        cols.append("app/Flask")
    cols += ["target", "result"]
    w("| " + " | ".join(cols) + " |")
    w("|" + "|".join(["---", "---"] + ["---:"] * (len(cols) - 4) + ["---", "---"]) + "|")

    def row(config_label, metric, values, r_ngx=None, r_flask=None, target="", result=""):
        cells = [config_label, metric] + values
        if ngx:
            cells.append(fmt_ratio(r_ngx))
        if flask:
            cells.append(fmt_ratio(r_flask))
        cells += [target, result]
        w("| " + " | ".join(cells) + " |")

    for cfg in configs:
        med = {}
        for s in order:
            rs = results[cfg.key][s.key]
            med[s.key] = {
                "rps": median([r.rps for r in rs]),
                "p50": median([r.p50_ms for r in rs]),
                "p99": median([r.p99_ms for r in rs]),
                "cpu": median([r.cpu_us_per_req for r in rs]),
                "srv": median([r.server_cpu_pct for r in rs]),
                "wrk": median([r.wrk_cpu_pct for r in rs]),
                "errors": {},
                "requests": sum(r.requests for r in rs),
            }
            for r in rs:
                for k, v in r.errors.items():
                    med[s.key]["errors"][k] = med[s.key]["errors"].get(k, 0) + v
                bad = r.non_2xx_3xx if s.expected_status < 300 else r.requests - r.non_2xx_3xx
                if bad:
                    med[s.key]["errors"]["unexpected status"] = med[s.key]["errors"].get("unexpected status", 0) + bad
        a = med["app"]
        n = med.get("nginx")
        f = med.get("flask")

        def get(key, m):
            return m[key] if m else None

        # req/s
        r_n = ratio(a["rps"], get("rps", n))
        r_f = ratio(a["rps"], get("rps", f))
        targets, results_txt = [], []
        if ngx:
            targets.append(f"≥ {RPS_VS_NGINX:g}× nginx")
            ok = r_n is not None and r_n >= RPS_VS_NGINX
            results_txt.append(verdict(ok, "" if ok else f"{r_n:.3f}×" if r_n else "no data"))
            if not ok:
                failures.append(f"{cfg.label}: req/s {r_n:.3f}× nginx (target ≥ {RPS_VS_NGINX:g}×)" if r_n else f"{cfg.label}: req/s: no data")
        if flask:
            targets.append(f"≥ {RPS_VS_FLASK:g}× Flask")
            ok = r_f is not None and r_f >= RPS_VS_FLASK
            if get("rps", f) == 0 and a["rps"]:
                ok, r_f = True, None  # Flask answered nothing at all
            results_txt.append(verdict(ok, "" if ok else f"{r_f:.1f}×" if r_f else "no data"))
            if not ok:
                failures.append(f"{cfg.label}: req/s {fmt_ratio(r_f)} Flask (target ≥ {RPS_VS_FLASK:g}×)")
        row(f"**{cfg.label}**", "req/s", [fmt_num(med[s.key]["rps"]) for s in order], r_n, r_f, ", ".join(targets), " / ".join(results_txt))
        # latency
        row("", "p50 ms", [fmt_ms(med[s.key]["p50"]) for s in order], ratio(a["p50"], get("p50", n)), ratio(a["p50"], get("p50", f)))
        r_n = ratio(a["p99"], get("p99", n))
        t, res = "", ""
        if ngx:
            ok = a["p99"] is not None and n["p99"] is not None and a["p99"] <= n["p99"]
            t, res = "≤ nginx", verdict(ok, "" if ok else f"{fmt_ms(a['p99'])} vs {fmt_ms(n['p99'])} ms, {r_n:.3f}×" if r_n else "no data")
            if not ok:
                failures.append(f"{cfg.label}: p99 {fmt_ms(a['p99'])} ms vs nginx {fmt_ms(n['p99'])} ms ({fmt_ratio(r_n, 3)}, target ≤ 1×)")
        row("", "p99 ms", [fmt_ms(med[s.key]["p99"]) for s in order], r_n, ratio(a["p99"], get("p99", f)), t, res)
        # CPU
        r_n = ratio(a["cpu"], get("cpu", n))
        t, res = "", ""
        if ngx:
            ok = a["cpu"] is not None and n["cpu"] is not None and a["cpu"] <= n["cpu"]
            t, res = "≤ nginx", verdict(ok, "" if ok else f"{r_n:.3f}×" if r_n else "no data")
            if not ok:
                failures.append(f"{cfg.label}: CPU/request {fmt_num(a['cpu'], 2)} µs vs nginx {fmt_num(n['cpu'], 2)} µs ({fmt_ratio(r_n, 3)}, target ≤ 1×)")
        row("", "server CPU µs/req", [fmt_num(med[s.key]["cpu"], 2) for s in order], r_n, ratio(a["cpu"], get("cpu", f)), t, res)
        row("", "server CPU % of core", [fmt_num(med[s.key]["srv"]) for s in order])
        wrk_cells = []
        for s in order:
            v = med[s.key]["wrk"]
            wrk_cells.append(fmt_num(v) + (" ⚠" if v is not None and v >= 95 else ""))
        row("", "wrk CPU % of core", wrk_cells)
        err_cells = []
        app_err = False
        for s in order:
            e = med[s.key]["errors"]
            err_cells.append(", ".join(f"{k} {v:,}" for k, v in e.items()) if e else "0")
            if s.key == "app" and e:
                app_err = True
        row("", f"errors (all runs)", err_cells, target="none (app)", result=verdict(not app_err, "see errors"))
        if app_err:
            failures.append(f"{cfg.label}: maintenance-app had socket errors/timeouts: {err_cells[0]}")

    # Whole-process figures.
    idle = {s.key: s.idle_rss_kib / 1024 for s in order}
    peak = {s.key: s.peak_rss_kib / 1024 for s in order}
    first = {s.key: median(s.first_answer_ms) for s in order}
    ok = idle["app"] <= IDLE_RSS_MIB
    row("**process**", "idle RSS MiB", [f"{idle[s.key]:.2f}" for s in order], ratio(idle["app"], idle.get("nginx")), ratio(idle["app"], idle.get("flask")), f"≤ {IDLE_RSS_MIB:g} MiB", verdict(ok, f"{idle['app']:.2f} MiB"))
    if not ok:
        failures.append(f"idle RSS {idle['app']:.2f} MiB (target ≤ {IDLE_RSS_MIB:g} MiB)")
    if all(s.idle_pss_kib is not None for s in order):
        pss = {s.key: s.idle_pss_kib / 1024 for s in order}
        row("", "idle PSS MiB (shared pages split)", [f"{pss[s.key]:.2f}" for s in order], ratio(pss["app"], pss.get("nginx")), ratio(pss["app"], pss.get("flask")))
    ok = peak["app"] <= PEAK_RSS_MIB
    row("", "peak RSS MiB (VmHWM, all runs)", [f"{peak[s.key]:.2f}" for s in order], ratio(peak["app"], peak.get("nginx")), ratio(peak["app"], peak.get("flask")), f"≤ {PEAK_RSS_MIB:g} MiB", verdict(ok, f"{peak['app']:.2f} MiB"))
    if not ok:
        failures.append(f"peak RSS {peak['app']:.2f} MiB (target ≤ {PEAK_RSS_MIB:g} MiB)")
    ok = first["app"] is not None and first["app"] <= FIRST_ANSWER_MS
    row(
        "",
        f"exec → first answer ms (median of {args.starts})",
        [fmt_ms(first[s.key]) for s in order],
        ratio(first["app"], first.get("nginx")),
        ratio(first["app"], first.get("flask")),
        f"≤ {FIRST_ANSWER_MS:g} ms",
        verdict(ok, f"{fmt_ms(first['app'])} ms"),
    )
    if not ok:
        failures.append(f"exec to first answer {fmt_ms(first['app'])} ms (target ≤ {FIRST_ANSWER_MS:g} ms)")
    size_ok = b["bytes"] <= BINARY_BYTES and bool(b["static"]) and bool(b["stripped"])
    detail = f"{b['bytes']:,} B = {b['bytes'] / 1e6:.2f} MB" + ("" if b["static"] else ", not static") + ("" if b["stripped"] else ", not stripped")
    row("**binary**", "size, stripped static", [f"{b['bytes']:,} B"] + ["–"] * (len(order) - 1), target=f"≤ 3 MB static", result=verdict(size_ok, detail))
    if not size_ok:
        failures.append(f"binary: {detail} (target ≤ 3 MB, stripped, static)")

    w("")
    w("ratios are maintenance-app ÷ other (req/s: higher is better; latency, CPU, memory, time: lower is better).")
    w("RSS sums nginx's master and 2 workers, counting the pages they share once per process; PSS splits them.")
    w("⚠ = wrk used ≥ 95 % of its core: the load generator, not the server, may be the limit there.")
    w("Latencies exclude requests wrk timed out; server CPU % below 100 with wrk below 100 means other processes took the cores.")
    w("")
    if failures:
        w(f"**{len(failures)} target(s) missed:**")
        for x in failures:
            w(f"- {x}")
    else:
        w("**All targets met.**")
    if meta.get("notes"):
        w("")
        for x in meta["notes"]:
            w(f"- note: {x}")
    return "\n".join(lines) + "\n", failures


# ---------------------------------------------------------------------------------------------
# Main


def env_default(name, cast, default):
    v = os.environ.get(name)
    return cast(v) if v not in (None, "") else default


def parse_args():
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark maintenance-app against nginx and the reference Flask app (see bench/README.md).",
    )
    p.add_argument("--binary", type=Path, required=True, help="maintenance-app binary (bench/run builds and passes it)")
    p.add_argument("--flask-python", type=Path, help="python of the venv with Flask (bench/run passes it); Flask is left out without it")
    p.add_argument("--duration", type=int, default=env_default("BENCH_DURATION", int, 10), help="seconds per run [BENCH_DURATION, 10]")
    p.add_argument("--runs", type=int, default=env_default("BENCH_RUNS", int, 3), help="runs per cell, median reported [BENCH_RUNS, 3]")
    p.add_argument("--warmup", type=int, default=env_default("BENCH_WARMUP", int, 1), help="seconds of unrecorded load per server and configuration, 0 for none [BENCH_WARMUP, 1]")
    p.add_argument("--starts", type=int, default=env_default("BENCH_STARTS", int, 5), help="starts for exec-to-first-answer [BENCH_STARTS, 5]")
    p.add_argument("--connections", default=os.environ.get("BENCH_CONNECTIONS", "50,1000"), help="comma-separated connection counts [BENCH_CONNECTIONS, 50,1000]")
    p.add_argument("--servers", default=os.environ.get("BENCH_SERVERS", "app,nginx,flask"), help="which of app,nginx,flask to run [BENCH_SERVERS]")
    p.add_argument("--server-cpu", type=int, default=env_default("BENCH_SERVER_CPU", int, 0), help="core for the servers [BENCH_SERVER_CPU, 0]")
    p.add_argument("--client-cpu", type=int, default=env_default("BENCH_CLIENT_CPU", int, 1), help="core for wrk and this driver [BENCH_CLIENT_CPU, 1]")
    p.add_argument("--wrk-threads", type=int, default=env_default("BENCH_WRK_THREADS", int, 1), help="wrk threads [BENCH_WRK_THREADS, 1]")
    p.add_argument("--wrk-timeout", type=float, default=env_default("BENCH_WRK_TIMEOUT", float, 2.0), help="wrk --timeout seconds [BENCH_WRK_TIMEOUT, 2]")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "latest.md", help="where the table is written too")
    args = p.parse_args()
    if args.duration < 1 or args.runs < 1 or args.starts < 1 or args.warmup < 0 or args.wrk_threads < 1:
        p.error("BENCH_DURATION, BENCH_RUNS, BENCH_STARTS and BENCH_WRK_THREADS must be at least 1, BENCH_WARMUP at least 0 (whole seconds)")
    return args


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> int:
    args = parse_args()
    servers_wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    if "app" not in servers_wanted:
        servers_wanted.insert(0, "app")
    conns = [int(c) for c in args.connections.split(",") if c.strip()]
    configs = [Config(f"ka{c}", f"keep-alive c={c}", c, False) for c in conns] + [Config(f"new{c}", f"new conn c={c}", c, True) for c in conns]
    cpus = sorted(os.sched_getaffinity(0))
    notes = []
    if args.server_cpu not in cpus or args.client_cpu not in cpus or args.server_cpu == args.client_cpu:
        notes.append(f"cannot pin server to CPU {args.server_cpu} and wrk to CPU {args.client_cpu} (CPUs available: {cpus}); running unpinned")
        log(notes[-1])
        args.server_cpu = args.client_cpu = None
    else:
        os.sched_setaffinity(0, {args.client_cpu})  # this driver (and its pollers) stays off the server's core
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile != resource.RLIM_INFINITY and nofile < max(conns) + 100:
        raise BenchError(f"open-file limit {nofile} is too low for {max(conns)} connections; run through bench/run")

    tmp = Path(tempfile.mkdtemp(prefix="maintenance-bench-"))
    started: list[Server] = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "ncpu": os.cpu_count(),
        "load_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "binary": binary_facts(args.binary),
        "notes": notes,
    }
    try:
        servers: dict[str, Server] = {}
        app = MaintenanceApp(args.binary.resolve(), args.server_cpu, tmp / "app")
        log("starting maintenance-app")
        started.append(app)  # stopped in `finally` even if it never answers
        app.start()
        status, headers, body = parse_response(app.response)
        if status != 503:
            raise BenchError(f"maintenance-app answered {status}, expected 503")
        app.body_bytes = body
        servers["app"] = app
        if "nginx" in servers_wanted:
            ngx = Nginx(body, headers, args.server_cpu, tmp / "nginx", backlog=1024, max_connections=max(conns))
            ngx.check_config()
            log(f"starting nginx {ngx.version}")
            started.append(ngx)  # stopped in `finally` even if it never answers
            ngx.start()
            n_status, _, n_body = parse_response(ngx.response)
            if n_status != 503 or n_body != body:
                raise BenchError(f"nginx answers {n_status} with a {len(n_body)}-byte body; expected 503 and maintenance-app's {len(body)} bytes")
            servers["nginx"] = ngx
        if "flask" in servers_wanted:
            if args.flask_python is None:
                meta["flask_skipped"] = "BENCH_FLASK=0, or bench/run could not set up bench/.venv: see its message"
            else:
                fl = FlaskApp(args.flask_python.absolute(), args.server_cpu, tmp / "flask")
                log(f"starting the Flask reference app ({fl.version})")
                started.append(fl)  # stopped in `finally` even if it never answers
                fl.start()
                f_status, _, f_body = parse_response(fl.response)
                if f_status != 200 or f_body != f"INDEX: {MESSAGE}".encode():
                    raise BenchError(f"the Flask app answers {f_status} {f_body[:80]!r}; expected 200 'INDEX: {MESSAGE}'")
                servers["flask"] = fl
        order = list(servers.values())

        for s in order:
            log(f"exec → first answer: {s.label}, {args.starts} starts")
            s.measure_start(args.starts)

        results = {c.key: {s.key: [] for s in order} for c in configs}
        total = len(configs) * len(order) * (args.runs * args.duration + (args.warmup if args.warmup > 0 else 0))
        log(f"load: {len(configs)} configurations × {len(order)} servers × {args.runs} runs × {args.duration:g} s (≈ {total / 60:.1f} min of load)")
        for n, cfg in enumerate(configs):
            if n:
                for s in order:
                    s.restart()
            if args.warmup > 0:
                for s in order:
                    run_wrk(s, cfg, args.warmup, args, order)
            for i in range(args.runs):
                for s in order:
                    r = run_wrk(s, cfg, args.duration, args, order)
                    results[cfg.key][s.key].append(r)
                    errs = ", ".join(f"{k} {v}" for k, v in r.errors.items()) or "no errors"
                    log(
                        f"{cfg.label:<18} run {i + 1}/{args.runs} {s.label:<15} {r.rps:>10,.0f} req/s  p50 {fmt_ms(r.p50_ms):>7} ms  "
                        f"p99 {fmt_ms(r.p99_ms):>7} ms  cpu {fmt_num(r.cpu_us_per_req, 2):>7} µs/req  wrk {r.wrk_cpu_pct:3.0f}%  {errs}"
                    )
        for s in order:
            s.peak_rss_kib = max(s.peak_rss_kib, status_kib(s.pids(), "VmHWM"))
        meta["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])

        report, failures = build_report(args, servers, configs, results, meta)
        print(report)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        raw = {
            "meta": meta,
            "args": {k: str(v) for k, v in vars(args).items()},
            "servers": {s.key: {"label": s.label, "version": s.version, "idle_rss_kib": s.idle_rss_kib, "idle_pss_kib": s.idle_pss_kib, "peak_rss_kib": s.peak_rss_kib, "first_answer_ms": s.first_answer_ms} for s in order},
            "runs": {c: {k: [vars(r) for r in v] for k, v in d.items()} for c, d in results.items()},
            "failures": failures,
        }
        args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
        log(f"table written to {args.out} (raw runs: {args.out.with_suffix('.json')})")
        return 0
    except BenchError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; stopping the servers")
        return 130
    finally:
        for s in started:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
