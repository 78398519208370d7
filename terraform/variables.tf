variable "name_prefix" {
  description = "Prefix of every resource name (lowercase letters and digits; the storage account name is derived from it)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,15}$", var.name_prefix))
    error_message = "name_prefix: 3-16 lowercase letters and digits, starting with a letter."
  }
}

variable "subscription_id" {
  description = "Azure subscription to deploy into. Null: ARM_SUBSCRIPTION_ID, else the Azure CLI's current subscription."
  type        = string
  default     = null
}

variable "location" {
  description = "Azure region, e.g. westeurope."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group to create, or an existing one when create_resource_group is false."
  type        = string
}

variable "create_resource_group" {
  description = "Create the resource group (false: use an existing one)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

# --- Event Hubs -----------------------------------------------------------------------------

variable "eventhubs_sku" {
  description = "Namespace tier. The Kafka endpoint exists on Standard and Premium, not Basic."
  type        = string
  default     = "Standard"
  validation {
    condition     = contains(["Standard", "Premium"], var.eventhubs_sku)
    error_message = "eventhubs_sku must be Standard or Premium: Basic has no Kafka endpoint."
  }
}

variable "eventhubs_capacity" {
  description = "Throughput units (Standard, 1-40) or processing units (Premium: 1, 2, 4, 8 or 16); checked against the tier at plan time."
  type        = number
  default     = 1
  validation {
    condition     = var.eventhubs_capacity >= 1 && var.eventhubs_capacity <= 40
    error_message = "eventhubs_capacity must be between 1 and 40."
  }
}

variable "local_authentication_enabled" {
  description = "SAS keys (connection strings) on the namespace. false: Microsoft Entra ID only, as Microsoft recommends; no authorization rules are created and the tools sign in with --namespace and the principals' data roles (sender_principal_ids, receiver_principal_ids)."
  type        = bool
  default     = true
}

variable "event_hub_name" {
  description = "The event hub (Kafka topic) the tools use."
  type        = string
  default     = "telemetry"
}

variable "partition_count" {
  description = "Partitions of the event hub: at most 32 on Standard, 100 on Premium. Cannot be lowered later."
  type        = number
  default     = 4
  validation {
    condition     = var.partition_count >= 1 && var.partition_count <= 100
    error_message = "partition_count must be between 1 and 100 (and at most 32 on Standard)."
  }
}

variable "message_retention_days" {
  description = "Days events are kept: 1-7 on Standard, up to 90 on Premium."
  type        = number
  default     = 7
  validation {
    condition     = var.message_retention_days >= 1 && var.message_retention_days <= 90
    error_message = "message_retention_days must be between 1 and 90 (at most 7 on Standard)."
  }
}

variable "consumer_groups" {
  description = "Consumer groups to create on the event hub. Groups span the namespace: give each application its own."
  type        = list(string)
  default     = ["capture-loader", "dashboards"]
  validation {
    condition     = length(var.consumer_groups) <= 19
    error_message = "Standard allows 20 consumer groups per event hub, including $Default."
  }
}

# --- Capture --------------------------------------------------------------------------------

variable "capture_interval_seconds" {
  description = "Capture time window (60-900 s); a file is written when this or the size window is reached."
  type        = number
  default     = 300
  validation {
    condition     = var.capture_interval_seconds >= 60 && var.capture_interval_seconds <= 900
    error_message = "capture_interval_seconds must be between 60 and 900."
  }
}

variable "capture_size_limit_bytes" {
  description = "Capture size window (10-500 MB)."
  type        = number
  default     = 314572800
  validation {
    condition     = var.capture_size_limit_bytes >= 10485760 && var.capture_size_limit_bytes <= 524288000
    error_message = "capture_size_limit_bytes must be between 10485760 and 524288000."
  }
}

variable "capture_authentication" {
  description = "How Capture writes to the storage account: SystemAssigned (the namespace's managed identity, given Storage Blob Data Contributor on the account) or StorageSAS (the account's key)."
  type        = string
  default     = "SystemAssigned"
  validation {
    condition     = contains(["SystemAssigned", "StorageSAS"], var.capture_authentication)
    error_message = "capture_authentication must be SystemAssigned or StorageSAS."
  }
}

variable "capture_skip_empty_archives" {
  description = "Do not write files for idle windows."
  type        = bool
  default     = true
}

variable "storage_replication_type" {
  description = "Replication of the capture storage account."
  type        = string
  default     = "ZRS"
  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.storage_replication_type)
    error_message = "storage_replication_type must be one of LRS, ZRS, GRS, RAGRS, GZRS, RAGZRS."
  }
}

