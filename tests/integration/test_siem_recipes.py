"""docs/siem.md's recipes, one test each: the service runs on the real broker with the recipe's
``alert_format``, and the alert topic is read the way that consumer reads it.

* Elastic Agent's Kafka input (``ecs``): the record value is one JSON line that the input's
  ``ndjson`` parser puts at the document's root; the document must be valid ECS (and the
  integration's ``kubernetes.audit`` mapping) and be what the External Alerts rule promotes.
* Splunk Connect for Kafka (``json`` or ``ecs``): ``StringConverter`` values posted to HEC's
  ``/services/collector/event`` as ``{"time", "sourcetype": "_json", "source", "event"}`` with
  the record's timestamp; Splunk's JSON extraction must find the alert id and the rule.
* Amazon Security Lake (``ocsf``): every record a valid OCSF 1.1.0 Detection Finding, one event
  class for the custom source, partitioned by the day of the finding's ``time``.

The connectors themselves are not run (none can be installed here): what is checked is what
each would receive from Kafka and hand on, built from its documented behaviour.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from auditstream.stream.sinks.ecs_alert import DATASET, ECS_CONTENT_TYPE
from auditstream.stream.sinks.ocsf_alert import OCSF_CONTENT_TYPE
from devtools.ecs_fields import ecs_flat
from tests.integration.service.conftest import (
    RunningService,
    Topics,
    read_all,
    service_env,
    start_service,
    wait_committed_to_end,
)
from tests.integration.service.conftest import produce as produce_records
from tests.integration.service.corpus import build_corpus, scan_alert_ids
from tests.unit.test_ecs_alert import ecs_problems
from tests.unit.test_ocsf_alert import ocsf_problems

pytestmark = pytest.mark.integration

HEADERS = ("auditstream.rule_id", "content-type")


class Recipe:
    """The service run once with one format; the alert topic's records as a consumer gets them."""

    def __init__(self, bootstrap: str, topics: Topics, group: str, fmt: str) -> None:
        self.records = build_corpus(execs=25, routine=60, seed=23)
        produce_records(bootstrap, topics.inputs, self.records)
        running: RunningService = start_service(
            service_env(bootstrap, topics, group, alert_format=fmt)
        )
        try:
            wait_committed_to_end(
                bootstrap, group, topics.inputs, timeout=90, alive=running.check_alive
            )
        finally:
            assert running.stop() == 0
        self.alerts: list[Message] = read_all(bootstrap, topics.alerts)
        self.dead_letters = read_all(bootstrap, topics.dead_letters)


@pytest.fixture
def run_recipe(bootstrap: str, create_topic: Any, group_id: str, tmp_path: Path) -> Iterator[Any]:
    def run(fmt: str) -> tuple[Recipe, set[str]]:
        topics = Topics(create_topic(partitions=3), create_topic(partitions=2), create_topic(), 3)
        recipe = Recipe(bootstrap, topics, group_id, fmt)
        assert recipe.dead_letters == []
        expected = set(scan_alert_ids(recipe.records, tmp_path))
        assert len(expected) > 10
        return recipe, expected

    yield run


def _headers(msg: Message) -> dict[str, bytes]:
    return {key: value for key, value in msg.headers() or [] if isinstance(value, bytes)}


def test_elastic_agent_kafka_input_ecs(run_recipe: Any) -> None:
    recipe, expected = run_recipe("ecs")
    ecs = ecs_flat()
    documents = [_ndjson_root(msg) for msg in recipe.alerts]
    assert {d["event"]["id"] for d in documents} == expected
    for msg, document in zip(recipe.alerts, documents, strict=True):
        assert _headers(msg)["content-type"] == ECS_CONTENT_TYPE.encode()
        assert msg.key() == document["event"]["id"].encode()
        source = {k: v for k, v in document.items() if k != "kafka"}
        assert ecs_problems(source, ecs) == []
        # the data stream the integration's dataset names, and the External Alerts rule's query
        assert document["event"]["dataset"] == DATASET
        assert document["event"]["kind"] == "alert"
        assert document["event"]["module"] not in ("endgame", "endpoint", "cloud_defend")
        assert document["event"]["severity"] in (21, 47, 73, 99)
        assert document["message"] == document["rule"]["name"]
        assert document["kafka"]["key"] == document["event"]["id"]
        assert document["process"]["command_line"]


