"""The Helm chart (compose/helm/auditstream): linted, rendered, and every rendered document
validated strictly offline, the way an API server with fieldValidation=Strict would take it.

`helm` and `kubevalidate` (devtools/kubevalidate: k8s.io/api types through apimachinery's strict
decoder; the published ServiceMonitor, ScaledObject and TriggerAuthentication CRD schemas through
the apiextensions-apiserver validators) are built from the Go module proxy by devtools.helm on
first use (minutes), then reused from the cache. What the chart renders is also loaded through
the service's own settings loader, so the chart cannot drift from the settings it configures.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditstream.stream.cli.main import build_parser
from auditstream.stream.cli.run import flags_from_args
from auditstream.stream.kafka.config import consumer_config
from auditstream.stream.settings import FIELDS, TABLES, load_settings
from devtools.helm import Tools, tools

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "compose" / "helm" / "auditstream"
Doc = dict[str, Any]

# Every optional feature on, every secret given; the names are what an operator would use.
ALL_FEATURES: Mapping[str, Any] = {
    "partitions": 12,
    "replicaCount": 12,
    "image": {"repository": "registry.example/auditstream", "digest": "sha256:" + "ab" * 32},
    "imagePullSecrets": [{"name": "pull"}],
    "config": {
        "bootstrap_servers": "kafka-0.kafka:9093,kafka-1.kafka:9093",
        "input_topics": ["k8s-audit"],
        "alert_format": "avro",
        "registry_url": "https://registry.example/apis/ccompat/v7",
        "delivery": "exactly-once",
        "shutdown_timeout": 20.5,
        "kafka": {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"},
        "consumer": {"fetch.max.bytes": 52428800},
        "producer": {"linger.ms": 20, "compression.type": "zstd"},
        "registry": {"max.retries": 5},
        "alert_topic_config": {"min.insync.replicas": 2, "compression.type": "zstd"},
        "topic_replication_factor": 3,
    },
    "secrets": {
        "sasl": {"existingSecret": "kafka-user"},
        "registry": {"existingSecret": "registry-user"},
        "tls": {
            "existingSecret": "kafka-tls",
            "certKey": "tls.crt",
            "keyKey": "tls.key",
            "keyPasswordKey": "key-password",
        },
    },
    "extraRulesConfigMap": "site-rules",
    "extraEnv": [{"name": "AUDITSTREAM_LOG_LEVEL", "value": "debug"}],
    "terminationGracePeriodSeconds": 45,
    "podAnnotations": {"example.com/team": "secops"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "kafka"}],
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "auditstream"}},
        }
    ],
    "priorityClassName": "security",
    "serviceAccount": {"annotations": {"example.com/role": "auditstream"}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "keda": {"enabled": True, "minReplicaCount": 2, "maxReplicaCount": 12},
}


@dataclass(frozen=True, slots=True)
class Chart:
    """`helm` and `kubevalidate` over the chart, with values given as a dict."""

    tools: Tools
    scratch: Path

    def helm(
        self, *args: str, values: Mapping[str, Any] | None = None
    ) -> subprocess.CompletedProcess[str]:
        extra: list[str] = []
        if values is not None:
            path = self.scratch / "values.json"  # JSON is YAML
            path.write_text(json.dumps(values))
            extra = ["--values", str(path)]
        return subprocess.run(
            [str(self.tools.helm), *args, str(CHART), *extra],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def render(self, values: Mapping[str, Any] | None = None) -> str:
        result = self.helm("template", "audit", values=values)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def documents(self, values: Mapping[str, Any] | None = None) -> list[Doc]:
        return [d for d in yaml.safe_load_all(self.render(values)) if d]

    def validate(self, manifests: str) -> subprocess.CompletedProcess[str]:
        crds = [arg for path in self.tools.crds for arg in ("--crd", str(path))]
        return subprocess.run(
            [str(self.tools.kubevalidate), *crds, "-"],
            input=manifests, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Chart:
    return Chart(tools(), tmp_path_factory.mktemp("chart"))


def by_kind(docs: list[Doc]) -> dict[str, Doc]:
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), kinds
    return {d["kind"]: d for d in docs}


def _lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def container(docs: list[Doc]) -> Doc:
    containers = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


# -- lint and strict validation ------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, ALL_FEATURES], ids=["defaults", "all-features"])
def test_helm_lint_strict_is_clean(chart: Chart, values: Mapping[str, Any] | None) -> None:
    result = chart.helm("lint", "--strict", values=values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    # --strict turns warnings into failures; only the INFO about a missing icon may remain.
    problems = [
        line for line in result.stdout.splitlines() if re.match(r"\[(WARNING|ERROR)\]", line)
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("values", "kinds"),
    [
        (None, {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}),
        (
            ALL_FEATURES,
            {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount",
             "ServiceMonitor", "ScaledObject", "TriggerAuthentication"},
        ),
    ],
    ids=["defaults", "all-features"],
)  # fmt: skip
def test_every_rendered_document_validates_strictly(
    chart: Chart, values: Mapping[str, Any] | None, kinds: set[str]
) -> None:
    manifests = chart.render(values)
    assert {d["kind"] for d in yaml.safe_load_all(manifests) if d} == kinds
    result = chart.validate(manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(_lines(result.stdout, "ok ")) == len(kinds)


def _set(path: str, value: object) -> Callable[[Doc], None]:
    """A mutation that sets a dotted path (list indexes as numbers) in a document."""

    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return mutate


CONTAINER = "spec.template.spec.containers.0"


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    [
        ("Deployment", _set(f"{CONTAINER}.imagePullPolic", "Always"), 'unknown field "spec.template.spec.containers[0].imagePullPolic"'),
        ("Deployment", _set("spec.Replicas", 3), 'unknown field "spec.Replicas"'),
        ("Deployment", _set("spec.replicas", "two"), "cannot unmarshal string into Go struct field"),
        ("Deployment", _set(f"{CONTAINER}.resources.limits.memory", "lots"), "quantities must match"),
        ("Deployment", _set(f"{CONTAINER}.securityContext.runAsNonRoot", "yes"), "cannot unmarshal string"),
        ("Service", _set("metadata.name", "Audit_Stream"), "DNS-1035 label"),
        ("PodDisruptionBudget", _set("spec.maxUnavailable", [1]), "cannot unmarshal"),
        ("ScaledObject", _set("spec.pollingInteval", 5), 'unknown field "spec.pollingInteval"'),
        ("ScaledObject", _set("spec.maxReplicaCount", "12"), "spec.maxReplicaCount: Invalid value"),
        ("ScaledObject", _set("spec.minReplicaCount", 13), "minReplicaCount must be less than or equal to maxReplicaCount"),
        ("ScaledObject", _set("spec.triggers.0.metadata.lagThreshold", 10), "spec.triggers[0].metadata.lagThreshold"),
        ("ServiceMonitor", _set("spec.endpoints.0.scheme", "htp"), 'Unsupported value: "htp"'),
        ("ServiceMonitor", _set("metadata.labelz", {"a": "b"}), 'unknown field "labelz"'),
        ("TriggerAuthentication", _set("spec.secretTargetRef.0.parameter", None), "parameter"),
        ("ConfigMap", _set("kind", "ConfigMapp"), "unknown kind"),
    ],
    ids=[
        "typo-in-container", "wrong-case", "string-for-integer", "bad-quantity", "string-for-bool",
        "bad-service-name", "list-for-int-or-string", "cr-typo", "cr-string-for-integer",
        "cr-cel-rule", "cr-integer-for-string", "cr-enum", "cr-metadata-typo", "cr-required",
        "unknown-kind",
    ],
)  # fmt: skip
def test_validator_rejects_what_the_api_server_would(
    chart: Chart, kind: str, mutate: Callable[[Doc], None], expected: str
) -> None:
    """Each case breaks one rendered document of the all-features render in one way; the
    validator must refuse that document alone, saying why."""
    docs = chart.documents(ALL_FEATURES)
    broken = copy.deepcopy(by_kind(docs)[kind])
    mutate(broken)
    manifests = yaml.safe_dump_all([*[d for d in docs if d["kind"] != kind], broken])
    result = chart.validate(manifests)
    assert result.returncode == 1, result.stdout
    invalid = _lines(result.stdout, "invalid ")
    assert invalid, result.stdout
    assert all(f"/{broken['metadata']['name']}:" in line for line in invalid), invalid
    assert any(expected in line for line in invalid), invalid
    assert len(_lines(result.stdout, "ok ")) == len(docs) - 1


# -- values rules: the schema and the template checks ----------------------------------------------


def _values(**changes: Any) -> dict[str, Any]:
    """The all-features values with dotted keys replaced (None removes the key)."""
    values = copy.deepcopy(dict(ALL_FEATURES))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return values


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (_values(config__window="many"), "at '/config/window': got string, want integer"),
        (_values(config__windw=5), "additional properties 'windw' not allowed"),
        (_values(config__alert_format="xml"), "at '/config/alert_format'"),
        (_values(config__shutdown_timeout=0.1), "at '/config/shutdown_timeout'"),
        (_values(config__transactional_id="one"), "additional properties 'transactional_id'"),
        (_values(config__registry_basic_auth="u:p"), "additional properties 'registry_basic_auth'"),
        (_values(config__kafka={"sasl.password": "hunter2"}), "invalid propertyName 'sasl.password'"),
        (_values(config__bootstrap_servers=""), "at '/config/bootstrap_servers'"),
        (_values(partitions=0), "at '/partitions'"),
        (_values(keda__sasl="scram"), "at '/keda/sasl'"),
        (_values(secrets__sasl__existingSecret="Kafka_User"), "at '/secrets/sasl/existingSecret'"),
        (_values(image__digest="latest"), "at '/image/digest'"),
    ],
    ids=[
        "wrong-type", "unknown-setting", "bad-enum", "out-of-range", "shared-transactional-id",
        "secret-in-config", "password-in-configmap", "empty-required", "no-partitions",
        "bad-keda-sasl", "bad-secret-name", "bad-digest",
    ],
)  # fmt: skip
def test_values_schema_rejects_bad_values(chart: Chart, values: Doc, expected: str) -> None:
    result = chart.helm("template", "audit", values=values)
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr
    assert expected in result.stderr


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (_values(keda__enabled=False, replicaCount=13), "replicaCount (13) exceeds partitions (12)"),
        (_values(keda__maxReplicaCount=13), "keda.maxReplicaCount (13) exceeds partitions (12)"),
        (_values(keda__minReplicaCount=5, keda__maxReplicaCount=4), "keda.minReplicaCount (5) exceeds"),
        (_values(terminationGracePeriodSeconds=20), "must exceed config.shutdown_timeout (20.5)"),
        (_values(config__registry_url=None), "config.alert_format avro needs config.registry_url"),
        (_values(config__input_pattern="^audit-.*"), "exactly one of config.input_topics and config.input_pattern"),
        (_values(keda__sasl="", config__kafka={"security.protocol": "SASL_SSL", "sasl.mechanism": "AWS_MSK_IAM"}), "set keda.sasl"),
    ],
    ids=[
        "replicas-above-partitions", "keda-max-above-partitions", "keda-min-above-max",
        "grace-not-above-shutdown", "avro-without-registry", "topics-and-pattern",
        "unmapped-sasl-mechanism",
    ],
)  # fmt: skip
def test_template_refuses_inconsistent_values(chart: Chart, values: Doc, expected: str) -> None:
    result = chart.helm("template", "audit", values=values)
    assert result.returncode != 0
    assert expected in result.stderr


def test_replicas_may_equal_partitions_and_keda_owns_the_count(chart: Chart) -> None:
    docs = by_kind(chart.documents(_values(keda__maxReplicaCount=12)))
    assert "replicas" not in docs["Deployment"]["spec"]  # KEDA's HPA sets it; helm must not fight
    scaled = docs["ScaledObject"]["spec"]
    assert scaled["maxReplicaCount"] == ALL_FEATURES["partitions"]
    assert scaled["triggers"][0]["metadata"]["allowIdleConsumers"] == "false"
    plain = by_kind(chart.documents(_values(keda__enabled=False)))
    assert plain["Deployment"]["spec"]["replicas"] == ALL_FEATURES["partitions"]
    assert "ScaledObject" not in plain and "TriggerAuthentication" not in plain


def test_schema_names_every_setting_of_the_service() -> None:
    """config in values.schema.json is the service's settings, one for one, minus the ones the
    chart sets itself or takes from Secrets."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    chart_owned = {"http_host", "http_port", "registry_basic_auth", "transactional_id"}
    assert set(config["properties"]) == (set(FIELDS) - chart_owned) | set(TABLES)


