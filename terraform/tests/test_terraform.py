"""Static checks of the terraform: parse the HCL (python-hcl2) and assert the properties the
project depends on. No Azure access and no provider download needed."""
import json
import pathlib
import re

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


def load_raw(name):
    with open(ROOT / name) as f:
        return hcl2.load(f)


# --- A small evaluator of the HCL expressions used in conditions and names ------------------
# Enough of HCL for these checks: templates ("${...}" inside strings, nested), var./local.
# references, substr/contains/range, comparisons, && || !, one ?:. Anything else fails the test,
# rather than being guessed.

def _template(text, i):
    """Python code for the HCL template string starting at text[i] == '"'; returns (code, end)."""
    assert text[i] == '"'
    parts, literal, i = [], "", i + 1
    while text[i] != '"':
        if text.startswith("${", i):
            if literal:
                parts.append(repr(literal))
                literal = ""
            code, i = _expression(text, i + 2, "}")
            parts.append(f"str({code})")
            i += 1
        else:
            literal += text[i]
            i += 1
    if literal or not parts:
        parts.append(repr(literal))
    return "(" + " + ".join(parts) + ")", i + 1


def _expression(text, i, stop):
    """Python code for the HCL expression from text[i] up to an unnested `stop`."""
    out, depth = "", 0
    while True:
        c = text[i]
        if c == stop and depth == 0:
            return out, i
        if c == '"':
            code, i = _template(text, i)
            out += code
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        out += c
        i += 1


def evaluate(expr, variables, scope=None):
    """Evaluate a python-hcl2 expression string ("${...}" or a quoted literal)."""
    text = expr if expr.startswith('"') else f'"{expr}"'
    code, _ = _template(text, 0)
    if code.startswith("(str(") and code.endswith("))") and code.count("str(") == 1:
        code = code[5:-2]  # a lone "${x}" is x itself, not its text
    code = code.replace("&&", " and ").replace("||", " or ")
    code = re.sub(r"(==|!=)\s*null\b", lambda m: " is None" if m[1] == "==" else " is not None", code)
    code = re.sub(r"!(?!=)", " not ", code)
    code = re.sub(r"\bvar\.(\w+)", r"VAR['\1']", code)
    code = re.sub(r"\blocal\.(\w+)", r"LOCAL['\1']", code)
    code = re.sub(r"LOCAL\['(\w+)'\]\.(\w+)", r"LOCAL['\1']['\2']", code)
    code = code.replace("random_string.suffix.result", "'r4nd0m'")
    ternary = re.fullmatch(r"([^?]+)\?([^:]+):(.+)", code)
    if ternary:  # one a ? b : c, as count expressions use
        code = f"({ternary[2]}) if ({ternary[1]}) else ({ternary[3]})"
    names = {
        "VAR": variables,
        "LOCAL": scope or {},
        "substr": lambda s, off, n: s[off:off + n],
        "contains": lambda xs, x: x in xs,
        "range": lambda a, b: list(range(a, b)),
        "null": None,
    }
    return eval(code, {"__builtins__": {"str": str, "list": list}}, names)  # noqa: S307


def locals_for(variables):
    raw = load_raw("main.tf")["locals"][0]
    tiers = plain(raw["tier_limits"])
    for tier in tiers.values():
        if isinstance(tier["capacities"], str):
            tier["capacities"] = evaluate(tier["capacities"], variables)
    scope = {"tier_limits": tiers}
    scope["limits"] = tiers[variables["eventhubs_sku"]]
    scope["storage_account_name"] = evaluate(raw["storage_account_name"], variables, scope)
    return scope


DEFAULTS = {name: v.get("default") for name, v in VARIABLES.items()}


def preconditions(rtype, name):
    body = resource(rtype, name)
    return [p["condition"] for p in block(body, "lifecycle")["precondition"]]


