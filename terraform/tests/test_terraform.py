"""Static checks of the terraform: parse the HCL (python-hcl2) and assert the properties the
project depends on. No Azure access and no provider download needed."""
import pathlib

import hcl2
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def plain(node):
    """python-hcl2 8 keeps the quotes of names and strings and marks blocks; strip both."""
    if isinstance(node, dict):
        return {plain(k): plain(v) for k, v in node.items() if k != "__is_block__"}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, str) and len(node) >= 2 and node[0] == node[-1] == '"':
        return node[1:-1].replace('\\"', '"')
    return node


def load():
    resources, variables, outputs = {}, {}, {}
    for path in sorted(ROOT.glob("*.tf")):
        with open(path) as f:
            doc = plain(hcl2.load(f))
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    resources[(rtype, name)] = body
        for block in doc.get("variable", []):
            variables.update(block)
        for block in doc.get("output", []):
            outputs.update(block)
    return resources, variables, outputs


RESOURCES, VARIABLES, OUTPUTS = load()


def resource(rtype, name):
    assert (rtype, name) in RESOURCES, f"missing {rtype}.{name}"
    return RESOURCES[(rtype, name)]


def block(body, name):
    value = body[name]
    return value[0] if isinstance(value, list) else value


def test_namespace_is_kafka_capable_with_tls_1_2():
    ns = resource("azurerm_eventhub_namespace", "main")
    assert ns["minimum_tls_version"] == "1.2"
    assert ns["sku"] == "${var.eventhubs_sku}"
    sku = VARIABLES["eventhubs_sku"]
    assert sku["default"] == "Standard"
    rule = str(sku["validation"])
    assert "Standard" in rule and "Premium" in rule and "Basic" not in rule.split("contains")[1].split("]")[0]


def test_producer_rule_is_send_only_and_consumer_rule_listen_only():
    producer = resource("azurerm_eventhub_authorization_rule", "producer")
    consumer = resource("azurerm_eventhub_authorization_rule", "consumer")
    assert (producer["send"], producer["listen"], producer["manage"]) == (True, False, False)
    assert (consumer["send"], consumer["listen"], consumer["manage"]) == (False, True, False)
    # Scoped to the event hub, not the namespace.
    for rule in (producer, consumer):
        assert rule["eventhub_name"] == "${azurerm_eventhub.telemetry.name}"


def test_capture_is_on_with_the_default_layout():
    hub = resource("azurerm_eventhub", "telemetry")
    capture = block(hub, "capture_description")
    assert capture["enabled"] is True
    assert capture["encoding"] == "Avro"
    destination = block(capture, "destination")
    assert destination["name"] == "EventHubArchive.AzureBlockBlob"
    assert destination["archive_name_format"] == (
        "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}")
    assert capture["skip_empty_archives"] == "${var.capture_skip_empty_archives}"


def test_storage_has_no_public_blob_access_and_tls_1_2_https_only():
    sa = resource("azurerm_storage_account", "capture")
    assert sa["allow_nested_items_to_be_public"] is False
    assert sa["min_tls_version"] == "TLS1_2"
    assert sa["https_traffic_only_enabled"] is True
    for name in ("capture", "deadletter"):
        assert resource("azurerm_storage_container", name)["container_access_type"] == "private"


def test_secrets_are_sensitive_and_the_root_key_is_never_output():
    for name in ("producer_connection_string", "consumer_connection_string", "database_url"):
        assert OUTPUTS[name].get("sensitive") is True, name
    text = "\n".join(str(o["value"]) for o in OUTPUTS.values())
    assert "default_primary" not in text and "RootManageSharedAccessKey" not in text
    assert VARIABLES["capture_loader_webhook_key"].get("sensitive") is True


def test_postgres_password_is_generated_not_a_variable_default():
    pg = resource("azurerm_postgresql_flexible_server", "loader")
    assert pg["administrator_password"] == "${random_password.postgres.result}"
    assert not any("password" in name for name in VARIABLES)


def test_event_grid_subscription_only_with_a_webhook_and_only_capture_events():
    sub = resource("azurerm_eventgrid_system_topic_event_subscription", "capture_loader")
    assert "var.capture_loader_webhook_url" in str(sub["count"])
    assert sub["included_event_types"] == ["Microsoft.EventHub.CaptureFileCreated"]
    assert block(sub, "retry_policy")["max_delivery_attempts"] > 1
    assert "storage_blob_dead_letter_destination" in sub
    assert block(sub, "delivery_property")["secret"] is True


@pytest.mark.parametrize("name", ["partition_count", "message_retention_days",
                                  "capture_interval_seconds", "capture_size_limit_bytes"])
def test_limits_are_validated(name):
    assert "validation" in VARIABLES[name], name


def test_provider_is_pinned_to_azurerm_4():
    text = (ROOT / "versions.tf").read_text()
    assert '"~> 4.' in text
