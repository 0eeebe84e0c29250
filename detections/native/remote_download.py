"""Kubernetes Pod Exec Remote Download over HTTPS (hardened): the Elastic curl/wget rule's intent.

A download tool (curl, wget, busybox wget, aria2c, httpie ... or an interpreter one-liner that
fetches) given an ``https://`` URL (scheme in any case, as the tools accept it). The allow-list
(loopback, ``kubernetes.default.svc``, health and OIDC/JWKS endpoints) is applied to each URL's
parsed host and path only, so ``-H 'X: localhost'`` or a second harmless URL hides nothing; and an
allow-listed URL still fires when what it returns is piped into a shell or interpreter, or (for
a health/OIDC path on another host) saved to a file. ``echo https://...`` is not a download.
"""

from __future__ import annotations

from auditstream.detections.exec.request import ExecRequest
from auditstream.detections.exec.shell_words import SimpleCommand
from auditstream.detections.rule_hit import Explanation

from .indicators import (
    allowed_host,
    allowed_path,
    code_text,
    compile_re2,
    hit,
    is_interpreter,
    runs_stdin,
    url_host_and_path,
)

DOWNLOADERS = frozenset(
    {
        "curl", "wget", "wget2", "aria2c", "axel", "fetch", "lwp-download", "lwp-request",
        "lwp-mirror", "GET", "http", "https", "xh", "xhs", "curlie", "httpie",
    }
)  # fmt: skip
# Options whose value is not a URL to fetch (header, referer, proxy, data, user agent ...).
_VALUE_OPTIONS = frozenset(
    {
        "-H", "--header", "-e", "--referer", "-x", "--proxy", "-A", "--user-agent", "-d",
        "--data", "--data-raw", "--data-binary", "--data-urlencode", "-F", "--form", "-b",
        "--cookie", "-u", "--user", "-U", "--proxy-user", "--post-data", "--json",
        "--preproxy", "--noproxy",
    }
)  # fmt: skip
_STDOUT_ONLY = frozenset({"-", "/dev/null", "/dev/stdout"})
_URL = compile_re2(r"""(?i)https://[^\s"'`<>()\\]+""")
_FETCH_CODE = compile_re2(
    r"(?i)urlopen|urlretrieve|urllib|requests\.|http\.client|httpx|LWP|HTTP::Tiny|getstore"
    r"|open-uri|URI\.open|Net::HTTP|file_get_contents|curl_init|copy\s*\(|fopen\s*\("
    r"|https\.get|https\.request|require\s*\(\s*[\"']https[\"']|fetch\s*\(|axios|invoke-webrequest|\biwr\b|\birm\b"
    r"|invoke-restmethod|downloadstring|downloadfile|socket\.http|wget"
)


def tool_urls(cmd: SimpleCommand) -> list[str]:
    """The https URLs a download tool is asked to fetch (option values skipped)."""
    urls: list[str] = []
    skip = False
    for arg in cmd.argv[1:]:
        if skip:
            skip = False
            continue
        if arg in _VALUE_OPTIONS:
            skip = True
            continue
        candidate = arg.split("=", 1)[1] if arg.startswith("--url=") else arg
        if candidate[:8].lower() == "https://":
            urls.append(candidate)
    return urls


def _saves_to_file(cmd: SimpleCommand) -> bool:
    """True when the download lands in a file (wget's default, curl ``-o FILE``/``-O``)."""
    if any(r.op in (">", ">>", ">|", "&>") and r.target not in _STDOUT_ONLY for r in cmd.redirects):
        return True
    argv = cmd.argv
    values = dict(zip(argv[1:], (*argv[2:], ""), strict=True))
    if cmd.name.startswith("wget"):
        if "--spider" in argv or any(a.endswith("O-") for a in argv):
            return False
        outputs = [
            v for a, v in values.items() if a == "--output-document" or _cluster_ends(a, "O")
        ]
        outputs += [a.split("=", 1)[1] for a in argv if a.startswith("--output-document=")]
        return not outputs or any(o not in _STDOUT_ONLY for o in outputs)
    if any(a in ("-O", "--remote-name", "--remote-name-all") or _cluster_has(a, "O") for a in argv):
        return True
    outputs = [v for a, v in values.items() if a == "--output" or _cluster_ends(a, "o")]
    return any(o not in _STDOUT_ONLY for o in outputs)


def _cluster_has(arg: str, letter: str) -> bool:
    return arg.startswith("-") and not arg.startswith("--") and letter in arg[1:]


def _cluster_ends(arg: str, letter: str) -> bool:
    return arg.startswith("-") and not arg.startswith("--") and arg.endswith(letter)


def _executed(cmd: SimpleCommand, cmds: tuple[SimpleCommand, ...]) -> bool:
    """True when a later stage of the same pipeline runs its stdin as a program."""
    return any(c.pipeline == cmd.pipeline and c.stage > cmd.stage and runs_stdin(c) for c in cmds)


def _allowed(url: str, cmd: SimpleCommand, cmds: tuple[SimpleCommand, ...]) -> bool:
    parsed = url_host_and_path(url)
    if parsed is None or _executed(cmd, cmds):
        return False
    host, path = parsed
    if allowed_host(host):
        return True
    return allowed_path(path) and not _saves_to_file(cmd)


def remote_download_https_hardened(
    request: ExecRequest, commands: tuple[SimpleCommand, ...]
) -> Explanation | None:
    """The registered predicate: the first non-allow-listed https fetch, in command order."""
    for cmd in commands:
        if cmd.name in DOWNLOADERS:
            urls, indicator = tool_urls(cmd), f"{cmd.name}_https"
        elif is_interpreter(cmd) and _FETCH_CODE.search(code_text(cmd)) is not None:
            urls, indicator = [m.group(0) for m in _URL.finditer(code_text(cmd))], "code_https"
        else:
            continue
        for url in urls:
            if not _allowed(url, cmd, commands):
                return hit(indicator, cmd, request, url)
    return None