# --- Schema registry ------------------------------------------------------------------------

variable "schema_compatibility" {
  description = "Compatibility rule of the Azure Schema Registry group: None, Backward or Forward."
  type        = string
  default     = "Backward"
  validation {
    condition     = contains(["None", "Backward", "Forward"], var.schema_compatibility)
    error_message = "schema_compatibility must be None, Backward or Forward."
  }
}

# --- PostgreSQL -----------------------------------------------------------------------------

variable "postgres_sku" {
  description = "Flexible server SKU."
  type        = string
  default     = "B_Standard_B1ms"
}

variable "postgres_storage_mb" {
  description = "Flexible server storage."
  type        = number
  default     = 32768
}

variable "postgres_public_access" {
  description = "Reach the server over its public endpoint, limited by postgres_firewall_rules. False: private access through postgres_delegated_subnet_id."
  type        = bool
  default     = true
}

variable "postgres_firewall_rules" {
  description = "Public access only: name => { start_ip, end_ip }."
  type        = map(object({ start_ip = string, end_ip = string }))
  default     = {}
}

variable "postgres_delegated_subnet_id" {
  description = "Private access: a subnet delegated to Microsoft.DBforPostgreSQL/flexibleServers."
  type        = string
  default     = null
}

variable "postgres_private_dns_zone_id" {
  description = "Private access: the private DNS zone linked to that network."
  type        = string
  default     = null
}

# --- Event Grid -----------------------------------------------------------------------------

variable "capture_loader_webhook_url" {
  description = "HTTPS URL of `capture-loader serve`. Empty: no Event Grid subscription is created."
  type        = string
  default     = ""
  validation {
    condition     = var.capture_loader_webhook_url == "" || startswith(var.capture_loader_webhook_url, "https://")
    error_message = "capture_loader_webhook_url must be an https:// URL (Event Grid delivers only over HTTPS)."
  }
}

variable "capture_loader_webhook_key" {
  description = "Shared secret Event Grid sends in the x-capture-loader-key header (CAPTURE_LOADER_WEBHOOK_KEY on the loader). Required with capture_loader_webhook_url: the loader refuses deliveries without it."
  type        = string
  default     = ""
  sensitive   = true
}

# --- Entra ID role assignments ---------------------------------------------------------------

variable "sender_principal_ids" {
  description = "Principals given Azure Event Hubs Data Sender on the namespace (on a single event hub the role breaks Kafka metadata requests)."
  type        = list(string)
  default     = []
}

variable "receiver_principal_ids" {
  description = "Principals given Azure Event Hubs Data Receiver on the namespace (on a single event hub the role breaks Kafka metadata requests)."
  type        = list(string)
  default     = []
}

variable "blob_reader_principal_ids" {
  description = "Principals given Storage Blob Data Reader on the capture storage account (the capture-loader)."
  type        = list(string)
  default     = []
}

variable "schema_writer_principal_ids" {
  description = "Principals given Schema Registry Contributor on the namespace (producers that register schemas)."
  type        = list(string)
  default     = []
}

variable "schema_reader_principal_ids" {
  description = "Principals given Schema Registry Reader on the namespace (consumers and the capture-loader, which fetch schemas by id)."
  type        = list(string)
  default     = []
}
