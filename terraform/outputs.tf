# Everything the SAM stack needs, one output per template.yaml parameter, plus all of them as
# one string for `sam deploy --parameter-overrides`.

output "private_subnet_ids" {
  description = "PrivateSubnetIds: the private subnets, comma-separated."
  value       = join(",", aws_subnet.private[*].id)
}

output "function_security_group_id" {
  description = "FunctionSecurityGroupId: the security group of the VPC functions."
  value       = aws_security_group.functions.id
}

output "db_proxy_endpoint" {
  description = "DbProxyEndpoint: RDS Proxy host name (DB_HOST)."
  value       = aws_db_proxy.main.endpoint
}

output "db_proxy_resource_id" {
  description = "DbProxyResourceId: the prx-... id in the proxy's ARN, which rds-db:connect is scoped to."
  value       = element(split(":", aws_db_proxy.main.arn), 6)
}

output "db_name" {
  description = "DbName: the database (DB_NAME)."
  value       = var.db_name
}

output "db_app_user" {
  description = "DbUser: the role the functions log in as (DB_USER)."
  value       = var.db_app_username
}

output "data_kms_key_arn" {
  description = "DataKeyArn: the KMS key for the SAM stack's table, bucket, queues, topic and logs."
  value       = aws_kms_key.data.arn
}

output "signing_kms_key_arn" {
  description = "SigningKeyArn: the KMS key the webhook signing secrets are sealed with."
  value       = aws_kms_key.signing.arn
}

output "sam_parameter_overrides" {
  description = "All of the above, for: sam deploy --parameter-overrides \"$(terraform output -raw sam_parameter_overrides)\""
  value = join(" ", [
    "PrivateSubnetIds=${join(",", aws_subnet.private[*].id)}",
    "FunctionSecurityGroupId=${aws_security_group.functions.id}",
    "DbProxyEndpoint=${aws_db_proxy.main.endpoint}",
    "DbProxyResourceId=${element(split(":", aws_db_proxy.main.arn), 6)}",
    "DbName=${var.db_name}",
    "DbUser=${var.db_app_username}",
    "DataKeyArn=${aws_kms_key.data.arn}",
    "SigningKeyArn=${aws_kms_key.signing.arn}",
  ])
}

output "db_master_secret_arn" {
  description = "Secrets Manager secret with the master user's password (RDS-managed), for the bootstrap."
  value       = aws_db_instance.main.master_user_secret[0].secret_arn
}

output "db_owner_user" {
  description = "The schema owner: run the migrations as it (terraform/README.md)."
  value       = var.db_owner_username
}

output "db_owner_secret_arn" {
  description = "Secrets Manager secret with the owner role's password, read by RDS Proxy; the bootstrap sets the role's password from it."
  value       = aws_secretsmanager_secret.owner_db.arn
}

output "db_app_secret_arn" {
  description = "Secrets Manager secret with the app role's password, read by RDS Proxy; the bootstrap sets the role's password from it."
  value       = aws_secretsmanager_secret.app_db.arn
}

output "db_instance_endpoint" {
  description = "DB instance address, for the bootstrap only; everything else goes through the proxy."
  value       = aws_db_instance.main.address
}