def _ndjson_root(msg: Message) -> dict[str, Any]:
    """What the Kafka input with ``parsers: [ndjson: {target: "", overwrite_keys: true}]`` makes
    of a record: the decoded object at the root, ``@timestamp`` from it, and the input's own
    ``kafka.*`` fields (topic, partition, offset, key)."""
    value = msg.value()
    assert value is not None and value.count(b"\n") == 0  # one record, one line
    document: dict[str, Any] = json.loads(value)
    assert datetime.fromisoformat(document["@timestamp"]).tzinfo is not None
    document["kafka"] = {
        "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
        "key": (msg.key() or b"").decode(),
    }  # fmt: skip
    return document


@pytest.mark.parametrize("fmt", ["json", "ecs"])
def test_splunk_connect_for_kafka_hec_events(fmt: str, run_recipe: Any) -> None:
    recipe, expected = run_recipe(fmt)
    seen: dict[str, dict[str, Any]] = {}
    for msg in recipe.alerts:
        hec = _hec_event(msg)
        body = json.loads(json.dumps(hec))  # what HEC's /event endpoint parses
        fields = _splunk_json_fields(body)
        alert_id = fields["alert_id"] if fmt == "json" else fields["event.id"]
        assert alert_id == msg.key().decode()  # | dedup alert_id works on the topic's key
        seen[alert_id] = fields
        rule_id = fields["rule.id"]
        assert _headers(msg)["auditstream.rule_id"].decode() == rule_id
        detected = fields["detected_at"] if fmt == "json" else fields["@timestamp"]
        # produced after detection (the record's timestamp has milliseconds)
        assert round(body["time"] * 1000) >= int(_epoch(detected) * 1000)
    assert set(seen) == expected
    one = next(iter(seen.values()))
    names = {"rule.name", "rule.id"} | (
        {"event.user.username", "event.request_uri"} if fmt == "json"
        else {"user.name", "kubernetes.audit.requestURI", "threat.tactic.id"}
    )  # fmt: skip
    assert names <= set(one)


def _hec_event(msg: Message) -> dict[str, Any]:
    """The connector's /event payload for a record read with ``StringConverter``,
    ``splunk.hec.use.record.timestamp=true``, ``splunk.sourcetypes=_json`` and
    ``splunk.sources`` the topic."""
    _, timestamp = msg.timestamp()
    return {
        "time": timestamp / 1000,
        "sourcetype": "_json",
        "source": msg.topic(),
        "event": (msg.value() or b"").decode("utf-8"),
    }


def _splunk_json_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """Splunk's JSON extraction of ``_raw`` (the event string): dotted names, arrays as
    multi-values (``{}`` suffix omitted here)."""
    return dict(_dotted(json.loads(body["event"])))


def _dotted(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _dotted(child, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), value


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_amazon_security_lake_ocsf(run_recipe: Any) -> None:
    recipe, expected = run_recipe("ocsf")
    findings = [json.loads(msg.value() or b"") for msg in recipe.alerts]
    assert {f["finding_info"]["uid"] for f in findings} == expected
    for msg, finding in zip(recipe.alerts, findings, strict=True):
        assert _headers(msg)["content-type"] == OCSF_CONTENT_TYPE.encode()
        assert ocsf_problems(finding) == []
        assert msg.key() == finding["metadata"]["uid"].encode()
    assert {f["class_uid"] for f in findings} == {2004}  # one event class per custom source
    assert {f["metadata"]["version"] for f in findings} == {"1.1.0"}
    partitions = {_partition(f, region="eu-west-1", account="123456789012") for f in findings}
    assert partitions  # the writer's S3 prefixes, one per day of finding time
    for prefix in partitions:
        assert prefix.startswith("region=eu-west-1/accountId=123456789012/eventDay=")


def _partition(finding: Mapping[str, Any], *, region: str, account: str) -> str:
    """Security Lake's custom-source layout: ``region=/accountId=/eventDay=YYYYMMDD``."""
    day = datetime.fromtimestamp(finding["time"] / 1000, UTC).strftime("%Y%m%d")
    return f"region={region}/accountId={account}/eventDay={day}"