# -- what the service receives -------------------------------------------------------------------


def _settings_inputs(
    docs: list[Doc], scratch: Path
) -> tuple[Path, dict[str, str], dict[str, object]]:
    """The rendered ConfigMap as the mounted file, the container's env (each Secret reference
    replaced by a value naming it) and its args as the CLI parses them."""
    kinds = by_kind(docs)
    main = container(docs)
    parsed = build_parser().parse_args(main["args"])
    assert parsed.command == "run"
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in kinds["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    config_path = Path(parsed.config)
    assert str(config_path.parent) == mounts["config"]
    assert volumes["config"]["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    toml = scratch / config_path.name
    toml.write_text(kinds["ConfigMap"]["data"][config_path.name])
    env: dict[str, str] = {}
    for var in main["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = f"secret:{ref['name']}/{ref['key']}"
    return toml, env, flags_from_args(parsed)


@pytest.mark.parametrize("values", [None, ALL_FEATURES], ids=["defaults", "all-features"])
def test_the_service_accepts_what_the_chart_renders(
    chart: Chart, values: Mapping[str, Any] | None, tmp_path: Path
) -> None:
    docs = chart.documents(values)
    toml, env, flags = _settings_inputs(docs, tmp_path)
    settings = load_settings(toml, env, flags)
    assert settings.ignored_env == ()  # every AUDITSTREAM_* variable the chart sets is a setting
    main = container(docs)
    port = main["ports"][0]
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", port["containerPort"])
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert main[probe]["httpGet"] == {"path": path, "port": port["name"]}
    grace = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.runtime.shutdown_timeout
    startup = main["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > settings.runtime.startup_timeout


def test_secrets_reach_the_service_through_the_environment(chart: Chart, tmp_path: Path) -> None:
    docs = chart.documents(ALL_FEATURES)
    configmap = by_kind(docs)["ConfigMap"]["data"]["auditstream.toml"]
    assert "secret:" not in configmap and "password" not in configmap.lower()
    settings = load_settings(*_settings_inputs(docs, tmp_path))
    common = settings.kafka.common
    assert common["sasl.username"] == "secret:kafka-user/username"
    assert common["sasl.password"] == "secret:kafka-user/password"
    assert common["ssl.key.password"] == "secret:kafka-tls/key-password"
    assert settings.alerts.registry_auth is not None
    assert settings.alerts.registry_auth.reveal() == "secret:registry-user/basic-auth"
    assert settings.log.level == "debug"  # extraEnv wins over the file, as documented
    # The TLS files librdkafka is told to read are the mounted Secret's keys.
    main = container(docs)
    tls_dir = next(m["mountPath"] for m in main["volumeMounts"] if m["name"] == "tls")
    volumes = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert next(v for v in volumes if v["name"] == "tls")["secret"]["secretName"] == "kafka-tls"
    assert {k: common[k] for k in common if str(k).endswith(".location")} == {
        "ssl.ca.location": f"{tls_dir}/ca.crt",
        "ssl.certificate.location": f"{tls_dir}/tls.crt",
        "ssl.key.location": f"{tls_dir}/tls.key",
    }
    rules_dir = next(m["mountPath"] for m in main["volumeMounts"] if m["name"] == "rules")
    assert settings.rules.paths == (Path(rules_dir),)


def test_integers_stay_integers_in_the_toml(chart: Chart) -> None:
    """Helm reads numbers as floats; librdkafka and the integer settings need integers."""
    docs = chart.documents(ALL_FEATURES)
    toml = by_kind(docs)["ConfigMap"]["data"]["auditstream.toml"]
    assert re.search(r'^"fetch\.max\.bytes" = 52428800$', toml, re.MULTILINE)
    assert re.search(r"^window = 100000$", toml, re.MULTILINE)
    assert re.search(r"^shutdown_timeout = 20\.5$", toml, re.MULTILINE)


# -- what the cluster enforces -------------------------------------------------------------------


def test_pods_run_locked_down(chart: Chart) -> None:
    docs = chart.documents(ALL_FEATURES)
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(docs)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001


def test_the_documents_point_at_each_other(chart: Chart) -> None:
    """Selectors and references across documents, which no per-document check sees."""
    docs = by_kind(chart.documents(ALL_FEATURES))
    deployment = docs["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]

    def selects(match: Mapping[str, str], labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in match.items())

    assert selects(selector, pod_labels)
    assert selects(docs["Service"]["spec"]["selector"], pod_labels)
    assert selects(docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"], pod_labels)
    monitor = docs["ServiceMonitor"]["spec"]
    assert selects(monitor["selector"]["matchLabels"], docs["Service"]["metadata"]["labels"])
    service_ports = {p["name"] for p in docs["Service"]["spec"]["ports"]}
    assert {e["port"] for e in monitor["endpoints"]} <= service_ports
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] in {
        p["name"] for p in container(list(docs.values()))["ports"]
    }
    scaled = docs["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (
        scaled["triggers"][0]["authenticationRef"]["name"]
        == docs["TriggerAuthentication"]["metadata"]["name"]
    )
    trigger = scaled["triggers"][0]["metadata"]
    config = ALL_FEATURES["config"]
    assert trigger["bootstrapServers"] == config["bootstrap_servers"]
    assert trigger["consumerGroup"] == "auditstream"
    assert (trigger["sasl"], trigger["tls"]) == ("scram_sha512", "enable")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"]
        == docs["ServiceAccount"]["metadata"]["name"]
    )
    # One replica down at a time, whether by rollout or by eviction.
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert docs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_a_config_change_rolls_the_pods(chart: Chart) -> None:
    """Settings are read once, at start-up: a changed ConfigMap must change the pod template."""

    def checksum(values: Mapping[str, Any]) -> str:
        deployment = by_kind(chart.documents(values))["Deployment"]
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum(ALL_FEATURES) == checksum(ALL_FEATURES)
    assert checksum(ALL_FEATURES) != checksum(_values(config__window=5000))


@pytest.mark.parametrize("reset", [None, "latest"], ids=["service-default", "given"])
def test_keda_counts_lag_as_the_service_reads(
    chart: Chart, tmp_path: Path, reset: str | None
) -> None:
    """A partition without a committed offset: KEDA's lag must assume the same start as the
    service's consumer (auto.offset.reset), or it scales on lag nobody will read."""
    values = _values(config__consumer={"auto.offset.reset": reset} if reset else {})
    docs = chart.documents(values)
    settings = load_settings(*_settings_inputs(docs, tmp_path))
    trigger = by_kind(docs)["ScaledObject"]["spec"]["triggers"][0]["metadata"]
    assert trigger["offsetResetPolicy"] == consumer_config(settings.kafka)["auto.offset.reset"]
