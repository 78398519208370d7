output "kafka_bootstrap_server" {
  description = "KAFKA_BOOTSTRAP_SERVERS for Kafka tools (the tools themselves take it from the connection string)."
  value       = "${azurerm_eventhub_namespace.main.name}.servicebus.windows.net:9093"
}

output "namespace" {
  description = "EVENTHUB_NAMESPACE for Microsoft Entra ID (--namespace)."
  value       = azurerm_eventhub_namespace.main.name
}

output "topic_name" {
  description = "EVENTHUB_NAME: the event hub, i.e. the Kafka topic."
  value       = azurerm_eventhub.telemetry.name
}

output "producer_connection_string" {
  description = "EVENTHUB_CONNECTION_STRING for the producer: send only, this event hub only (null with local authentication off)."
  value       = one(azurerm_eventhub_authorization_rule.producer[*].primary_connection_string)
  sensitive   = true
}

output "consumer_connection_string" {
  description = "EVENTHUB_CONNECTION_STRING for the consumer: listen only, this event hub only (null with local authentication off)."
  value       = one(azurerm_eventhub_authorization_rule.consumer[*].primary_connection_string)
  sensitive   = true
}

output "consumer_groups" {
  description = "Consumer groups created (KAFKA_GROUP_ID)."
  value       = [for g in azurerm_eventhub_consumer_group.groups : g.name]
}

output "capture_container_url" {
  description = "Where Capture writes its Avro files (the capture-loader's source)."
  value       = "${azurerm_storage_account.capture.primary_blob_endpoint}${azurerm_storage_container.capture.name}"
}

output "schema_group" {
  description = "Azure Schema Registry group for Entra ID users."
  value       = azurerm_eventhub_namespace_schema_group.telemetry.name
}

output "database_url" {
  description = "DATABASE_URL for the capture-loader."
  value       = "postgres://${azurerm_postgresql_flexible_server.loader.administrator_login}:${urlencode(random_password.postgres.result)}@${azurerm_postgresql_flexible_server.loader.fqdn}:5432/${azurerm_postgresql_flexible_server_database.capture.name}?sslmode=verify-full&sslrootcert=system"
  sensitive   = true
}

output "schema_registry_url" {
  description = "SCHEMA_REGISTRY_URL for the Azure Schema Registry (with SCHEMA_REGISTRY_GROUP from the schema_group output)."
  value       = "https://${azurerm_eventhub_namespace.main.name}.servicebus.windows.net"
}
