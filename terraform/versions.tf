terraform {
  required_version = ">= 1.6"
  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # 4.71: Capture through the namespace's managed identity
      # (capture_description.destination.storage_authentication_type); 4.40 already has
      # azurerm_eventgrid_system_topic.source_resource_id. Every argument used here is
      # checked against 4.71.0's schema (tests/azurerm-4.71.0-arguments.json). Not 5.x:
      # a major version may rename arguments.
      version = "~> 4.71"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "azurerm" {
  features {}
  # Provider 4.x needs a subscription: var.subscription_id, else ARM_SUBSCRIPTION_ID (or the
  # Azure CLI's current subscription, `az account set`).
  subscription_id = var.subscription_id
  # No storage_use_azuread: the containers are created through the management API
  # (storage_account_id), so the deployer needs no Storage Blob Data role; with it the
  # provider reads the storage data plane with the deployer's token and fails with 403
  # unless they hold one.
}
