variable "region" {
  type        = string
  description = "AWS region for everything here and for the SAM stack that uses it."
  default     = "us-east-1"
}

variable "environment" {
  type        = string
  description = "Environment name, used in resource names and tags (for example production, staging)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.environment))
    error_message = "environment must be 2 to 21 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource."
  default     = {}
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the VPC; each private subnet gets a /20 of it."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR block of /20 or larger."
  }
}

variable "az_count" {
  type        = number
  description = "Number of availability zones with a private subnet. RDS Proxy and Multi-AZ need at least two."
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count must be between 2 and 4."
  }
}

variable "interface_endpoint_services" {
  type        = set(string)
  description = "AWS services reached from the private subnets through interface endpoints (the part after com.amazonaws.REGION.). The VPC has no NAT, so a service missing here is unreachable from the VPC functions."
  default     = ["sqs", "secretsmanager", "kms", "logs", "bedrock-runtime", "sts"]
}

variable "flow_log_retention_days" {
  type        = number
  description = "Retention of the VPC flow log group, in days."
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ..., 365, ...)."
  }
}

variable "db_engine_version" {
  type        = string
  description = "PostgreSQL version: a major version (\"16\") lets RDS pick and upgrade the minor version."
  default     = "16"

  validation {
    condition     = can(regex("^1[5-9](\\.[0-9]+)?$", var.db_engine_version))
    error_message = "db_engine_version must be PostgreSQL 15 or later, as \"16\" or \"16.4\"."
  }
}

variable "db_instance_class" {
  type        = string
  description = "RDS instance class. Graviton (g) classes match the arm64 functions; t4g is fine below production load."
  default     = "db.t4g.medium"
}

variable "db_allocated_storage_gb" {
  type        = number
  description = "Initial gp3 storage, in GiB."
  default     = 20

  validation {
    condition     = var.db_allocated_storage_gb >= 20
    error_message = "db_allocated_storage_gb must be at least 20 (the gp3 minimum)."
  }
}

variable "db_max_allocated_storage_gb" {
  type        = number
  description = "Ceiling for storage autoscaling, in GiB."
  default     = 200
}

variable "db_name" {
  type        = string
  description = "Database created on the instance (DB_NAME in the functions)."
  default     = "triggeriq"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must be a lower-case PostgreSQL identifier."
  }
}

variable "db_master_username" {
  type        = string
  description = "Master user. RDS keeps its password in a Secrets Manager secret it rotates; only used to bootstrap the app role."
  default     = "triggeriq_admin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_master_username)) && var.db_master_username != "postgres"
    error_message = "db_master_username must be a lower-case PostgreSQL identifier other than postgres."
  }
}

variable "db_app_username" {
  type        = string
  description = "Role the functions log in as through RDS Proxy (DB_USER). Migration 0007 grants its rows to triggeriq_app, so keep the default. It must not be granted rds_iam (terraform/README.md)."
  default     = "triggeriq_app"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_app_username))
    error_message = "db_app_username must be a lower-case PostgreSQL identifier."
  }
}

variable "db_owner_username" {
  type        = string
  description = "Role that owns the schema and runs the migrations (never the functions). Not granted rds_iam either."
  default     = "triggeriq_owner"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_owner_username))
    error_message = "db_owner_username must be a lower-case PostgreSQL identifier."
  }
}

variable "db_owner_password_version" {
  type        = number
  description = "Bump to generate a new owner role password into its secret (then ALTER ROLE to match)."
  default     = 1
}

variable "db_app_password_version" {
  type        = number
  description = "Bump to generate a new app role password into its secret (then ALTER ROLE to match, terraform/README.md)."
  default     = 1
}

variable "db_multi_az" {
  type        = bool
  description = "Run a standby in a second AZ. Off halves the cost for non-production environments."
  default     = true
}

variable "db_deletion_protection" {
  type        = bool
  description = "Refuse to delete the instance (turn off only to destroy a throwaway environment)."
  default     = true
}

variable "db_backup_retention_days" {
  type        = number
  description = "Days of automated backups and point-in-time recovery."
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35."
  }
}

variable "db_monitoring_interval" {
  type        = number
  description = "Enhanced Monitoring interval in seconds (0 turns it off)."
  default     = 60

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.db_monitoring_interval)
    error_message = "db_monitoring_interval must be one of 0, 1, 5, 10, 15, 30, 60."
  }
}

variable "db_admin_security_group_ids" {
  type        = list(string)
  description = "Security groups allowed to reach the DB instance directly on 5432, for bootstrapping the app role (for example a CloudShell VPC environment). Empty: only RDS Proxy reaches it."
  default     = []
}

variable "proxy_borrow_timeout_seconds" {
  type        = number
  description = "How long RDS Proxy lets a client wait for a database connection when the pool is full. Below the API functions' 10 s timeout, so a saturated pool fails fast."
  default     = 5
}

variable "proxy_max_connections_percent" {
  type        = number
  description = "Share of the instance's max_connections that RDS Proxy may open; the rest is headroom for admin sessions."
  default     = 90

  validation {
    condition     = var.proxy_max_connections_percent >= 10 && var.proxy_max_connections_percent <= 100
    error_message = "proxy_max_connections_percent must be between 10 and 100."
  }
}
