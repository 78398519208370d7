# The Azure side of the project: an Event Hubs namespace with its Kafka endpoint, the
# telemetry event hub with Capture to Blob Storage, least-privilege keys for the producer
# and the consumer, a schema group, PostgreSQL for the capture-loader, and Event Grid
# notifications of new Capture files delivered to the loader's webhook.

locals {
  resource_group_name = var.create_resource_group ? azurerm_resource_group.main[0].name : data.azurerm_resource_group.existing[0].name
  # Storage account names: 3-24 lowercase letters and digits, globally unique. The prefix is
  # cut, never the random suffix (a 16-letter prefix would otherwise leave 2 of its 6).
  storage_account_name = "${substr("${var.name_prefix}capture", 0, 18)}${random_string.suffix.result}"
  # Tier limits (Microsoft Learn: event-hubs-quotas), checked at plan time.
  tier_limits = {
    Standard = { partitions = 32, retention_days = 7, capacities = range(1, 41) }
    Premium  = { partitions = 100, retention_days = 90, capacities = [1, 2, 4, 8, 16] }
  }
  limits               = local.tier_limits[var.eventhubs_sku]
  capture_container    = "capture"
  deadletter_container = "eventgrid-deadletter"
}

resource "random_string" "suffix" {
  length  = 6
  upper   = false
  special = false
}

resource "azurerm_resource_group" "main" {
  count    = var.create_resource_group ? 1 : 0
  name     = var.resource_group_name
  location = var.location
  tags     = var.tags
}

data "azurerm_resource_group" "existing" {
  count = var.create_resource_group ? 0 : 1
  name  = var.resource_group_name
}

# --- Event Hubs -----------------------------------------------------------------------------

resource "azurerm_eventhub_namespace" "main" {
  #checkov:skip=CKV2_AZURE_32:Private endpoints depend on the user's network; the namespace is reached with TLS 1.2 and SAS keys scoped to one event hub.
  name                = "${var.name_prefix}-ehns-${random_string.suffix.result}"
  location            = var.location
  resource_group_name = local.resource_group_name
  # Standard or Premium: the Kafka endpoint does not exist on Basic.
  sku                  = var.eventhubs_sku
  capacity             = var.eventhubs_capacity
  minimum_tls_version  = "1.2"
  auto_inflate_enabled = false
  # SAS keys (connection strings) unless turned off: then only Microsoft Entra ID signs in
  # (`--namespace`, with the data roles below on the namespace).
  local_authentication_enabled = var.local_authentication_enabled
  tags                         = var.tags

  identity {
    type = "SystemAssigned"
  }

  lifecycle {
    precondition {
      condition     = contains(local.limits.capacities, var.eventhubs_capacity)
      error_message = "eventhubs_capacity: Standard takes 1-40 throughput units, Premium 1, 2, 4, 8 or 16 processing units."
    }
  }
}

resource "azurerm_eventhub" "telemetry" {
  name              = var.event_hub_name
  namespace_id      = azurerm_eventhub_namespace.main.id
  partition_count   = var.partition_count
  message_retention = var.message_retention_days

  capture_description {
    enabled             = true
    encoding            = "Avro"
    interval_in_seconds = var.capture_interval_seconds
    size_limit_in_bytes = var.capture_size_limit_bytes
    skip_empty_archives = var.capture_skip_empty_archives

    destination {
      name = "EventHubArchive.AzureBlockBlob"
      # The default layout, which the capture-loader parses.
      archive_name_format = "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}"
      blob_container_name = azurerm_storage_container.capture.name
      storage_account_id  = azurerm_storage_account.capture.id
      # The namespace's managed identity (needs the role below), or the account key.
      storage_authentication_type = var.capture_authentication
    }
  }

  # Capture's first write must find the role in place.
  depends_on = [azurerm_role_assignment.capture_writer]

  lifecycle {
    precondition {
      condition     = var.partition_count <= local.limits.partitions
      error_message = "partition_count: at most 32 partitions on Standard, 100 on Premium."
    }
    precondition {
      condition     = var.message_retention_days <= local.limits.retention_days
      error_message = "message_retention_days: at most 7 days on Standard, 90 on Premium."
    }
  }
}

resource "azurerm_eventhub_consumer_group" "groups" {
  for_each            = toset(var.consumer_groups)
  name                = each.value
  namespace_name      = azurerm_eventhub_namespace.main.name
  eventhub_name       = azurerm_eventhub.telemetry.name
  resource_group_name = local.resource_group_name
}