def plan_accepts(rtype, name, **overrides):
    """Whether every precondition of the resource holds for these variables."""
    variables = dict(DEFAULTS, **overrides)
    scope = locals_for(variables)
    return all(evaluate(c, variables, scope) for c in preconditions(rtype, name))


@pytest.mark.parametrize("sku,partitions,retention,ok", [
    ("Standard", 32, 7, True),
    ("Standard", 33, 7, False),
    ("Standard", 4, 8, False),
    ("Premium", 100, 90, True),
    ("Premium", 101, 7, False),
    ("Premium", 4, 91, False),
])
def test_event_hub_limits_follow_the_tier(sku, partitions, retention, ok):
    assert plan_accepts("azurerm_eventhub", "telemetry", eventhubs_sku=sku,
                        partition_count=partitions, message_retention_days=retention) is ok


@pytest.mark.parametrize("sku,capacity,ok", [
    ("Standard", 1, True), ("Standard", 40, True), ("Standard", 41, False),
    ("Premium", 1, True), ("Premium", 16, True), ("Premium", 3, False), ("Premium", 32, False),
])
def test_capacity_follows_the_tier(sku, capacity, ok):
    assert plan_accepts("azurerm_eventhub_namespace", "main", eventhubs_sku=sku,
                        eventhubs_capacity=capacity) is ok


def test_a_webhook_url_needs_a_key():
    sub = ("azurerm_eventgrid_system_topic_event_subscription", "capture_loader")
    url = "https://loader.example.com/eventgrid"
    assert not plan_accepts(*sub, capture_loader_webhook_url=url, capture_loader_webhook_key="")
    assert plan_accepts(*sub, capture_loader_webhook_url=url, capture_loader_webhook_key="k")


@pytest.mark.parametrize("prefix", ["abc", "acmetelemetry", "abcdefghijklmnop"])
def test_storage_account_name_keeps_the_whole_random_suffix(prefix):
    name = locals_for(dict(DEFAULTS, name_prefix=prefix))["storage_account_name"]
    assert name.endswith("r4nd0m") and 3 <= len(name) <= 24, name
    assert re.fullmatch(r"[a-z0-9]+", name), name


def test_capture_uses_the_namespace_identity_with_its_role_first():
    hub = resource("azurerm_eventhub", "telemetry")
    dest = block(block(hub, "capture_description"), "destination")
    assert dest["storage_authentication_type"] == "${var.capture_authentication}"
    assert DEFAULTS["capture_authentication"] == "SystemAssigned"
    assert "${azurerm_role_assignment.capture_writer}" in hub["depends_on"]
    role = resource("azurerm_role_assignment", "capture_writer")
    assert role["role_definition_name"] == "Storage Blob Data Contributor"
    assert role["scope"] == "${azurerm_storage_account.capture.id}"
    assert "azurerm_eventhub_namespace.main.identity[0].principal_id" in role["principal_id"]
    assert evaluate(role["count"], dict(DEFAULTS)) == 1
    assert evaluate(role["count"], dict(DEFAULTS, capture_authentication="StorageSAS")) == 0


def test_data_roles_are_on_the_namespace_not_the_event_hub():
    # On a single event hub they break the Kafka endpoint's metadata requests.
    for name in ("senders", "receivers"):
        assert resource("azurerm_role_assignment", name)["scope"] == "${azurerm_eventhub_namespace.main.id}"


PIN = re.search(r'version\s*=\s*"~> (4\.\d+)"', (ROOT / "versions.tf").read_text())
ARGUMENTS = json.loads((ROOT / "tests" / f"azurerm-v{PIN.group(1)}.0-arguments.json").read_text())
META = {"count", "for_each", "depends_on", "lifecycle", "provider", "precondition",
        "postcondition", "ignore_changes", "condition", "error_message", "__comments__"}


def argument_names(body):
    if isinstance(body, list):
        for item in body:
            yield from argument_names(item)
    elif isinstance(body, dict):
        for key, value in body.items():
            if key in META:
                continue
            yield key
            if isinstance(value, (list, dict)) and not isinstance(value, str):
                yield from argument_names(value if isinstance(value, list) and value and isinstance(value[0], dict) else [])