# Least privilege: the producer can only send, the consumer can only listen, and both only
# on this event hub. The namespace's root key is never output.
resource "azurerm_eventhub_authorization_rule" "producer" {
  count               = var.local_authentication_enabled ? 1 : 0
  name                = "producer-send"
  namespace_name      = azurerm_eventhub_namespace.main.name
  eventhub_name       = azurerm_eventhub.telemetry.name
  resource_group_name = local.resource_group_name
  send                = true
  listen              = false
  manage              = false
}

resource "azurerm_eventhub_authorization_rule" "consumer" {
  count               = var.local_authentication_enabled ? 1 : 0
  name                = "consumer-listen"
  namespace_name      = azurerm_eventhub_namespace.main.name
  eventhub_name       = azurerm_eventhub.telemetry.name
  resource_group_name = local.resource_group_name
  send                = false
  listen              = true
  manage              = false
}

resource "azurerm_eventhub_namespace_schema_group" "telemetry" {
  name                 = "telemetry"
  namespace_id         = azurerm_eventhub_namespace.main.id
  schema_compatibility = var.schema_compatibility
  schema_type          = "Avro"
}

# --- Capture storage ------------------------------------------------------------------------

resource "azurerm_storage_account" "capture" {
  #checkov:skip=CKV2_AZURE_1:Customer-managed keys need a Key Vault the user owns; Microsoft-managed encryption at rest (plus infrastructure encryption) is on.
  #checkov:skip=CKV2_AZURE_33:Private endpoints depend on the user's network; public blob access is off and every request needs Entra ID or a key.
  #checkov:skip=CKV_AZURE_33:Queue service logging does not apply: no queues are used.
  #checkov:skip=CKV_AZURE_59:Capture writes over the public endpoint unless the user adds networking; public *blob* access is disabled.
  #checkov:skip=CKV_AZURE_35:Default-deny network rules would block Event Hubs Capture without a trusted-services exception the user must configure for their network.
  #checkov:skip=CKV2_AZURE_40:Shared keys stay on: capture_authentication = StorageSAS writes with them, and the provider reads some account properties with them. With the default (SystemAssigned) Capture does not use them.
  #checkov:skip=CKV2_AZURE_41:No SAS is issued by this configuration; a SAS expiration policy is set for any issued by hand.
  #checkov:skip=CKV_AZURE_206:Replication is var.storage_replication_type (ZRS by default); geo-replication is the user's cost decision.
  name                              = local.storage_account_name
  resource_group_name               = local.resource_group_name
  location                          = var.location
  account_tier                      = "Standard"
  account_replication_type          = var.storage_replication_type
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  infrastructure_encryption_enabled = true
  tags                              = var.tags

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  sas_policy {
    expiration_period = "01.00:00:00"
  }
}

resource "azurerm_storage_container" "capture" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging is configured with the user's Log Analytics workspace, which this module does not own.
  name                  = local.capture_container
  storage_account_id    = azurerm_storage_account.capture.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "deadletter" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging is configured with the user's Log Analytics workspace, which this module does not own.
  name                  = local.deadletter_container
  storage_account_id    = azurerm_storage_account.capture.id
  container_access_type = "private"
}

# --- PostgreSQL for the capture-loader -------------------------------------------------------

resource "random_password" "postgres" {
  length           = 32
  special          = true
  override_special = "-_.~"
}

resource "azurerm_postgresql_flexible_server" "loader" {
  #checkov:skip=CKV_AZURE_136:Geo-redundant backups are a cost decision; enable them for production in a region pair.
  #checkov:skip=CKV2_AZURE_57:Private access is supported (postgres_public_access = false with a delegated subnet and private DNS zone); which one fits is the user's network decision.
  name                          = "${var.name_prefix}-pg-${random_string.suffix.result}"
  resource_group_name           = local.resource_group_name
  location                      = var.location
  version                       = "16"
  administrator_login           = "loader"
  administrator_password        = random_password.postgres.result
  sku_name                      = var.postgres_sku
  storage_mb                    = var.postgres_storage_mb
  backup_retention_days         = 7
  public_network_access_enabled = var.postgres_public_access
  delegated_subnet_id           = var.postgres_public_access ? null : var.postgres_delegated_subnet_id
  private_dns_zone_id           = var.postgres_public_access ? null : var.postgres_private_dns_zone_id
  tags                          = var.tags

  lifecycle {
    ignore_changes = [zone]
  }
}

resource "azurerm_postgresql_flexible_server_database" "capture" {
  name      = "capture"
  server_id = azurerm_postgresql_flexible_server.loader.id
  charset   = "UTF8"
  collation = "en_US.utf8"
}

resource "azurerm_postgresql_flexible_server_firewall_rule" "rules" {
  for_each         = var.postgres_public_access ? var.postgres_firewall_rules : {}
  name             = each.key
  server_id        = azurerm_postgresql_flexible_server.loader.id
  start_ip_address = each.value.start_ip
  end_ip_address   = each.value.end_ip
}

# --- Event Grid: new Capture files → capture-loader webhook ---------------------------------

resource "azurerm_eventgrid_system_topic" "namespace" {
  name                = "${var.name_prefix}-capture-events"
  resource_group_name = local.resource_group_name
  location            = var.location
  source_resource_id  = azurerm_eventhub_namespace.main.id
  topic_type          = "Microsoft.EventHub.Namespaces"
  tags                = var.tags
}

resource "azurerm_eventgrid_system_topic_event_subscription" "capture_loader" {
  count                 = var.capture_loader_webhook_url == "" ? 0 : 1
  name                  = "capture-loader"
  system_topic          = azurerm_eventgrid_system_topic.namespace.name
  resource_group_name   = local.resource_group_name
  event_delivery_schema = "EventGridSchema"
  included_event_types  = ["Microsoft.EventHub.CaptureFileCreated"]

  webhook_endpoint {
    url                               = var.capture_loader_webhook_url
    max_events_per_batch              = 10
    preferred_batch_size_in_kilobytes = 64
  }

  delivery_property {
    header_name = "x-capture-loader-key"
    type        = "Static"
    value       = var.capture_loader_webhook_key
    secret      = true
  }

  lifecycle {
    precondition {
      condition     = var.capture_loader_webhook_key != ""
      error_message = "capture_loader_webhook_url needs capture_loader_webhook_key (TF_VAR_capture_loader_webhook_key): capture-loader serve refuses deliveries without it."
    }
  }

  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }

  storage_blob_dead_letter_destination {
    storage_account_id          = azurerm_storage_account.capture.id
    storage_blob_container_name = azurerm_storage_container.deadletter.name
  }
}

# --- Entra ID role assignments ---------------------------------------------------------------

# Capture through the namespace's managed identity writes with this role.
resource "azurerm_role_assignment" "capture_writer" {
  count                = var.capture_authentication == "SystemAssigned" ? 1 : 0
  scope                = azurerm_storage_account.capture.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_eventhub_namespace.main.identity[0].principal_id
}

# Data roles on the namespace: assigned on a single event hub they break the Kafka
# endpoint's metadata requests.
resource "azurerm_role_assignment" "senders" {
  for_each             = toset(var.sender_principal_ids)
  scope                = azurerm_eventhub_namespace.main.id
  role_definition_name = "Azure Event Hubs Data Sender"
  principal_id         = each.value
}

resource "azurerm_role_assignment" "receivers" {
  for_each             = toset(var.receiver_principal_ids)
  scope                = azurerm_eventhub_namespace.main.id
  role_definition_name = "Azure Event Hubs Data Receiver"
  principal_id         = each.value
}

resource "azurerm_role_assignment" "blob_readers" {
  for_each             = toset(var.blob_reader_principal_ids)
  scope                = azurerm_storage_account.capture.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = each.value
}

# --- Azure Schema Registry -------------------------------------------------------------------

# The schema group `telemetry` (above) serves `producer --schema-group telemetry` (Azure's
# format: the schema id in each event's content type). The registry takes Microsoft Entra ID
# only, whatever local_authentication_enabled says: writers need Schema Registry
# Contributor, readers (consumers, the capture-loader) Schema Registry Reader, both on the
# namespace.
resource "azurerm_role_assignment" "schema_writers" {
  for_each             = toset(var.schema_writer_principal_ids)
  scope                = azurerm_eventhub_namespace.main.id
  role_definition_name = "Schema Registry Contributor (Preview)"
  principal_id         = each.value
}

resource "azurerm_role_assignment" "schema_readers" {
  for_each             = toset(var.schema_reader_principal_ids)
  scope                = azurerm_eventhub_namespace.main.id
  role_definition_name = "Schema Registry Reader (Preview)"
  principal_id         = each.value
}