def test_provider_is_pinned_to_4_71_or_later_below_5():
    assert PIN and PIN.group(1) == "4.71", "versions.tf: ~> 4.71 (Capture through a managed identity)"
    assert ARGUMENTS["tag"] == "v4.71.0"


@pytest.mark.parametrize("key", sorted(k for k in RESOURCES if k[0].startswith("azurerm_")))
def test_every_argument_exists_in_the_pinned_provider(key):
    rtype, name = key
    known = ARGUMENTS["resources"].get(rtype)
    assert known is not None, f"{rtype}: not in tests/azurerm-v4.71.0-arguments.json (regenerate it)"
    unknown = sorted(set(argument_names(RESOURCES[key])) - set(known))
    assert not unknown, f"{rtype}.{name}: {unknown} are not arguments of azurerm 4.71"


def test_provider_needs_no_storage_data_roles_and_takes_a_subscription():
    provider = plain(load_raw("versions.tf"))["provider"][0]["azurerm"]
    assert "storage_use_azuread" not in provider
    assert provider["subscription_id"] == "${var.subscription_id}"
    assert DEFAULTS["subscription_id"] is None  # ARM_SUBSCRIPTION_ID, else the CLI's


def test_local_authentication_can_be_turned_off_and_then_no_sas_rule_exists():
    ns = resource("azurerm_eventhub_namespace", "main")
    assert ns["local_authentication_enabled"] == "${var.local_authentication_enabled}"
    assert DEFAULTS["local_authentication_enabled"] is True
    for name in ("producer", "consumer"):
        rule = resource("azurerm_eventhub_authorization_rule", name)
        assert evaluate(rule["count"], dict(DEFAULTS)) == 1
        assert evaluate(rule["count"], dict(DEFAULTS, local_authentication_enabled=False)) == 0
        output = OUTPUTS[f"{name}_connection_string"]
        assert output["value"].startswith("${one("), output  # null, not an error, without the rule
        assert output["sensitive"] is True
    assert OUTPUTS["namespace"]["value"] == "${azurerm_eventhub_namespace.main.name}"


def test_each_resource_is_declared_once():
    # python-hcl2 keeps the last of two blocks with one address; terraform refuses both.
    seen = []
    for path in sorted(ROOT.glob("*.tf")):
        seen += re.findall(r'^resource\s+"(\w+)"\s+"(\w+)"', path.read_text(), re.M)
    assert len(seen) == len(set(seen)), sorted(r for r in seen if seen.count(r) > 1)
    for kind in ("variable", "output"):
        names = []
        for path in sorted(ROOT.glob("*.tf")):
            names += re.findall(rf'^{kind}\s+"(\w+)"', path.read_text(), re.M)
        assert len(names) == len(set(names)), (kind, sorted(n for n in names if names.count(n) > 1))


def test_schema_group_is_avro_and_its_roles_are_on_the_namespace():
    group = resource("azurerm_eventhub_namespace_schema_group", "telemetry")
    assert group["schema_type"] == "Avro"
    assert group["namespace_id"] == "${azurerm_eventhub_namespace.main.id}"
    assert group["schema_compatibility"] == "${var.schema_compatibility}"
    assert DEFAULTS["schema_compatibility"] == "Backward"
    roles = {"schema_writers": "Schema Registry Contributor (Preview)",
             "schema_readers": "Schema Registry Reader (Preview)"}
    for name, role in roles.items():
        assignment = resource("azurerm_role_assignment", name)
        assert assignment["role_definition_name"] == role
        assert assignment["scope"] == "${azurerm_eventhub_namespace.main.id}"
    assert OUTPUTS["schema_registry_url"]["value"] == (
        "https://${azurerm_eventhub_namespace.main.name}.servicebus.windows.net")
